/**
 * Plumbing for the multi-process tests (rolling restarts, reusePort): `tcpy
 * serve` child processes on 127.0.0.1, a bounded load of calls through a
 * {@linkcode TCPClusterClient}, and the check that no call was lost or run
 * twice without a reason.
 *
 * Every wait is bounded; every child is killed by `killAll` in a `finally`.
 */
import assert from "node:assert/strict";
import { TCPClient } from "../mod.ts";
import type { ClusterStats, RetryEvent, TCPClusterClient } from "../cluster.ts";
import type { commands } from "./fixtures/cluster_handlers.ts";

/** A cluster client for the `tcpy serve` processes of these tests. */
export type Cluster = TCPClusterClient<typeof commands>;

export const HOST = "127.0.0.1";
export const ROOT = new URL("../", import.meta.url);
const CLI = new URL("../cli.ts", import.meta.url).pathname;
const HANDLERS = new URL("./fixtures/cluster_handlers.ts", import.meta.url).pathname;

/** Rejects if `promise` takes longer than `ms`. */
export async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: nothing after ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** Resolves after `ms`. */
export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A port that was free a moment ago. */
export function freePort(): number {
  const listener = Deno.listen({ hostname: HOST, port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

/** Reads a stream line by line until it ends. */
async function eachLine(stream: ReadableStream<Uint8Array>, line: (text: string) => void) {
  let buffer = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    buffer += chunk;
    let at;
    while ((at = buffer.indexOf("\n")) !== -1) {
      line(buffer.slice(0, at));
      buffer = buffer.slice(at + 1);
    }
  }
  if (buffer) line(buffer);
}

/** Every child process started by this module that may still run. */
const children = new Set<Child>();

/** A child process whose output is read as it comes (so its pipes never fill up). */
export class Child {
  readonly name: string;
  readonly process: Deno.ChildProcess;
  readonly output: string[] = [];
  readonly done: Promise<Deno.CommandStatus>;
  #exited = false;

  constructor(name: string, command: string, args: string[], onLine?: (line: string) => void) {
    this.name = name;
    this.process = new Deno.Command(command, {
      args,
      cwd: ROOT,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    children.add(this);
    const keep = (line: string) => {
      onLine?.(line);
      if (!line.startsWith("ran ")) this.output.push(line);
    };
    const pumps = Promise.all([
      eachLine(this.process.stdout, keep),
      eachLine(this.process.stderr, keep),
    ]);
    this.done = Promise.all([this.process.status, pumps]).then(([status]) => {
      this.#exited = true;
      children.delete(this);
      return status;
    });
  }

  get exited(): boolean {
    return this.#exited;
  }

  /** Sends `signal` and waits (at most `ms`) for the exit, then kills it. */
  async stop(signal: Deno.Signal = "SIGTERM", ms = 15_000): Promise<Deno.CommandStatus> {
    if (!this.#exited) {
      try {
        this.process.kill(signal);
      } catch {
        // Already gone.
      }
    }
    try {
      return await within(this.done, ms, `${this.name} to exit after ${signal}`);
    } catch (error) {
      this.kill();
      await this.done;
      throw error;
    }
  }

  /** SIGKILL, if it still runs. */
  kill(): void {
    if (this.#exited) return;
    try {
      this.process.kill("SIGKILL");
    } catch {
      // Already gone.
    }
  }
}

/** Kills every child still running and waits for them: for `finally` blocks. */
export async function killAll(): Promise<void> {
  const running = [...children];
  for (const child of running) child.kill();
  await Promise.all(running.map((child) => child.done));
}

/** How often each call id ran, over every server process (from their `ran ID` lines). */
export class Runs {
  readonly counts = new Map<string, number>();
  /** Runs per server port. */
  readonly byPort = new Map<number, number>();

  record(port: number, line: string): void {
    if (!line.startsWith("ran ")) return;
    const id = line.slice(4);
    this.counts.set(id, (this.counts.get(id) ?? 0) + 1);
    this.byPort.set(port, (this.byPort.get(port) ?? 0) + 1);
  }
}

/** Options of {@linkcode startServe}. */
export interface ServeOptions {
  port: number;
  runs: Runs;
  reusePort?: boolean;
  threads?: number;
}

/**
 * Starts `deno run cli.ts serve tests/fixtures/cluster_handlers.ts` on
 * 127.0.0.1:`port` and resolves once it listens.
 */
export async function startServe(options: ServeOptions): Promise<Child> {
  const { port, runs, reusePort = false, threads = 1 } = options;
  const listening = Promise.withResolvers<void>();
  const args = [
    "run",
    `--allow-net=${HOST}`,
    "--allow-read",
    ...(reusePort ? ["--unstable-net"] : []),
    CLI,
    "serve",
    HANDLERS,
    "--host",
    HOST,
    "--port",
    String(port),
    "--threads",
    String(threads),
    "--grace-period",
    "10000",
    ...(reusePort ? ["--reuse-port"] : []),
  ];
  const child = new Child(`tcpy serve :${port}`, Deno.execPath(), args, (line) => {
    if (line.startsWith("tcpy listening on")) listening.resolve();
    runs.record(port, line);
  });
  child.done.then(() => listening.reject(new Error(`${child.name} exited before listening`)));
  listening.promise.catch(() => {});
  try {
    await within(listening.promise, 20_000, `${child.name} to listen`);
  } catch (error) {
    child.kill();
    await child.done;
    throw new Error(`${(error as Error).message}\n${child.output.join("\n")}`);
  }
  return child;
}

/** Resolves once the server at `port` answers `tcpy.ping` with a pong. */
export async function waitHealthy(port: number, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (true) {
    const client = new TCPClient({ host: HOST, port, timeout: 1_000 });
    try {
      const reply = await client.execute("tcpy.ping") as { pong?: boolean } | undefined;
      if (reply?.pong === true) return;
    } catch {
      // Not yet.
    } finally {
      await client.disconnect();
    }
    if (Date.now() > deadline) throw new Error(`127.0.0.1:${port} not healthy after ${ms} ms`);
    await delay(50);
  }
}

/** What a {@linkcode Load} saw. */
export interface LoadReport {
  /** Calls made. */
  calls: number;
  /** Calls that returned the right result. */
  succeeded: string[];
  /** Calls that failed or returned a wrong result, with why. */
  failures: { id: string; error: string }[];
  /** Ids retried after their connection closed with the request written. */
  inDoubt: Set<string>;
  /** The errors that put calls in doubt, with how often each came. */
  doubts: Map<string, number>;
  /** Successful calls per server process id. */
  byPid: Map<number, number>;
  /** The cluster client's counters. */
  stats: ClusterStats;
}

/**
 * `callers` loops, each calling `record` with a fresh id (and a 0-3 ms
 * handler delay) until `stop()`, every call marked idempotent so that a
 * call in doubt is retried, and counted as such.
 */
export class Load {
  readonly #succeeded: string[] = [];
  readonly #failures: { id: string; error: string }[] = [];
  readonly #inDoubt = new Set<string>();
  readonly #doubts = new Map<string, number>();
  readonly #byPid = new Map<number, number>();
  readonly #loops: Promise<void>[];
  #stopped = false;
  #calls = 0;

  constructor(readonly cluster: Cluster, callers: number) {
    this.#loops = Array.from({ length: callers }, (_, caller) => this.#loop(caller));
  }

  /** The `onRetry` to give the cluster client. */
  static onRetry(load: () => Load | undefined): (event: RetryEvent) => void {
    return (event) => {
      const id = (event.params as { id?: string } | undefined)?.id;
      const current = load();
      if (event.reason !== "closed" || !id || !current) return;
      current.#inDoubt.add(id);
      const why = String(event.error);
      current.#doubts.set(why, (current.#doubts.get(why) ?? 0) + 1);
    };
  }

  /** Calls that succeeded so far. */
  get succeeded(): number {
    return this.#succeeded.length;
  }

  async #loop(caller: number): Promise<void> {
    for (let n = 0; !this.#stopped; n++) {
      const id = `${caller}.${n}`;
      this.#calls++;
      try {
        const reply = await this.cluster.execute(
          "record",
          { id, ms: n % 4 },
          { idempotent: true, timeout: 20_000 },
        );
        if (reply?.id === id) {
          this.#succeeded.push(id);
          this.#byPid.set(reply.pid, (this.#byPid.get(reply.pid) ?? 0) + 1);
        } else this.#failures.push({ id, error: `wrong reply ${JSON.stringify(reply)}` });
      } catch (error) {
        this.#failures.push({ id, error: String(error) });
      }
    }
  }

  /** Stops the callers after their current call. */
  async stop(): Promise<LoadReport> {
    this.#stopped = true;
    await within(Promise.all(this.#loops), 30_000, "the callers to finish");
    return {
      calls: this.#calls,
      succeeded: this.#succeeded,
      failures: this.#failures,
      inDoubt: this.#inDoubt,
      doubts: this.#doubts,
      byPid: this.#byPid,
      stats: this.cluster.stats,
    };
  }
}

/**
 * Prints the report and asserts that nothing was lost: every call returned
 * its own id, and every call ran exactly once, except calls retried after
 * their connection closed with the request written (in doubt), which ran
 * once or more.
 */
export function assertNothingLost(title: string, report: LoadReport, runs: Runs): void {
  const { calls, succeeded, failures, inDoubt, doubts, byPid, stats } = report;
  let twice = 0;
  const wrongCounts: string[] = [];
  for (const id of succeeded) {
    const count = runs.counts.get(id) ?? 0;
    if (count > 1) twice++;
    if (count === 0 || (count > 1 && !inDoubt.has(id))) wrongCounts.push(`${id} ran ${count}x`);
  }
  const made = new Set([...succeeded, ...failures.map((f) => f.id)]);
  const stray = [...runs.counts.keys()].filter((id) => !made.has(id));
  console.log(
    `${title}: ${calls} calls, ${succeeded.length} succeeded, ${failures.length} failed; ` +
      `retries ${
        JSON.stringify(stats.retries)
      }; in doubt ${inDoubt.size}, of which ran twice ${twice}; ` +
      `runs per server port ${JSON.stringify(Object.fromEntries(runs.byPort))}; ` +
      `calls per server process ${JSON.stringify([...byPid.values()])}`,
  );
  for (const [why, count] of doubts) console.log(`  in doubt ${count}x: ${why}`);
  assert.deepEqual(failures.slice(0, 10), [], `${failures.length} calls failed`);
  assert.deepEqual(wrongCounts.slice(0, 10), [], "calls ran a wrong number of times");
  assert.deepEqual(stray.slice(0, 10), [], "runs of calls that were never made");
  assert.equal(stats.failed, 0);
}

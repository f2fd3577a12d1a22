/**
 * Plumbing for the multi-process tests (rolling restarts, reusePort): `tcpy
 * serve` child processes on 127.0.0.1, a bounded load of calls that are not
 * idempotent through a {@linkcode TCPClusterClient}, a rolling restart, and
 * the check that no call was lost or ran twice.
 *
 * Every wait is bounded; every child is killed by `killAll` in a `finally`.
 * The process plumbing itself is tools/_process.ts.
 */
import assert from "node:assert/strict";
import { TCPClient } from "../mod.ts";
import type { ClusterStats, RetryEvent, TCPClusterClient } from "../cluster.ts";
import type { commands } from "./fixtures/cluster_handlers.ts";
import { Child, freePort, stopAll, waitFor, within } from "../tools/_process.ts";

export { Child, freePort };

/** Kills every child process still running and waits for them: for `finally` blocks. */
export function killAll(): Promise<void> {
  return stopAll("SIGKILL");
}

/** A cluster client for the `tcpy serve` processes of these tests. */
export type Cluster = TCPClusterClient<typeof commands>;

export const HOST = "127.0.0.1";
export const ROOT = new URL("../", import.meta.url);
const CLI = new URL("../cli.ts", import.meta.url).pathname;
const HANDLERS = new URL("./fixtures/cluster_handlers.ts", import.meta.url).pathname;

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
  const child = new Child(Deno.execPath(), args, {
    name: `tcpy serve :${port}`,
    cwd: ROOT,
    onLine: (line) => runs.record(port, line),
  });
  try {
    await child.waitFor(/^tcpy listening on /m, "stdout", 20_000);
  } catch (error) {
    await child[Symbol.asyncDispose]();
    throw error;
  }
  return child;
}

/** Resolves once the server at `port` answers `tcpy.ping` with a pong. */
export async function waitHealthy(port: number, ms = 10_000): Promise<void> {
  await waitFor(async () => {
    const client = new TCPClient({ host: HOST, port, timeout: 1_000 });
    try {
      const reply = await client.execute("tcpy.ping") as { pong?: boolean } | undefined;
      return reply?.pong === true;
    } catch {
      return false; // Not yet.
    } finally {
      await client.disconnect();
    }
  }, { what: `127.0.0.1:${port} to answer tcpy.ping`, timeout: ms, interval: 50 });
}

/** Options of {@linkcode rollingRestart}. */
export interface RestartOptions {
  /** How each server is started again (`port` from `ports`). */
  serve: Omit<ServeOptions, "port">;
  /** Waited for once a restarted server answers `tcpy.ping` (e.g. HAProxy sees it UP). */
  ready?: (index: number) => Promise<void>;
  /** How many more calls must succeed after each restart before the next one. */
  calls?: number;
}

/**
 * Restarts each server in turn while `load` runs: SIGTERM, wait for its exit
 * (code 0), start it again on `ports[i]`, wait until it answers `tcpy.ping`
 * (and `ready(i)`), then until `calls` more calls succeeded. Asserts that
 * calls went on meanwhile.
 */
export async function rollingRestart(
  servers: Child[],
  ports: number[],
  load: Load,
  options: RestartOptions,
): Promise<void> {
  const { serve, ready, calls = 500 } = options;
  for (let i = 0; i < servers.length; i++) {
    const before = load.succeeded;
    const started = Date.now();
    const status = await servers[i].stop("SIGTERM");
    assert.equal(
      status.code,
      0,
      `${servers[i].name} exit code${servers[i].killed ? " (killed)" : ""}`,
    );
    servers[i] = await startServe({ ...serve, port: ports[i] });
    await waitHealthy(ports[i]);
    await ready?.(i);
    console.log(
      `  restarted ${servers[i].name} in ${Date.now() - started} ms; ` +
        `${load.succeeded - before} calls succeeded meanwhile`,
    );
    assert.ok(load.succeeded > before, "calls went on during the restart");
    await load.until(load.succeeded + calls);
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
  /** The reason and error of each retry, with how often each came. */
  retryErrors: Map<string, number>;
  /** Successful calls per server process id. */
  byPid: Map<number, number>;
  /** The cluster client's counters. */
  stats: ClusterStats;
}

/**
 * `callers` loops, each calling `record` with a fresh id (and a 0-3 ms
 * handler delay) until `stop()`. The calls are NOT idempotent:
 * `TCPClusterClient` retries only those that provably never ran (refused,
 * -32007, unread after `tcpy.bye`), and a call left in doubt fails.
 */
export class Load {
  readonly #succeeded: string[] = [];
  readonly #failures: { id: string; error: string }[] = [];
  readonly #retryErrors = new Map<string, number>();
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
      const current = load();
      if (!current) return;
      const why = `${event.reason}: ${String(event.error)}`;
      current.#retryErrors.set(why, (current.#retryErrors.get(why) ?? 0) + 1);
    };
  }

  /** Calls that succeeded so far. */
  get succeeded(): number {
    return this.#succeeded.length;
  }

  /** Resolves once `count` calls have succeeded in all (the load is under way). */
  async until(count: number): Promise<void> {
    await waitFor(() => this.succeeded >= count || this.#stopped, {
      what: () =>
        `${count} successful calls (${this.succeeded} so far, ${this.#failures.length} failed)`,
      timeout: 30_000,
    });
  }

  async #loop(caller: number): Promise<void> {
    for (let n = 0; !this.#stopped; n++) {
      const id = `${caller}.${n}`;
      this.#calls++;
      try {
        const reply = await this.cluster.execute("record", { id, ms: n % 4 }, { timeout: 20_000 });
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
      retryErrors: this.#retryErrors,
      byPid: this.#byPid,
      stats: this.cluster.stats,
    };
  }
}

/**
 * Prints the report and asserts that nothing was lost: no call failed, every
 * call returned its own id and ran exactly once over all server processes,
 * and no call ran that was never made. The calls are not idempotent, so a
 * call left in doubt would have failed; none was retried in doubt.
 */
export function assertNothingLost(title: string, report: LoadReport, runs: Runs): void {
  const { calls, succeeded, failures, retryErrors, byPid, stats } = report;
  let twice = 0;
  const wrongCounts: string[] = [];
  for (const id of succeeded) {
    const count = runs.counts.get(id) ?? 0;
    if (count > 1) twice++;
    if (count !== 1) wrongCounts.push(`${id} ran ${count}x`);
  }
  const made = new Set([...succeeded, ...failures.map((f) => f.id)]);
  const stray = [...runs.counts.keys()].filter((id) => !made.has(id));
  const retried = Object.entries(stats.retries).filter(([, n]) => n > 0);
  console.log(
    `${title}: ${calls} calls (not idempotent), ${succeeded.length} succeeded, ` +
      `${failures.length} failed; retries ${
        retried.length ? retried.map(([reason, n]) => `${reason} ${n}`).join(", ") : "none"
      }; ran twice ${twice}; ` +
      `runs per server port ${JSON.stringify(Object.fromEntries(runs.byPort))}; ` +
      `calls per server process ${JSON.stringify([...byPid.values()])}`,
  );
  for (const [why, count] of retryErrors) console.log(`  retried ${count}x: ${why}`);
  const failed = new Map<string, number>();
  for (const { error } of failures) failed.set(error, (failed.get(error) ?? 0) + 1);
  for (const [why, count] of failed) console.log(`  FAILED ${count}x: ${why}`);
  assert.deepEqual(failures.slice(0, 10), [], `${failures.length} calls failed`);
  assert.deepEqual(wrongCounts.slice(0, 10), [], "calls ran a wrong number of times");
  assert.deepEqual(stray.slice(0, 10), [], "runs of calls that were never made");
  assert.equal(succeeded.length, calls);
  assert.equal(stats.failed, 0);
  assert.equal(stats.retries.closed, 0, "a call that is not idempotent was retried in doubt");
}

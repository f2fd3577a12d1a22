/**
 * Plumbing shared by tests/, tools/ and bench/: bounded waits, and child
 * processes whose output is read as it comes (so their pipes never fill up)
 * and can be waited on.
 *
 * Every wait here is bounded and says what it waited for when it gives up.
 *
 * @module
 */

/** Resolves after `ms`: for pauses that are the point (load that runs for a while), not for state. */
export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** `promise`, or a rejection naming `what` if it takes longer than `ms`. */
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

/** Options of {@linkcode waitFor}. */
export interface WaitForOptions {
  /**
   * What is waited for, for the failure message: `"the call to be in
   * flight"`, or a function that says it with the state at that moment.
   */
  what: string | (() => string);
  /** Give up after this many ms. */
  timeout?: number;
  /** Ask again after this many ms. */
  interval?: number;
}

/**
 * Polls `predicate` until it returns a truthy value, and resolves with it.
 * Rejects with `Timed out after N ms waiting for WHAT` if it never does.
 * An error thrown by `predicate` ends the wait with that error.
 */
export async function waitFor<T>(
  predicate: () => T | Promise<T>,
  options: WaitForOptions,
): Promise<NonNullable<T>> {
  const { what, timeout = 10_000, interval = 10 } = options;
  const deadline = Date.now() + timeout;
  while (true) {
    const value = await predicate();
    if (value) return value as NonNullable<T>;
    if (Date.now() >= deadline) {
      const text = typeof what === "function" ? what() : what;
      throw new Error(`Timed out after ${timeout} ms waiting for ${text}`);
    }
    await delay(interval);
  }
}

/** A port that was free a moment ago, on 127.0.0.1. */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

/** Options of {@linkcode Child}. */
export interface ChildOptions {
  /** For messages; the command's file name by default. */
  name?: string;
  cwd?: string | URL;
  env?: Record<string, string>;
  clearEnv?: boolean;
  /** `null` by default. */
  stdin?: "null" | "piped";
  /** `piped` (read and kept, as stdout) by default. */
  stderr?: "piped" | "inherit";
  /** Kills the process when it aborts, as `Deno.Command`'s `signal`. */
  signal?: AbortSignal;
  /** Called with every line of stdout or stderr as it comes (without its `\n`). */
  onLine?: (line: string, stream: "stdout" | "stderr") => void;
  /** Characters of each stream kept in `stdout` and `stderr` (the first ones); 1 MB by default. */
  keep?: number;
}

/** A finished child: its exit and all its output. */
export interface Finished {
  code: number;
  signal: Deno.Signal | null;
  stdout: string;
  stderr: string;
}

/** Every child started here that may still run. */
const running = new Set<Child>();

/**
 * A child process whose stdout and stderr are read as they come: kept as
 * text (up to `keep` characters), handed line by line to `onLine`, and
 * waited on with `waitFor`. Dispose of it (`await using`) to kill it if it
 * still runs.
 */
export class Child implements AsyncDisposable {
  readonly name: string;
  readonly process: Deno.ChildProcess;
  /** Resolves with the exit status once the process exited. */
  readonly status: Promise<Deno.CommandStatus>;
  /** Resolves with the exit status once the process exited and all its output was read. */
  readonly done: Promise<Deno.CommandStatus>;
  /** Whether `stop` had to SIGKILL it. */
  killed = false;
  #stdout = "";
  #stderr = "";
  #exit: Deno.CommandStatus | undefined;
  #changed = Promise.withResolvers<void>();
  readonly #pumps: Promise<unknown>;

  constructor(command: string, args: string[], options: ChildOptions = {}) {
    this.name = options.name ?? command.split("/").pop()!;
    this.process = new Deno.Command(command, {
      args,
      cwd: options.cwd,
      env: options.env,
      clearEnv: options.clearEnv,
      stdin: options.stdin ?? "null",
      stdout: "piped",
      stderr: options.stderr ?? "piped",
      signal: options.signal,
    }).spawn();
    running.add(this);
    const keep = options.keep ?? 1_000_000;
    const onLine = options.onLine;
    this.#pumps = Promise.all([
      this.#pump(this.process.stdout, (text) => {
        if (this.#stdout.length < keep) this.#stdout += text.slice(0, keep - this.#stdout.length);
      }, onLine && ((line) => onLine(line, "stdout"))),
      options.stderr === "inherit" ? undefined : this.#pump(this.process.stderr, (text) => {
        if (this.#stderr.length < keep) this.#stderr += text.slice(0, keep - this.#stderr.length);
      }, onLine && ((line) => onLine(line, "stderr"))),
    ]);
    this.status = this.process.status.then((status) => {
      this.#exit = status;
      running.delete(this);
      this.#notify();
      return status;
    });
    this.done = Promise.all([this.status, this.#pumps]).then(([status]) => status);
  }

  /** What it wrote to stdout so far (the first `keep` characters). */
  get stdout(): string {
    return this.#stdout;
  }

  /** What it wrote to stderr so far (the first `keep` characters). */
  get stderr(): string {
    return this.#stderr;
  }

  get pid(): number {
    return this.process.pid;
  }

  /** Whether the process has exited. */
  get exited(): boolean {
    return this.#exit !== undefined;
  }

  #notify(): void {
    this.#changed.resolve();
    this.#changed = Promise.withResolvers<void>();
  }

  async #pump(
    stream: ReadableStream<Uint8Array>,
    add: (text: string) => void,
    line?: (text: string) => void,
  ): Promise<void> {
    let partial = "";
    for await (const text of stream.pipeThrough(new TextDecoderStream())) {
      add(text);
      if (line) {
        partial += text;
        let at;
        while ((at = partial.indexOf("\n")) !== -1) {
          line(partial.slice(0, at));
          partial = partial.slice(at + 1);
        }
      }
      this.#notify();
    }
    if (line && partial) line(partial);
  }

  /**
   * Waits until stdout (or stderr) matches `pattern`, and returns the match.
   * Throws, with all the output so far, if the process exits first or `ms`
   * pass.
   */
  async waitFor(
    pattern: RegExp,
    stream: "stdout" | "stderr" = "stdout",
    ms = 15_000,
  ): Promise<RegExpMatchArray> {
    const deadline = Date.now() + ms;
    const text = () => stream === "stdout" ? this.#stdout : this.#stderr;
    while (true) {
      const match = text().match(pattern);
      if (match) return match;
      if (this.#exit) {
        // Exited: what it wrote is all read once the pipes end.
        await within(this.#pumps, 5_000, "output").catch(() => {});
        const last = text().match(pattern);
        if (last) return last;
        throw new Error(
          `${this.name} exited (${this.#exit.code}) before its ${stream} matched ${pattern}\n` +
            this.#output(),
        );
      }
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new Error(
          `${this.name}: ${stream} did not match ${pattern} within ${ms} ms\n${this.#output()}`,
        );
      }
      await within(this.#changed.promise, left, "output").catch(() => {});
    }
  }

  #output(): string {
    return `stdout: ${this.#stdout}\nstderr: ${this.#stderr}`;
  }

  /**
   * Waits (at most `ms`) for the process to exit by itself, then (at most
   * 5 s) for the rest of its output. Kills it and throws if it does not exit.
   */
  async finish(ms = 15_000): Promise<Finished> {
    let status: Deno.CommandStatus;
    try {
      status = await within(this.status, ms, `${this.name} to exit`);
    } catch (error) {
      this.kill();
      await this.done;
      throw error;
    }
    await within(this.#pumps, 5_000, `${this.name}: reading its output`);
    return { code: status.code, signal: status.signal, stdout: this.#stdout, stderr: this.#stderr };
  }

  /**
   * Sends `signal` (if it still runs) and waits at most `ms` for the exit,
   * then SIGKILLs it (`killed` says so). Resolves with the exit status once
   * its output is read.
   */
  async stop(signal: Deno.Signal = "SIGTERM", ms = 15_000): Promise<Deno.CommandStatus> {
    this.#signal(signal);
    try {
      await within(this.status, ms, `${this.name} to exit after ${signal}`);
    } catch {
      this.killed = true;
      this.kill();
    }
    return await this.done;
  }

  /** SIGKILL, if it still runs; does not wait. */
  kill(): void {
    this.#signal("SIGKILL");
  }

  #signal(signal: Deno.Signal): void {
    if (this.#exit) return;
    try {
      this.process.kill(signal);
    } catch {
      // Exited meanwhile.
    }
  }

  /** Kills it if it still runs, and waits until nothing of it is left. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.kill();
    await this.done;
  }
}

/**
 * Stops every child started here that still runs, as {@linkcode Child.stop}
 * does: `signal`, then SIGKILL after `ms`. For `finally` blocks and exit
 * handlers.
 */
export async function stopAll(signal: Deno.Signal = "SIGTERM", ms = 3_000): Promise<void> {
  await Promise.all([...running].map((child) => child.stop(signal, ms)));
}

/**
 * The server `tools/attack.ts` attacks, as its own process:
 *
 * ```sh
 * deno run --unstable-net --allow-net=127.0.0.1 --allow-read tools/attack_server.ts
 * ```
 *
 * It runs with the server's defaults (4 workers, one I/O thread per core
 * with `--unstable-net`) unless `--threads`, `--io-threads` or
 * `--idle-timeout` say otherwise, listens on 127.0.0.1 (port 0 by default:
 * a free one), prints `PORT <n> IO <ioThreads>` once it listens, and stops
 * gracefully on SIGTERM or SIGINT.
 *
 * Commands:
 * - `add {x, y}`: `{ success, solution }`, cheap and synchronous (placement measured);
 * - `cpu {ms}`: busy-loops `ms` (default 1) milliseconds, always in the pool;
 * - `talk`: sends `{ question }`, receives one reply, returns it;
 * - `big {bytes}`: a string of `bytes` characters (for readers that never read);
 * - `sleep {ms}`: awaits a timer;
 * - `vary {n}`: `spin(n)`, a synchronous loop whose cost grows with `n`
 *   (placement measured: the placement attack makes it look cheap first);
 * - `sink {ms}`: a conversation that never `recv()`s, ending when its call
 *   ends (the unread limit aborts it) or after `ms` (default 30 s, at most 60 s);
 * - `where`: the name of the thread it runs on, inline (`tcpy-io-N` or `main`).
 *
 * The workers import this module (`module` is this file), so it only defines
 * things at its top level; the server is built under `import.meta.main`.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { TCPHandler, TCPServer } from "../mod.ts";

function thread(): string {
  return (globalThis as { name?: string }).name || "main";
}

/**
 * `n` rounds of integer arithmetic the JIT cannot drop: about 1 ns a round
 * on our machines. `tools/attack.ts` times it to choose a large `n`.
 */
export function spin(n: number): number {
  let x = 1;
  for (let i = 0; i < n; i++) x = (Math.imul(x, 1103515245) + 12345) | 0;
  return x;
}

export class Add extends TCPHandler<{ x: number; y: number }> {
  execute() {
    return this.success({ solution: this.params.x + this.params.y });
  }
}

/** About `ms` of CPU, always in the pool. */
export class Cpu extends TCPHandler<{ ms?: number }> {
  static override readonly inline = false;
  execute() {
    const ms = Math.min(Math.max(Number(this.params?.ms ?? 1), 0), 10_000);
    const end = performance.now() + ms;
    let spins = 0;
    while (performance.now() < end) spins++;
    return this.success({ spins });
  }
}

/** One round of conversation: a question sent, an answer received and returned. */
export class Talk extends TCPHandler {
  async execute() {
    await this.send({ question: "name?" });
    const answer = await this.recv<{ name?: string }>({ timeout: 10_000 });
    return this.success({ text: `Hello, ${answer?.name}` });
  }
}

const strings = new Map<number, string>();

/** A string of `bytes` characters (at most 1 MiB), made once per size. */
export class Big extends TCPHandler<{ bytes?: number }> {
  execute() {
    const bytes = Math.min(Math.max(Math.floor(Number(this.params?.bytes ?? 1024)), 0), 1 << 20);
    let text = strings.get(bytes);
    if (text === undefined) {
      text = "b".repeat(bytes);
      if (strings.size < 16) strings.set(bytes, text);
    }
    return text;
  }
}

export class Sleep extends TCPHandler<{ ms?: number }> {
  async execute() {
    const ms = Math.min(Math.max(Number(this.params?.ms ?? 10), 0), 60_000);
    await new Promise((resolve) => setTimeout(resolve, ms));
    return this.success({ slept: ms });
  }
}

/** `spin(n)`: cheap for small `n`, about 0.5 s for the `n` the harness picks as large. */
export class Vary extends TCPHandler<{ n?: number }> {
  execute() {
    const n = Math.min(Math.max(Math.floor(Number(this.params?.n ?? 10)), 0), 5e9);
    return this.success({ x: spin(n) });
  }
}

/** Holds a conversation open and never reads it; ends with its call, or after `ms`. */
export class Sink extends TCPHandler<{ ms?: number }> {
  async execute() {
    const ms = Math.min(Math.max(Number(this.params?.ms ?? 30_000), 0), 60_000);
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.signal.addEventListener("abort", () => {
        clearTimeout(timer);
        resolve();
      }, { once: true });
    });
    return this.success({ aborted: this.signal.aborted });
  }
}

/** The thread that read the call: which I/O thread a connection landed on. */
export class Where extends TCPHandler {
  static override readonly inline = true;
  execute() {
    return { thread: thread() };
  }
}

export const commands = {
  add: Add,
  cpu: Cpu,
  talk: Talk,
  big: Big,
  sleep: Sleep,
  vary: Vary,
  sink: Sink,
  where: Where,
};

function int(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 0) {
    console.error(`--${name} must be a non-negative integer, got ${value}`);
    Deno.exit(2);
  }
  return n;
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      port: { type: "string", default: "0" },
      threads: { type: "string" },
      "io-threads": { type: "string" },
      "idle-timeout": { type: "string" },
    },
  });
  // Only what was asked for: everything else keeps the server's defaults.
  const server: TCPServer = new TCPServer({
    host: "127.0.0.1",
    port: int("port", values.port),
    module: import.meta.url,
    commands,
    ...(values.threads === undefined ? {} : { threads: int("threads", values.threads) }),
    ...(values["io-threads"] === undefined
      ? {}
      : { ioThreads: int("io-threads", values["io-threads"]) }),
    ...(values["idle-timeout"] === undefined
      ? {}
      : { idleTimeout: int("idle-timeout", values["idle-timeout"]) }),
    onListen: ({ port }) => console.log(`PORT ${port} IO ${server.ioThreads}`),
  });
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    await server.close();
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGTERM", stop);
  Deno.addSignalListener("SIGINT", stop);
  await server.listen();
}

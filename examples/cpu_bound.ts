/**
 * What the worker pool is for: a CPU-bound handler. The same calls run
 * against a server with `threads: 0` (every handler on the main event loop,
 * one at a time) and one with `threads: 2` (two Web Workers in parallel),
 * and both timings are printed:
 *
 * ```sh
 * deno run --allow-net=127.0.0.1 --allow-read examples/cpu_bound.ts [calls] [limit]
 * ```
 *
 * On a machine with two or more cores the pool should win: inline, the
 * handlers take turns on one core, and the main thread cannot even read the
 * next request while a handler computes. On one core it cannot win, and the
 * worker round trip (~150 µs) makes it a little slower. For handlers
 * cheaper than that round trip, `static override inline = true` is the
 * better choice.
 *
 * @module
 */
import { TCPClient, TCPHandler, TCPServer } from "../mod.ts";

/** Counts the primes below `limit` by trial division: pure CPU, no I/O. */
export class PrimeCount extends TCPHandler<{ limit: number }> {
  execute() {
    const { limit } = this.params;
    let count = 0;
    for (let n = 2; n < limit; n++) {
      let prime = true;
      for (let d = 2; d * d <= n; d++) {
        if (n % d === 0) {
          prime = false;
          break;
        }
      }
      if (prime) count++;
    }
    return this.success({ limit, count });
  }
}

/** How {@linkcode measure} loads the server. */
export interface Load {
  /** Calls to make in all. */
  calls: number;
  /** Connections to spread them over, each with its calls in flight at once. */
  connections: number;
  /** The `limit` param of each call: the work per call. */
  limit: number;
}

/** The outcome of one {@linkcode measure} run. */
export interface Measurement {
  /** Wall-clock time of all the calls, in milliseconds. */
  ms: number;
  /** Each call's result, in call order. */
  results: unknown[];
}

/**
 * Starts a server with `threads` workers on a free port, makes `load.calls`
 * calls over `load.connections` clients at once, and stops the server.
 *
 * @param threads 0 for inline, or the pool size.
 * @param load The calls to make.
 * @returns The elapsed time and the results.
 */
export async function measure(threads: number, load: Load): Promise<Measurement> {
  // `module` lets the workers find PrimeCount even when this file is not
  // the main module (the tests import it).
  await using server = new TCPServer({
    host: "127.0.0.1",
    port: 0,
    threads,
    module: import.meta.url,
    commands: { primes: PrimeCount },
    onListen() {},
  });
  const { port } = await server.listen();
  const clients = Array.from(
    { length: load.connections },
    () => new TCPClient({ host: "127.0.0.1", port }),
  );
  try {
    await Promise.all(clients.map((client) => client.connect()));
    const started = performance.now();
    const results = await Promise.all(
      Array.from(
        { length: load.calls },
        (_, i) => clients[i % clients.length].execute("primes", { limit: load.limit }),
      ),
    );
    return { ms: performance.now() - started, results };
  } finally {
    await Promise.all(clients.map((client) => client.disconnect()));
  }
}

if (import.meta.main) {
  const calls = Number(Deno.args[0] ?? 200);
  const limit = Number(Deno.args[1] ?? 60_000);
  const load = { calls, connections: 8, limit };
  console.log(`${calls} calls of primes(${limit}) over ${load.connections} connections`);
  const inline = await measure(0, load);
  console.log(`threads: 0  ${inline.ms.toFixed(0).padStart(6)} ms`);
  const pool = await measure(2, load);
  console.log(`threads: 2  ${pool.ms.toFixed(0).padStart(6)} ms`);
  console.log(
    `the pool took ${(pool.ms / inline.ms * 100).toFixed(0)}% of the inline time ` +
      `(${navigator.hardwareConcurrency} cores here)`,
  );
}

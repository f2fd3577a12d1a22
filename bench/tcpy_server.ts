/**
 * The tcpy server the benchmark measures: the tutorial's `add` handler (the
 * very class from `examples/tutorial_server.ts`), a CPU-bound `work`
 * handler, the same work pinned to the pool as `burn` (the burst rows), and
 * `add_async`, the tutorial's addition as a trivial async handler (the
 * async rows), on port 0 of 127.0.0.1.
 *
 * Why a file of its own: the worker pool imports the module that defines
 * the handlers, so handlers and command map live at the top level here and
 * `listen()` runs only under `import.meta.main` (a worker importing this
 * file builds no server). The runner starts one process per thread count.
 *
 * Run: `deno run --allow-net=127.0.0.1 --allow-read bench/tcpy_server.ts THREADS`;
 * prints `PORT <n>` once listening. SIGTERM or SIGINT exit the process
 * cleanly, so that `--cpu-prof` gets to write its profile.
 *
 * @module
 */

import { type Commands, TCPHandler, TCPServer } from "../mod.ts";
import { AdditionHandler } from "../examples/tutorial_server.ts";
import { spin } from "./spin.ts";

/**
 * A handler that burns CPU: `n` rounds of an FNV-1a style mix, no
 * allocation, no I/O. The runner picks `n` for about 2.5 ms per call.
 */
export class WorkHandler extends TCPHandler<{ n: number }> {
  /** Mixes `n` rounds and returns the hash, so the loop cannot be dropped. */
  execute(): { success: true; hash: number } {
    return this.success({ hash: spin(this.params.n) });
  }
}

/**
 * The same work, always in the pool when there is one (`inline = false`):
 * the burst rows send several ~200 ms calls at once and time how the pool
 * spreads them over its workers.
 */
export class BurnHandler extends WorkHandler {
  static override readonly inline = false;
}

/**
 * The tutorial's addition as an async handler that awaits nothing real:
 * what the async rows measure is the framework's cost of an async
 * `execute()`, not the handler's.
 */
export class AsyncAdditionHandler extends TCPHandler<{ x: number; y: number }> {
  /** Yields once, then answers like `add`. */
  async execute(): Promise<{ success: true; solution: number }> {
    await null;
    return this.success({ solution: this.params.x + this.params.y });
  }
}

export { AdditionHandler };

/** The commands, exported so every worker finds the same classes. */
export const commands: Commands = {
  add: AdditionHandler,
  work: WorkHandler,
  burn: BurnHandler,
  add_async: AsyncAdditionHandler,
};

if (import.meta.main) {
  const threads = Number(Deno.args[0] ?? 0);
  const ioThreads = Number(Deno.args[1] ?? 0);
  const server = new TCPServer({
    host: "127.0.0.1",
    port: 0,
    threads,
    ioThreads,
    commands,
    module: import.meta.url,
    // Room for the 10,000 idle connections of the memory test on top of the
    // default limit's exact 10,000; limits cost nothing per connection.
    maxConnections: 20_000,
    onListen: ({ port }) => console.log(`PORT ${port}`),
  });
  await server.listen();
  const stop = () => Deno.exit(0);
  Deno.addSignalListener("SIGTERM", stop);
  Deno.addSignalListener("SIGINT", stop);
}

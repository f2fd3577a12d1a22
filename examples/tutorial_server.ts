/**
 * The tcpy tutorial's server, in TypeScript: handler and server in one file,
 * `server.commands` assigned after construction, the default pool of 4
 * worker threads, the default localhost:7272.
 *
 * Run: `deno task serve`
 */
import { TCPHandler, TCPServer } from "../mod.ts";

// Our handler class must extend TCPHandler
export class AdditionHandler extends TCPHandler<{ x: number; y: number }> {
  execute() {
    // success() provides a well-formed success response
    return this.success({ solution: this.params.x + this.params.y });
  }
}

// Instantiate the server at default localhost:7272
export const server = new TCPServer();
server.commands = {
  // Associate a command to our handler
  add: AdditionHandler,
};

if (import.meta.main) {
  // Start listening for requests! Ctrl-C (or SIGTERM) stops the server
  // gracefully: calls in flight finish first.
  await server.listen();
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(signal, () => server.close());
  }
}

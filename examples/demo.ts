/**
 * The main job in one command (`deno task demo`): starts the tutorial
 * server on a free port with its default pool of 4 workers, calls `add`
 * with a client, prints the result, and stops the server.
 */
import { TCPClient, TCPServer } from "../mod.ts";
import { AdditionHandler } from "./tutorial_server.ts";

if (import.meta.main) {
  await using server = new TCPServer({ port: 0, commands: { add: AdditionHandler } });
  const { port } = await server.listen();

  await using client = new TCPClient({ port });
  const result = await client.execute("add", { x: 1, y: 2 });
  console.log("add(1, 2) ->", result);
}

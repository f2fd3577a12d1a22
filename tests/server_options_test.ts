/** TCPServer's accessors and the misuses it refuses, each with a message that names the problem. */
import assert from "node:assert/strict";
import { TCPServer } from "../mod.ts";
import { commands } from "./fixtures/handlers.ts";

Deno.test("TCPServer reports its host, port and threads before and after listen()", async () => {
  const server = new TCPServer({ host: "127.0.0.1", port: 0, threads: 0, commands, onListen() {} });
  assert.equal(server.host, "127.0.0.1");
  assert.equal(server.port, 0);
  assert.equal(server.threads, 0);
  assert.equal(server.listening, false);
  const { port } = await server.listen();
  assert.equal(server.port, port);
  assert.equal(server.host, "127.0.0.1");
  assert.equal(server.listening, true);
  await server.close();
  assert.equal(server.listening, false);
  assert.equal(new TCPServer().threads, 4);
});

Deno.test("TCPServer.listen refuses to start twice", async () => {
  await using server = new TCPServer({ host: "127.0.0.1", port: 0, threads: 0, onListen() {} });
  await server.listen();
  await assert.rejects(server.listen(), /Cannot listen: this server was already started/);
});

Deno.test("TCPServer.listen refuses commands that are not an object", async () => {
  const server = new TCPServer({ host: "127.0.0.1", port: 0, threads: 0, onListen() {} });
  server.commands = null as never;
  await assert.rejects(
    server.listen(),
    new TypeError(
      "Cannot listen: server.commands must be an object mapping names to handler classes",
    ),
  );
});

Deno.test("TCPServer refuses an empty secret", () => {
  assert.throws(
    () => new TCPServer({ secret: "" }),
    new TypeError("Cannot create TCPServer: secret must be a non-empty string"),
  );
});

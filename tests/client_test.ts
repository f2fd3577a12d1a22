/** TCPClient against real servers on 127.0.0.1 (port 0), and against misbehaving fake servers. */
import assert from "node:assert/strict";
import {
  CallTimeoutError,
  ConnectionClosedError,
  MessageTooLargeError,
  ProtocolError,
  ShuttingDownError,
  TCPClient,
  UnknownCommandError,
} from "../mod.ts";
import { delay, fakeServer, startServer } from "./_helpers.ts";

async function readSome(conn: Deno.Conn): Promise<string> {
  const buf = new Uint8Array(4096);
  const n = await conn.read(buf);
  return n === null ? "" : new TextDecoder().decode(buf.subarray(0, n));
}

Deno.test("TCPClient.execute connects by itself and reuses the connection", async () => {
  await using server = await startServer({ threads: 0 });
  const client = new TCPClient({ port: server.port });
  assert.equal(client.connected, false);
  assert.deepEqual(await client.execute("add", { x: 1, y: 2 }), { success: true, solution: 3 });
  assert.equal(client.connected, true);
  await client.connect(); // no-op when connected
  assert.deepEqual(await client.execute("echo", { a: [1, "b"] }), { a: [1, "b"] });
  await client.disconnect();
  assert.equal(client.connected, false);
  // A disconnected client reconnects on the next call.
  assert.deepEqual(await client.execute("add", { x: 2, y: 2 }), { success: true, solution: 4 });
  await client.disconnect();
});

Deno.test("TCPClient rejects an unknown command with UnknownCommandError", async () => {
  await using server = await startServer({ threads: 0 });
  await using client = new TCPClient({ port: server.port });
  await assert.rejects(client.execute("missing"), UnknownCommandError);
});

Deno.test("TCPClient gives up on a call after its timeout, and the connection stays usable", async () => {
  await using server = await startServer({ threads: 0 });
  await using client = new TCPClient({ port: server.port, timeout: 50 });
  await assert.rejects(client.execute("sleep", { ms: 300 }), CallTimeoutError);
  assert.deepEqual(await client.execute("add", { x: 1, y: 1 }, { timeout: 0 }), {
    success: true,
    solution: 2,
  });
  await delay(300); // let the late reply arrive and be ignored
});

Deno.test("TCPClient rejects a call whose AbortSignal fires", async () => {
  await using server = await startServer({ threads: 0 });
  await using client = new TCPClient({ port: server.port });
  const controller = new AbortController();
  const call = client.execute("sleep", { ms: 100 }, { signal: controller.signal });
  controller.abort(new Error("user gave up"));
  await assert.rejects(call, /user gave up/);
  await assert.rejects(
    client.execute("add", { x: 1, y: 1 }, { signal: AbortSignal.abort() }),
    (e: unknown) => e instanceof DOMException && e.name === "AbortError",
  );
  await delay(120);
});

Deno.test("TCPClient rejects every pending call at once when the server goes away", async () => {
  await using fake = fakeServer(async (conn) => {
    await readSome(conn); // take the requests, answer nothing, hang up
    await delay(20);
  });
  await using client = new TCPClient({ port: fake.port });
  const started = Date.now();
  const calls = [client.execute("a"), client.execute("b"), client.call("c").recv()];
  for (const call of calls) await assert.rejects(call, ConnectionClosedError);
  assert.ok(Date.now() - started < 2000);
  assert.equal(client.connected, false);
});

Deno.test("TCPClient rejects pending calls with ProtocolError on a garbage reply", async () => {
  await using fake = fakeServer(async (conn) => {
    await readSome(conn);
    await conn.write(new TextEncoder().encode("this is not json\n"));
    await delay(100);
  });
  await using client = new TCPClient({ port: fake.port });
  await assert.rejects(client.execute("add"), ProtocolError);
});

Deno.test("TCPClient rejects pending calls with ProtocolError on an oversized reply", async () => {
  await using fake = fakeServer(async (conn) => {
    await readSome(conn);
    await conn.write(
      new TextEncoder().encode('{"jsonrpc":"2.0","id":1,"result":"' + "x".repeat(5000)),
    );
    await delay(100);
  });
  await using client = new TCPClient({ port: fake.port, maxMessageBytes: 1000 });
  await assert.rejects(client.execute("add"), ProtocolError);
});

Deno.test("TCPClient reports a refused connection on the call", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  const client = new TCPClient({ host: "127.0.0.1", port });
  await assert.rejects(client.execute("add"), Deno.errors.ConnectionRefused);
  await client.disconnect();
});

Deno.test("TCPClient refuses bad options", () => {
  assert.throws(() => new TCPClient({ port: 0 }), RangeError);
  assert.throws(() => new TCPClient({ port: 1.5 }), RangeError);
  assert.throws(() => new TCPClient({ timeout: -1 }), RangeError);
});

Deno.test("Call.send refuses data JSON cannot carry", async () => {
  await using server = await startServer({ threads: 0 });
  await using client = new TCPClient({ port: server.port });
  const call = client.call("greet");
  await call.recv();
  await assert.rejects(call.send({ n: 1n }), TypeError);
  await call.send({ name: "ok" });
  assert.deepEqual(await call.result, { success: true, text: "Hello, ok" });
});

Deno.test("a script whose client is idle exits by itself (the connection does not hold the process)", async () => {
  await using server = await startServer({ threads: 0 });
  const script = `import { TCPClient } from ${
    JSON.stringify(new URL("../mod.ts", import.meta.url).href)
  };
console.log(JSON.stringify(await new TCPClient({ port: ${server.port} }).execute("add", { x: 1, y: 2 })));`;
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--no-config", script],
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(20_000),
  }).output();
  assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));
  assert.equal(new TextDecoder().decode(output.stdout).trim(), '{"success":true,"solution":3}');
});

Deno.test("TCPClient rejects params JSON cannot carry, without touching the connection", async () => {
  await using server = await startServer({ threads: 0 });
  await using client = new TCPClient({ port: server.port });
  await assert.rejects(client.execute("echo", { n: 1n }), TypeError);
  assert.throws(() => client.call("echo", { n: 1n }), /params are not JSON-serializable/);
  assert.deepEqual(await client.execute("echo", { n: 1 }), { n: 1 });
});

Deno.test("TCPClient fails calls the server never read with ShuttingDownError after tcpy.bye", async () => {
  await using fake = fakeServer(async (conn) => {
    await readSome(conn); // read the request, then leave gracefully without answering it
    await conn.write(new TextEncoder().encode('{"jsonrpc":"2.0","method":"tcpy.bye"}\n'));
  });
  await using client = new TCPClient({ port: fake.port });
  const error = await client.execute("add").catch((e) => e);
  assert.ok(error instanceof ShuttingDownError, String(error));
  // The close is the cause: a -32007 reply has none.
  assert.ok(error.cause instanceof ConnectionClosedError, String(error.cause));
});

Deno.test("TCPClient passes on the error a server reported before its tcpy.bye, not ShuttingDownError", async () => {
  await using fake = fakeServer(async (conn) => {
    await readSome(conn); // an oversized request: refused with id null, then bye
    const encoder = new TextEncoder();
    await conn.write(encoder.encode(
      '{"jsonrpc":"2.0","id":null,"error":{"code":-32003,"message":"Message too large"}}\n' +
        '{"jsonrpc":"2.0","method":"tcpy.bye"}\n',
    ));
  });
  await using client = new TCPClient({ port: fake.port });
  const error = await client.execute("add").catch((e) => e);
  assert.ok(error instanceof ConnectionClosedError, String(error));
  assert.ok(error.cause instanceof MessageTooLargeError, String(error.cause));
});

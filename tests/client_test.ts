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
import { delay, fakeServer, startServer, within } from "./_helpers.ts";

/** A fake server's side of a connection: the client's requests, one JSON line at a time. */
class Requests {
  #text = "";
  readonly #decoder = new TextDecoder();
  readonly #chunk = new Uint8Array(4096);
  constructor(readonly conn: Deno.Conn) {}

  /** The next line, parsed; `undefined` once the client left. */
  async next(): Promise<{ id: number; method: string } | undefined> {
    let at;
    while ((at = this.#text.indexOf("\n")) === -1) {
      const n = await this.conn.read(this.#chunk).catch(() => null);
      if (n === null) return undefined;
      this.#text += this.#decoder.decode(this.#chunk.subarray(0, n), { stream: true });
    }
    const line = this.#text.slice(0, at);
    this.#text = this.#text.slice(at + 1);
    return JSON.parse(line);
  }
}

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
  const timedOut = await client.execute("sleep", { ms: 300 }).catch((e) => e);
  assert.ok(timedOut instanceof CallTimeoutError, String(timedOut));
  assert.equal(timedOut.message, 'Call to "sleep" timed out after 50 ms');
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

Deno.test("TCPClient reports a refused connection as ConnectionClosedError naming host and port", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  const client = new TCPClient({ host: "127.0.0.1", port });
  const error = await client.execute("add").catch((e) => e);
  assert.ok(error instanceof ConnectionClosedError, String(error));
  assert.equal(error.code, -32005);
  assert.ok(error.cause instanceof Deno.errors.ConnectionRefused, String(error.cause));
  assert.equal(error.message, `Cannot connect to 127.0.0.1:${port}: ${error.cause.message}`);
  assert.match(error.message, /Connection refused/);
  await assert.rejects(client.connect(), ConnectionClosedError);

  const retrying = new TCPClient({
    host: "127.0.0.1",
    port,
    reconnect: { retries: 2, baseDelay: 1, maxDelay: 1 },
  });
  const retried = await retrying.connect().catch((e) => e);
  assert.ok(retried instanceof ConnectionClosedError, String(retried));
  assert.ok(retried.message.startsWith(`Cannot connect to 127.0.0.1:${port} (3 attempts): `));
  await client.disconnect();
  await retrying.disconnect();
});

Deno.test("TCPClient refuses bad options", () => {
  assert.throws(() => new TCPClient({ port: 0 }), RangeError);
  assert.throws(() => new TCPClient({ port: 1.5 }), RangeError);
  assert.throws(() => new TCPClient({ timeout: -1 }), RangeError);
  assert.throws(() => new TCPClient({ maxUnreadMessages: 0 }), /maxUnreadMessages 0/);
  assert.throws(() => new TCPClient({ maxUnreadBytes: 1.5 }), /maxUnreadBytes 1.5/);
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

/**
 * A hostile server: answers `flood` with `count` notifications of `bytes`
 * each for that call, and never with a result; answers anything else with
 * `{ ok: true }`. `sent()` says how many bytes of messages it wrote.
 */
function floodServer(count: number, bytes: number) {
  const encoder = new TextEncoder();
  let sent = 0;
  const fake = fakeServer(async (conn) => {
    const requests = new Requests(conn);
    for (let request; (request = await requests.next());) {
      const { id, method } = request;
      if (method !== "flood") {
        await conn.write(encoder.encode(`{"jsonrpc":"2.0","id":${id},"result":{"ok":true}}\n`));
        continue;
      }
      // One buffer written again and again: the flood costs this process no memory.
      const head = `{"jsonrpc":"2.0","method":"tcpy.message","params":{"id":${id},"data":"`;
      const tail = `"}}\n`;
      const line = encoder.encode(head + "x".repeat(bytes - head.length - tail.length) + tail);
      for (let i = 0; i < count; i++) {
        let written = 0;
        while (written < line.length) written += await conn.write(line.subarray(written));
        sent += line.length;
      }
    }
  });
  return Object.assign(fake, { sent: () => sent });
}

Deno.test("TCPClient fails a call flooded with unread messages, keeps its memory, and serves other calls", async () => {
  const LINE = 64 * 1024;
  const COUNT = 4200; // 4200 x 64 KiB = 262.5 MiB
  await using fake = floodServer(COUNT, LINE);
  await using client = new TCPClient({ host: "127.0.0.1", port: fake.port });
  await client.connect();
  const before = Deno.memoryUsage().rss;
  let peak = before;
  const sampler = setInterval(() => peak = Math.max(peak, Deno.memoryUsage().rss), 10);
  try {
    const started = Date.now();
    const call = client.call("flood");
    const error = await within(call.result.catch((e) => e), 10_000, "the flooded call");
    const took = Date.now() - started;
    assert.ok(error instanceof ProtocolError, String(error));
    assert.match(error.message, /call 1\b.*4194304 bytes/i);
    assert.ok(took < 5_000, `rejected after ${took} ms`);
    await assert.rejects(call.recv(), ProtocolError);
    // The same connection answers a second call once the server is done flooding.
    assert.deepEqual(await within(client.execute("other"), 60_000, "the second call"), {
      ok: true,
    });
    assert.equal(fake.sent(), COUNT * LINE);
    assert.ok(fake.sent() > 256 * 1024 * 1024);
    // Before the limit, this flood grew the process by 220 MiB and the call never ended.
    const growth = Math.max(peak, Deno.memoryUsage().rss) - before;
    assert.ok(growth < 64 * 1024 * 1024, `RSS grew by ${(growth / 2 ** 20).toFixed(1)} MiB`);
  } finally {
    clearInterval(sampler);
  }
});

Deno.test("TCPClient fails a call past maxUnreadMessages unread messages; other calls go on", async () => {
  await using fake = floodServer(2000, 100);
  await using client = new TCPClient({ host: "127.0.0.1", port: fake.port });
  const flooded = client.call("flood");
  const waiting = flooded.recv(); // one message goes to this reader, 1024 more wait unread
  const error = await within(flooded.result.catch((e) => e), 10_000, "the flooded call");
  assert.ok(error instanceof ProtocolError, String(error));
  assert.equal(
    error.message,
    'Call 1 to "flood" failed: the server sent it more than 1024 messages (maxUnreadMessages) ' +
      "not yet read with recv(); its further messages are dropped",
  );
  assert.match(String(await waiting), /^x+$/);
  await assert.rejects(flooded.recv(), ProtocolError);
  assert.deepEqual(await within(client.execute("other"), 10_000, "the next call"), { ok: true });
  assert.equal(client.connected, true);
});

Deno.test("TCPClient counts only unread messages: a call that reads along is not failed", async () => {
  // Ten rounds of three messages in one write, each round answered by the client.
  const encoder = new TextEncoder();
  await using fake = fakeServer(async (conn) => {
    const requests = new Requests(conn);
    const { id } = (await requests.next())!;
    const message = (data: number) =>
      `{"jsonrpc":"2.0","method":"tcpy.message","params":{"id":${id},"data":${data}}}\n`;
    for (let round = 0; round < 10; round++) {
      await conn.write(encoder.encode(message(1) + message(2) + message(3)));
      await requests.next();
    }
    await conn.write(encoder.encode(`{"jsonrpc":"2.0","id":${id},"result":"done"}\n`));
    await requests.next(); // until the client leaves
  });
  await using client = new TCPClient({ host: "127.0.0.1", port: fake.port, maxUnreadMessages: 3 });
  const call = client.call("chat");
  for (let round = 0; round < 10; round++) {
    assert.deepEqual([await call.recv(), await call.recv(), await call.recv()], [1, 2, 3]);
    await call.send("next");
  }
  assert.equal(await within(call.result, 5_000, "the result"), "done");
});

Deno.test("every client option is checked before connecting: a bad one throws, naming it, and opens no socket", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  let accepted = 0;
  const accepting = (async () => {
    try {
      for await (const conn of listener) {
        accepted++;
        conn.close();
      }
    } catch {
      // The listener closed.
    }
  })();
  const bad: [Record<string, unknown>, ErrorConstructor, RegExp][] = [
    [{ maxMessageBytes: -1 }, RangeError, /maxMessageBytes -1/],
    [{ maxMessageBytes: 1.5 }, RangeError, /maxMessageBytes/],
    [{ maxUnreadMessages: 0 }, RangeError, /maxUnreadMessages/],
    [{ maxUnreadBytes: NaN }, RangeError, /maxUnreadBytes/],
    [{ timeout: -5 }, RangeError, /timeout -5/],
    [{ timeout: "5" }, TypeError, /timeout/],
    [{ port: 70000 }, RangeError, /port/],
    [{ host: "" }, TypeError, /host/],
    [{ secret: "" }, TypeError, /secret/],
    [{ secret: 42 }, TypeError, /secret/],
    [{ tls: "yes" }, TypeError, /tls/],
    [{ tls: { caCerts: "PEM" } }, TypeError, /tls\.caCerts/],
    [{ tls: { caFile: 7 } }, TypeError, /tls\.caFile/],
    [{ reconnect: 3 }, TypeError, /reconnect/],
    [{ reconnect: { retries: -1 } }, RangeError, /reconnect\.retries/],
  ];
  try {
    for (const [options, type, message] of bad) {
      let client: TCPClient | undefined;
      assert.throws(
        () => {
          client = new TCPClient({ host: "127.0.0.1", port, ...options } as never);
        },
        (error: unknown) => error instanceof type && message.test((error as Error).message),
        JSON.stringify(options),
      );
      // Had the constructor accepted it, the call must not leave a socket behind.
      if (client) await client.execute("x").catch(() => {}).finally(() => client!.disconnect());
    }
    await delay(50);
    assert.equal(accepted, 0, "no connection was made");
  } finally {
    listener.close();
    await accepting;
  }
});

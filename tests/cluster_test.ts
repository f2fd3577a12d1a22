/**
 * TCPClusterClient against real TCPServers on 127.0.0.1 (port 0), and
 * against fake servers that break a connection at a chosen point.
 */
import assert from "node:assert/strict";
import {
  CallTimeoutError,
  ConnectionClosedError,
  HandlerFailedError,
  ShuttingDownError,
  TCPHandler,
  UnknownCommandError,
} from "../mod.ts";
import { type RetryEvent, TCPClusterClient } from "../cluster.ts";
import { commands } from "./fixtures/handlers.ts";
import { delay, fakeServer, startServer } from "./_helpers.ts";

const HOST = "127.0.0.1";

/** A server with the fixture commands plus `who`, which answers with `name`. */
function startNamed(name: string, options: { port?: number; gracePeriod?: number } = {}) {
  class Who extends TCPHandler {
    execute() {
      return { server: name };
    }
  }
  return startServer({ threads: 0, commands: { ...commands, who: Who }, ...options });
}

/** Which server answered `who`. */
async function who(cluster: TCPClusterClient): Promise<string> {
  return ((await cluster.execute("who")) as { server: string }).server;
}

function endpointsOf(...servers: { port: number }[]) {
  return servers.map(({ port }) => ({ host: HOST, port }));
}

/** A port nothing listens on (it was free a moment ago). */
function deadPort(): number {
  const listener = Deno.listen({ hostname: HOST, port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

/** A {@linkcode fakeServer} whose connections read and write JSON-RPC lines. */
function fakeLines(serve: (conn: FakeConn, index: number) => Promise<void>) {
  return fakeServer((conn, index) => serve(new FakeConn(conn), index));
}

/** Reads JSON-RPC requests line by line and writes replies. */
class FakeConn {
  #buffer = "";
  constructor(readonly conn: Deno.Conn) {}

  /** The next `count` requests, parsed. */
  async requests(count: number): Promise<{ id: number; method: string }[]> {
    const chunk = new Uint8Array(4096);
    while (this.#buffer.split("\n").length - 1 < count) {
      const n = await this.conn.read(chunk);
      if (n === null) throw new Error("client went away");
      this.#buffer += new TextDecoder().decode(chunk.subarray(0, n));
    }
    const lines = this.#buffer.split("\n");
    this.#buffer = lines.slice(count).join("\n");
    return lines.slice(0, count).map((line) => JSON.parse(line));
  }

  async reply(value: unknown): Promise<void> {
    await this.conn.write(new TextEncoder().encode(JSON.stringify(value) + "\n"));
  }

  /** Answers every request with `{ ok: true }` until the client leaves. */
  async answerAll(): Promise<void> {
    while (true) {
      const [request] = await this.requests(1);
      await this.reply({ jsonrpc: "2.0", id: request.id, result: { ok: true } });
    }
  }
}

Deno.test("TCPClusterClient spreads calls round-robin over endpoints with equal load", async () => {
  await using a = await startNamed("a");
  await using b = await startNamed("b");
  await using c = await startNamed("c");
  await using cluster = new TCPClusterClient({ endpoints: endpointsOf(a, b, c) });
  const seen = new Map<string, number>();
  for (let i = 0; i < 30; i++) {
    const server = await who(cluster);
    seen.set(server, (seen.get(server) ?? 0) + 1);
  }
  assert.deepEqual(Object.fromEntries(seen), { a: 10, b: 10, c: 10 });
  assert.deepEqual(cluster.status().map((s) => [s.up, s.connections, s.calls]), [
    [true, 1, 10],
    [true, 1, 10],
    [true, 1, 10],
  ]);
});

Deno.test("TCPClusterClient sends concurrent calls to the endpoint with the fewest in flight", async () => {
  await using a = await startNamed("a");
  await using b = await startNamed("b");
  await using cluster = new TCPClusterClient({ endpoints: endpointsOf(a, b) });
  // Two slow calls, one on each server; then a burst of fast ones spreads evenly.
  const slow = [
    cluster.execute("sleep", { ms: 200 }),
    cluster.execute("sleep", { ms: 200 }),
  ];
  assert.deepEqual(cluster.status().map((s) => s.pending), [1, 1]);
  const fast = await Promise.all(Array.from({ length: 40 }, () => who(cluster)));
  const onA = fast.filter((server) => server === "a").length;
  assert.equal(onA, 20);
  await Promise.all(slow);
});

Deno.test("TCPClusterClient opens `connections` connections per endpoint and spreads over them", async () => {
  await using server = await startNamed("a");
  await using cluster = new TCPClusterClient({ endpoints: endpointsOf(server), connections: 3 });
  await Promise.all(Array.from({ length: 9 }, () => cluster.execute("sleep", { ms: 30 })));
  assert.equal(cluster.status()[0].connections, 3);
});

Deno.test("TCPClusterClient fails over when a server closes, and marks it down", async () => {
  await using a = await startNamed("a");
  await using b = await startNamed("b");
  const events: RetryEvent[] = [];
  await using cluster = new TCPClusterClient({
    endpoints: endpointsOf(a, b),
    retry: { baseDelay: 10_000 }, // no probe during the test
    onRetry: (event) => events.push(event),
  });
  for (let i = 0; i < 4; i++) await cluster.execute("who");
  await a.close();
  const servers = [];
  for (let i = 0; i < 20; i++) {
    servers.push(await who(cluster));
  }
  assert.deepEqual(new Set(servers), new Set(["b"]));
  assert.deepEqual(cluster.status().map((s) => s.up), [false, true]);
  // The one connect to the closed server was refused, and that call went to b.
  assert.equal(cluster.stats.retries.refused, 1);
  assert.equal(events.length, 1);
  assert.equal(events[0].reason, "refused");
  assert.equal(events[0].endpoint.port, a.port);
  assert.ok(events[0].error instanceof ConnectionClosedError);
  assert.ok(events[0].error.cause instanceof Deno.errors.ConnectionRefused);
  assert.equal(cluster.stats.failed, 0);
});

Deno.test("TCPClusterClient probes a down endpoint with backoff and uses it again once it answers", async () => {
  const first = await startNamed("a");
  const port = first.port;
  await using b = await startNamed("b");
  await using cluster = new TCPClusterClient({
    endpoints: [{ host: HOST, port }, { host: HOST, port: b.port }],
    retry: { baseDelay: 20, maxDelay: 50 },
  });
  await cluster.execute("who");
  await first.close();
  for (let i = 0; i < 4; i++) await cluster.execute("who");
  assert.equal(cluster.status()[0].up, false);
  await using again = await startNamed("a again", { port });
  const deadline = Date.now() + 5_000;
  let server = "";
  while (server !== "a again") {
    assert.ok(Date.now() < deadline, "the restarted server never got a call");
    server = await who(cluster);
    await delay(10);
  }
  assert.equal(cluster.status()[0].up, true);
  assert.equal(again.port, port);
});

Deno.test("TCPClusterClient rejects a call in flight on a dropped connection with ConnectionClosedError", async () => {
  const server = await startNamed("a", { gracePeriod: 50 });
  await using cluster = new TCPClusterClient({ endpoints: endpointsOf(server) });
  const call = cluster.execute("sleep", { ms: 400 });
  await delay(50);
  const started = Date.now();
  const closing = server.close(); // cuts the connection after 50 ms of grace
  await assert.rejects(call, ConnectionClosedError);
  assert.ok(Date.now() - started < 1_000, "the call hung");
  assert.equal(cluster.stats.retries.closed, 0);
  assert.equal(cluster.stats.failed, 1);
  await closing;
  await delay(400); // the handler's timer
});

Deno.test("TCPClusterClient retries an idempotent call on another endpoint when its connection drops", async () => {
  await using a = await startNamed("a", { gracePeriod: 50 });
  await using b = await startNamed("b", { gracePeriod: 50 });
  const events: RetryEvent[] = [];
  await using cluster = new TCPClusterClient({
    endpoints: endpointsOf(a, b),
    onRetry: (event) => events.push(event),
  });
  const call = cluster.execute("sleep", { ms: 300, value: "x" }, { idempotent: true });
  const busy = cluster.status().findIndex((s) => s.pending === 1);
  const [first, other] = busy === 0 ? [a, b] : [b, a];
  await delay(50);
  const closing = first.close();
  assert.deepEqual(await call, { success: true, slept: 300, value: "x" });
  assert.equal(events.length, 1);
  assert.equal(events[0].reason, "closed");
  assert.equal(events[0].endpoint.port, first.port);
  assert.equal(cluster.status()[busy === 0 ? 1 : 0].calls, 1);
  assert.ok(other.listening);
  await closing;
  await delay(300); // the first server's handler timer
});

Deno.test("TCPClusterClient retries calls refused with -32007 by a draining server on another endpoint", async () => {
  await using a = await startNamed("a", { gracePeriod: 5_000 });
  await using b = await startNamed("b");
  await using cluster = new TCPClusterClient({ endpoints: endpointsOf(a, b) });
  // The first call goes to a and keeps a's connection open while a drains.
  const slow = cluster.execute("sleep", { ms: 300 });
  assert.deepEqual(cluster.status().map((s) => s.pending), [1, 0]);
  await delay(30);
  const closing = a.close();
  // Not idempotent: only calls that never reached a handler may be retried.
  const replies = await Promise.all(Array.from({ length: 10 }, () => who(cluster)));
  assert.deepEqual(new Set(replies), new Set(["b"]));
  assert.ok(cluster.stats.retries.shuttingDown >= 1, JSON.stringify(cluster.stats));
  assert.equal(cluster.stats.failed, 0);
  assert.deepEqual(await slow, { success: true, slept: 300 });
  await closing;
});

Deno.test("TCPClusterClient retries a request written after a -32007 on the same connection (never read)", async () => {
  // First connection: refuse the first of two requests with -32007, then
  // close without answering the second, as a draining tcpy server may.
  await using fake = fakeLines(async (conn, index) => {
    if (index > 0) return await conn.answerAll();
    const [first] = await conn.requests(2);
    await conn.reply({
      jsonrpc: "2.0",
      id: first.id,
      error: { code: -32007, message: "The server is shutting down" },
    });
  });
  await using cluster = new TCPClusterClient({ endpoints: endpointsOf(fake) });
  const [one, two] = await Promise.all([cluster.execute("x"), cluster.execute("y")]);
  assert.deepEqual([one, two], [{ ok: true }, { ok: true }]);
  const { retries, failed } = cluster.stats;
  assert.deepEqual(retries, { refused: 0, shuttingDown: 1, busy: 0, unread: 1, closed: 0 });
  assert.equal(failed, 0);
});

Deno.test("TCPClusterClient retries a call left unread by a close after tcpy.bye, though not idempotent", async () => {
  // First connection: answer the first of two requests, then say tcpy.bye
  // and close without answering the second, as a draining tcpy server does
  // with a request that came after it had answered everything it read.
  await using fake = fakeLines(async (conn, index) => {
    if (index > 0) return await conn.answerAll();
    const [first] = await conn.requests(2);
    await conn.reply({ jsonrpc: "2.0", id: first.id, result: { first: true } });
    await conn.reply({ jsonrpc: "2.0", method: "tcpy.bye" });
  });
  const events: RetryEvent[] = [];
  await using cluster = new TCPClusterClient({
    endpoints: endpointsOf(fake),
    onRetry: (event) => events.push(event),
  });
  const [one, two] = await Promise.all([cluster.execute("x"), cluster.execute("y")]);
  assert.deepEqual([one, two], [{ first: true }, { ok: true }]);
  const { retries, failed } = cluster.stats;
  assert.deepEqual(retries, { refused: 0, shuttingDown: 0, busy: 0, unread: 1, closed: 0 });
  assert.equal(failed, 0);
  assert.equal(events.length, 1);
  assert.equal(events[0].command, "y");
  assert.equal(events[0].reason, "unread");
  assert.ok(events[0].error instanceof ShuttingDownError, String(events[0].error));
});

Deno.test("TCPClusterClient retries a call whose connection closed after the request only if idempotent", async () => {
  // Connections 0 and 1 read one request and close without an answer.
  await using fake = fakeLines(async (conn, index) => {
    if (index > 1) return await conn.answerAll();
    await conn.requests(1);
  });
  await using cluster = new TCPClusterClient({ endpoints: endpointsOf(fake) });
  const error = await cluster.execute("once").catch((e) => e);
  assert.ok(error instanceof ConnectionClosedError, String(error));
  assert.equal(cluster.stats.retries.closed, 0);
  assert.deepEqual(await cluster.execute("again", {}, { idempotent: true }), { ok: true });
  assert.equal(cluster.stats.retries.closed, 1);
});

Deno.test("TCPClusterClient never retries handler errors or unknown commands", async () => {
  await using a = await startNamed("a");
  await using b = await startNamed("b");
  await using cluster = new TCPClusterClient({ endpoints: endpointsOf(a, b) });
  await assert.rejects(cluster.execute("boom", {}, { idempotent: true }), HandlerFailedError);
  await assert.rejects(cluster.execute("nope"), UnknownCommandError);
  assert.deepEqual(await cluster.execute("refuse", { reason: "no" }), {
    error: true,
    message: "refused",
    reason: "no",
  });
  const { retries, failed } = cluster.stats;
  assert.equal(Object.values(retries).reduce((x, y) => x + y), 0);
  assert.equal(failed, 2);
});

Deno.test("TCPClusterClient gives up after its retries with the connect error", async () => {
  const events: RetryEvent[] = [];
  await using cluster = new TCPClusterClient({
    endpoints: [{ host: HOST, port: deadPort() }, { host: HOST, port: deadPort() }],
    retry: { retries: 3, baseDelay: 5, maxDelay: 20 },
    onRetry: (event) => events.push(event),
  });
  const error = await cluster.execute("who").catch((e) => e);
  assert.ok(error instanceof ConnectionClosedError, String(error));
  assert.ok(error.cause instanceof Deno.errors.ConnectionRefused, String(error.cause));
  const ports = cluster.status().map((s) => s.port);
  assert.ok(ports.some((port) => error.message.startsWith(`Cannot connect to ${HOST}:${port}: `)));
  assert.equal(cluster.stats.retries.refused, 3);
  assert.deepEqual(events.map((e) => e.retry), [1, 2, 3]);
  assert.deepEqual(cluster.status().map((s) => s.up), [false, false]);
});

Deno.test("TCPClusterClient never waits past a call's timeout, retries included", async () => {
  await using cluster = new TCPClusterClient({
    endpoints: [{ host: HOST, port: deadPort() }],
    retry: { retries: 100, baseDelay: 200, maxDelay: 200 },
  });
  const started = Date.now();
  const timedOut = await cluster.execute("who", {}, { timeout: 300 }).catch((e) => e);
  assert.ok(timedOut instanceof CallTimeoutError, String(timedOut));
  assert.equal(timedOut.message, 'Call to "who" timed out after 300 ms');
  assert.ok(Date.now() - started < 1_000);
});

Deno.test("TCPClusterClient.close rejects later calls and closes every connection", async () => {
  await using a = await startNamed("a");
  await using b = await startNamed("b");
  const cluster = new TCPClusterClient({ endpoints: endpointsOf(a, b), connections: 2 });
  await Promise.all(Array.from({ length: 8 }, () => cluster.execute("who")));
  const inFlight = cluster.execute("sleep", { ms: 100 }).catch((error) => error);
  await cluster.close();
  assert.ok(await inFlight instanceof ConnectionClosedError);
  await assert.rejects(cluster.execute("who"), ConnectionClosedError);
  assert.deepEqual(cluster.status().map((s) => s.connections), [0, 0]);
  await cluster.close(); // twice is fine
  await delay(100); // the handler's timer
});

Deno.test("TCPClusterClient checks its options", () => {
  assert.throws(() => new TCPClusterClient({ endpoints: [] }), TypeError);
  assert.throws(() => new TCPClusterClient({ endpoints: [{ port: 0 }] }), RangeError);
  assert.throws(
    () => new TCPClusterClient({ endpoints: [{ port: 7272 }], connections: 0 }),
    RangeError,
  );
  assert.throws(
    () => new TCPClusterClient({ endpoints: [{ port: 7272 }], retry: { retries: -1 } }),
    RangeError,
  );
  assert.throws(
    () => new TCPClusterClient({ endpoints: [{ port: 7272 }], maxUnreadMessages: 0 }),
    /Cannot create TCPClusterClient with maxUnreadMessages 0/,
  );
  assert.throws(
    () => new TCPClusterClient({ endpoints: [{ port: 7272 }], timeout: -1 }),
    RangeError,
  );
});

/**
 * Every limit of the reliability issue, each against a real server on
 * 127.0.0.1: the test fails if the protection is removed.
 */
import assert from "node:assert/strict";
import {
  AuthenticationError,
  CallTimeoutError,
  ErrorCode,
  ServerBusyError,
  TCPClient,
  TCPServer,
} from "../mod.ts";
import { delay, fakeServer, FIXTURES, RawClient, startServer } from "./_helpers.ts";
import { commands } from "./fixtures/handlers.ts";

type Reply = { id: unknown; result?: unknown; error?: { code: number; message: string } };

Deno.test("maxConnections: the excess client gets -32001 and is closed, the others keep working", async () => {
  await using server = await startServer({ threads: 0, maxConnections: 3 });
  const clients = [0, 1, 2].map(() => new TCPClient({ port: server.port }));
  try {
    for (const client of clients) await client.execute("add", { x: 1, y: 1 });
    const extra = await RawClient.connect(server.port);
    try {
      const reply = await extra.read() as Reply;
      assert.equal(reply.id, null);
      assert.equal(reply.error?.code, ErrorCode.SERVER_BUSY);
      assert.match(reply.error!.message, /too many connections \(limit 3\)/);
      assert.equal(await extra.read(), undefined);
    } finally {
      extra.close();
    }
    for (const client of clients) {
      assert.deepEqual(await client.execute("add", { x: 2, y: 2 }), { success: true, solution: 4 });
    }
    // A slot freed is a slot reusable.
    await clients[0].disconnect();
    for (let i = 0; i < 50 && server.connections > 2; i++) await delay(10);
    const again = new TCPClient({ port: server.port });
    assert.deepEqual(await again.execute("add", { x: 3, y: 3 }), { success: true, solution: 6 });
    await again.disconnect();
  } finally {
    for (const client of clients) await client.disconnect();
  }
});

Deno.test("maxInFlight: calls past the per-connection cap get -32001 at once", async () => {
  for (const threads of [0, 1]) {
    await using server = await startServer({ threads, maxInFlight: 4 });
    await using client = new TCPClient({ port: server.port });
    const started = Date.now();
    const calls = Array.from({ length: 10 }, () => client.execute("sleep", { ms: 300 }));
    const settled = await Promise.allSettled(calls);
    const busy = settled.filter((s) => s.status === "rejected");
    assert.equal(busy.length, 6);
    for (const s of busy) assert.ok((s as PromiseRejectedResult).reason instanceof ServerBusyError);
    assert.equal(settled.filter((s) => s.status === "fulfilled").length, 4);
    assert.ok(Date.now() - started < 3000);
  }
});

Deno.test("maxPendingCalls: the pool's queue is capped server-wide with -32001", async () => {
  await using server = await startServer({ threads: 1, maxPendingCalls: 3 });
  await using a = new TCPClient({ port: server.port });
  await using b = new TCPClient({ port: server.port });
  const first = [a.execute("sleep", { ms: 200 }), a.execute("sleep", { ms: 200 })];
  const second = [b.execute("sleep", { ms: 200 }), b.execute("sleep", { ms: 200 })];
  const settled = await Promise.allSettled([...first, ...second]);
  assert.equal(settled.filter((s) => s.status === "fulfilled").length, 3);
  const [rejected] = settled.filter((s) => s.status === "rejected") as PromiseRejectedResult[];
  assert.ok(rejected.reason instanceof ServerBusyError);
  assert.match(rejected.reason.message, /3 calls already queued for the worker pool/);
  // Inline commands do not count against the pool's queue.
  assert.deepEqual(await b.execute("whereInline"), { thread: "main" });
});

Deno.test("handlerTimeout: a hung call is answered with -32002 and the connection goes on", async () => {
  for (const threads of [0, 1]) {
    await using server = await startServer({ threads, handlerTimeout: 150 });
    await using client = new TCPClient({ port: server.port });
    const started = Date.now();
    await assert.rejects(client.execute("sleep", { ms: 2000 }), CallTimeoutError);
    assert.ok(Date.now() - started < 1500, `${Date.now() - started} ms`);
    // A conversation waiting on a client that never answers times out too.
    const call = client.call("greet");
    await call.recv();
    await assert.rejects(call.result, CallTimeoutError);
    assert.deepEqual(await client.execute("add", { x: 1, y: 2 }), { success: true, solution: 3 });
    await delay(threads === 0 ? 1900 : 0); // inline: let the abandoned sleep end (no leaked timer)
  }
});

Deno.test("handlerTimeout: a worker stuck in a CPU loop is written off and replaced", async () => {
  await using server = await startServer({ threads: 1, handlerTimeout: 200 });
  await using client = new TCPClient({ port: server.port });
  const before = await client.execute("where") as { thread: string };
  const spinMs = 5000;
  const spinStarted = Date.now();
  await assert.rejects(client.execute("spin", { ms: spinMs }), CallTimeoutError);
  // With one thread, only a replacement can answer while the old one spins.
  let answered: unknown;
  while (!answered && Date.now() - spinStarted < spinMs - 500) {
    try {
      answered = await client.execute("add", { x: 2, y: 3 }, { timeout: 1000 });
    } catch {
      await delay(50);
    }
  }
  assert.deepEqual(answered, { success: true, solution: 5 });
  assert.ok(Date.now() - spinStarted < spinMs, "answered while the stuck thread still spins");
  assert.equal((await client.execute("where") as { thread: string }).thread, before.thread);
  // Let the written-off thread finish its loop before the test ends.
  await delay(spinMs - (Date.now() - spinStarted) + 100);
});

Deno.test("maxOutputBytes + writeTimeout: a client that never reads is cut, others are served", async () => {
  await using server = await startServer({
    threads: 0,
    maxOutputBytes: 64 * 1024,
    writeTimeout: 300,
  });
  const hog = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
  const payload = "x".repeat(16 * 1024);
  const request = new TextEncoder().encode(
    `{"jsonrpc":"2.0","id":1,"method":"echo","params":{"p":"${payload}"}}\n`.repeat(64),
  );
  // Write requests until the server stops reading us (our writes stall) or cuts us off.
  const writing = (async () => {
    let sent = 0;
    try {
      for (let i = 0; i < 2000; i++) {
        await hog.write(request);
        sent += request.length;
      }
    } catch {
      // Cut off by the server: expected.
    }
    return sent;
  })();
  await using other = new TCPClient({ port: server.port });
  assert.deepEqual(await other.execute("add", { x: 1, y: 1 }), { success: true, solution: 2 });
  // Within a few write deadlines the hog's connection is gone.
  for (let i = 0; i < 100 && server.connections > 1; i++) await delay(50);
  assert.equal(server.connections, 1, "the slow reader's connection was closed");
  hog.close();
  const sent = await writing;
  assert.ok(sent < 2000 * request.length, `backpressure stopped the hog after ${sent} bytes`);
  assert.deepEqual(await other.execute("add", { x: 2, y: 2 }), { success: true, solution: 4 });
});

Deno.test("idleTimeout: an idle connection is closed, a busy one is not", async () => {
  await using server = await startServer({ threads: 0, idleTimeout: 200 });
  const idle = await RawClient.connect(server.port);
  const busy = await RawClient.connect(server.port);
  try {
    await busy.write('{"jsonrpc":"2.0","id":1,"method":"sleep","params":{"ms":600}}\n');
    const started = Date.now();
    assert.equal(await idle.closedByPeer(), true);
    const idleFor = Date.now() - started;
    assert.ok(idleFor >= 150 && idleFor < 1500, `closed after ${idleFor} ms`);
    assert.deepEqual((await busy.read() as Reply).result, { success: true, slept: 600 });
  } finally {
    idle.close();
    busy.close();
  }
});

Deno.test("nesting deeper than the limit is refused with -32600 before it reaches a worker", async () => {
  await using server = await startServer({ threads: 1 });
  const raw = await RawClient.connect(server.port);
  try {
    const deep = "[".repeat(5000) + "]".repeat(5000);
    await raw.write(`{"jsonrpc":"2.0","id":1,"method":"echo","params":{"a":${deep}}}\n`);
    const reply = await raw.read() as Reply;
    assert.equal(reply.error?.code, ErrorCode.INVALID_REQUEST);
    assert.match(reply.error!.message, /deeper than 64/);
    await raw.write('{"jsonrpc":"2.0","id":2,"method":"add","params":{"x":1,"y":2}}\n');
    assert.deepEqual((await raw.read() as Reply).result, { success: true, solution: 3 });
  } finally {
    raw.close();
  }
});

Deno.test("repeated oversized messages cost nothing: each connection is told and closed", async () => {
  await using server = await startServer({ threads: 0, maxMessageBytes: 4096 });
  const chunk = new TextEncoder().encode("y".repeat(64 * 1024));
  for (let i = 0; i < 20; i++) {
    const raw = await RawClient.connect(server.port);
    try {
      await raw.write(chunk); // 64 KiB, no newline: never buffered whole
      const reply = await raw.read() as Reply;
      assert.equal(reply.error?.code, ErrorCode.MESSAGE_TOO_LARGE);
      assert.equal(await raw.closedByPeer(), true);
    } finally {
      raw.close();
    }
  }
  for (let i = 0; i < 50 && server.connections > 0; i++) await delay(10);
  assert.equal(server.connections, 0);
});

Deno.test("secret: only a connection that sends tcpy.auth first with the secret can call", async () => {
  await using server = await startServer({ threads: 0, secret: "s3cret", authTimeout: 300 });
  await using good = new TCPClient({ port: server.port, secret: "s3cret" });
  assert.deepEqual(await good.execute("add", { x: 1, y: 2 }), { success: true, solution: 3 });

  await using bad = new TCPClient({ port: server.port, secret: "guess" });
  await assert.rejects(bad.execute("add", { x: 1, y: 2 }), AuthenticationError);

  await using none = new TCPClient({ port: server.port });
  await assert.rejects(none.execute("add", { x: 1, y: 2 }), AuthenticationError);

  // Silent: closed after authTimeout. Big first message: closed at 4 KiB.
  const silent = await RawClient.connect(server.port);
  const big = await RawClient.connect(server.port);
  try {
    await big.write("z".repeat(10_000));
    assert.equal((await big.read() as Reply).error?.code, ErrorCode.UNAUTHORIZED);
    const started = Date.now();
    const reply = await silent.read(2000) as Reply;
    assert.equal(reply.error?.code, ErrorCode.UNAUTHORIZED);
    assert.ok(Date.now() - started < 1500);
    assert.equal(await silent.closedByPeer(), true);
  } finally {
    silent.close();
    big.close();
  }
});

Deno.test("TCPClient reconnect: retries a refused connect with backoff until the server is up", async () => {
  const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (probe.addr as Deno.NetAddr).port;
  probe.close();
  await using client = new TCPClient({
    host: "127.0.0.1",
    port,
    reconnect: { retries: 20, baseDelay: 20, maxDelay: 100 },
  });
  const call = client.execute("add", { x: 1, y: 2 });
  await delay(150);
  await using _server = await startServer({ threads: 0, port });
  assert.deepEqual(await call, { success: true, solution: 3 });
});

Deno.test("TLS: a client trusting the server's certificate calls over TLS; a plain one cannot", async () => {
  const dir = await Deno.makeTempDir();
  try {
    // A throwaway CA and a leaf certificate for localhost/127.0.0.1 signed by it
    // (rustls refuses a self-signed CA certificate used as the server's own).
    await Deno.writeTextFile(
      `${dir}/leaf.ext`,
      "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    );
    const ca = ["-CA", `${dir}/ca.pem`, "-CAkey", `${dir}/ca.key`, "-CAcreateserial"];
    const steps = [
      ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=tcpy test CA"]
        .concat(["-keyout", `${dir}/ca.key`, "-out", `${dir}/ca.pem`]),
      ["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost"]
        .concat(["-keyout", `${dir}/key.pem`, "-out", `${dir}/leaf.csr`]),
      ["x509", "-req", "-in", `${dir}/leaf.csr`, ...ca, "-days", "1"]
        .concat(["-extfile", `${dir}/leaf.ext`, "-out", `${dir}/cert.pem`]),
    ];
    for (const args of steps) {
      const made = await new Deno.Command("openssl", { args, stdout: "null", stderr: "piped" })
        .output();
      assert.equal(made.code, 0, new TextDecoder().decode(made.stderr));
    }
    await using server = await startServer({
      threads: 1,
      tls: { certFile: `${dir}/cert.pem`, keyFile: `${dir}/key.pem` },
    });
    await using client = new TCPClient({
      host: "localhost",
      port: server.port,
      tls: { caFile: `${dir}/ca.pem` },
    });
    assert.deepEqual(await client.execute("add", { x: 20, y: 22 }), {
      success: true,
      solution: 42,
    });
    const call = client.call("greet");
    await call.recv();
    await call.send({ name: "TLS" });
    assert.deepEqual(await call.result, { success: true, text: "Hello, TLS" });

    await using untrusting = new TCPClient({ host: "localhost", port: server.port, tls: true });
    await assert.rejects(untrusting.execute("add", { x: 1, y: 1 }));
    await using plain = new TCPClient({ host: "localhost", port: server.port, timeout: 2000 });
    await assert.rejects(plain.execute("add", { x: 1, y: 1 }));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("TCP keepalive is on for accepted connections", async () => {
  await using server = await startServer({ threads: 0 });
  await using client = new TCPClient({ host: "127.0.0.1", port: server.port });
  await client.execute("add", { x: 1, y: 1 });
  const ss = await new Deno.Command("ss", {
    args: ["-tnoH", "state", "established", `sport = :${server.port}`],
    stdout: "piped",
  }).output();
  const line = new TextDecoder().decode(ss.stdout);
  assert.match(line, /timer:\(keepalive/, line);
});

Deno.test("the accept loop survives running out of file descriptors and recovers", async () => {
  // A server in a subprocess limited to 64 descriptors, then more clients than that.
  const script = `
    import { startServer } from ${JSON.stringify(new URL("./_helpers.ts", import.meta.url).href)};
    const server = await startServer({ threads: 0 });
    console.log("PORT", server.port);
    Deno.addSignalListener("SIGTERM", () => server.close());`;
  const child = new Deno.Command("sh", {
    args: ["-c", `ulimit -n 64 && exec "$0" eval "$1"`, Deno.execPath(), script],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const clients: Deno.Conn[] = [];
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  try {
    let out = "";
    while (!out.includes("\n")) {
      const { value, done } = await lines.read();
      if (done) throw new Error("server did not start");
      out += value;
    }
    const port = Number(/PORT (\d+)/.exec(out)![1]);
    const first = new TCPClient({ host: "127.0.0.1", port });
    assert.deepEqual(await first.execute("add", { x: 1, y: 1 }), { success: true, solution: 2 });
    // The kernel completes these handshakes, but the server cannot accept them all.
    for (let i = 0; i < 100; i++) {
      clients.push(await Deno.connect({ hostname: "127.0.0.1", port }));
    }
    await delay(300);
    // An established connection keeps working while accept() fails with EMFILE.
    assert.deepEqual(await first.execute("add", { x: 2, y: 2 }), { success: true, solution: 4 });
    await first.disconnect();
    for (const conn of clients.splice(0)) conn.close();
    // Once descriptors are free again, new clients are served.
    let recovered: unknown;
    for (let i = 0; i < 40 && !recovered; i++) {
      const late = new TCPClient({ host: "127.0.0.1", port, timeout: 1000 });
      try {
        recovered = await late.execute("add", { x: 3, y: 3 });
      } catch {
        await delay(100);
      } finally {
        await late.disconnect();
      }
    }
    assert.deepEqual(recovered, { success: true, solution: 6 });
  } finally {
    for (const conn of clients) conn.close();
    child.kill("SIGTERM");
    const status = await child.status;
    await lines.cancel();
    const stderr = await new Response(child.stderr).text();
    assert.equal(status.code, 0, stderr);
  }
});

Deno.test("close() during listen() stops the server: listen rejects and nothing is left running", async () => {
  const server = new TCPServer({
    host: "127.0.0.1",
    port: 0,
    threads: 1,
    commands,
    module: FIXTURES,
    onListen() {},
  });
  const listening = server.listen();
  await server.close();
  await assert.rejects(listening, /closed while it started/);
  assert.equal(server.listening, false);
  await assert.rejects(server.listen(), /already started/);
});

Deno.test("secret: an oversized or repeated unauthenticated message gets one -32008, then close", async () => {
  await using server = await startServer({ threads: 0, secret: "s3cret" });
  for (const first of ["z".repeat(10_000) + "\n", "a\nb\nc\n"]) {
    const raw = await RawClient.connect(server.port);
    try {
      await raw.write(first);
      assert.equal((await raw.read() as Reply).error?.code, ErrorCode.UNAUTHORIZED);
      assert.equal(await raw.read(), undefined, "nothing after the refusal");
    } finally {
      raw.close();
    }
  }
});

Deno.test("TCPClient does not send a call that was aborted while it connected", async () => {
  const seen: string[] = [];
  await using fake = fakeServer(async (conn) => {
    const buf = new Uint8Array(4096);
    const n = await conn.read(buf);
    if (n) seen.push(new TextDecoder().decode(buf.subarray(0, n)));
    await delay(100);
  });
  await using client = new TCPClient({ port: fake.port });
  const controller = new AbortController();
  const call = client.execute("charge", { amount: 5 }, { signal: controller.signal });
  controller.abort(new Error("changed my mind"));
  await assert.rejects(call, /changed my mind/);
  const other = client.execute("other");
  await delay(50);
  assert.ok(seen.join("").includes('"other"'));
  assert.ok(!seen.join("").includes('"charge"'), seen.join(""));
  await client.disconnect();
  await other.catch(() => {});
});

Deno.test("maxReplyBytes: a batch of non-ASCII replies is measured in UTF-8 bytes", async () => {
  await using server = await startServer({ threads: 0, maxReplyBytes: 1000 });
  const raw = await RawClient.connect(server.port);
  try {
    const text = "€".repeat(200); // 600 bytes of UTF-8, 200 UTF-16 units
    const call = (id: number) =>
      JSON.stringify({ jsonrpc: "2.0", id, method: "echo", params: { text } });
    await raw.write(`[${call(1)},${call(2)}]\n`);
    const replies = await raw.read() as {
      id: number;
      result?: unknown;
      error?: { code: number };
    }[];
    assert.deepEqual(replies[0], { jsonrpc: "2.0", id: 1, result: { text } });
    assert.equal(replies[1].id, 2);
    assert.equal(replies[1].error?.code, -32603, "two replies of 600+ bytes exceed 1000 bytes");
  } finally {
    raw.close();
  }
});

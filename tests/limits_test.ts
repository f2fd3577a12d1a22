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
import {
  delay,
  fakeServer,
  FIXTURES,
  RawClient,
  startFixtures,
  startServer,
  waitFor,
} from "./_helpers.ts";
import { commands, sleepsRunning } from "./fixtures/handlers.ts";
import { Child, freePort } from "../tools/_process.ts";

type Reply = { id: unknown; result?: unknown; error?: { code: number; message: string } };

Deno.test("maxConnections: the excess client gets -32001 and is closed, the others keep working", async () => {
  await using t = await startFixtures({ threads: 0, maxConnections: 3 });
  const clients = [0, 1, 2].map(() => t.client());
  try {
    for (const client of clients) await client.execute("add", { x: 1, y: 1 });
    const extra = await RawClient.connect(t.port);
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
    await waitFor(() => t.server.connections === 2, { what: "the server to see a client leave" });
    const again = t.client();
    assert.deepEqual(await again.execute("add", { x: 3, y: 3 }), { success: true, solution: 6 });
    await again.disconnect();
  } finally {
    for (const client of clients) await client.disconnect();
  }
});

Deno.test("maxInFlight: calls past the per-connection cap get -32001 at once", async () => {
  for (const threads of [0, 1]) {
    await using t = await startFixtures({ threads, maxInFlight: 4 });
    const client = t.client({ timeout: 10_000 }); // a call admitted past the cap fails, not hangs
    // Conversations that end only when answered: the first 4 stay in flight.
    const calls = Array.from({ length: 10 }, () => client.call("greet"));
    const busy = await Promise.allSettled(calls.slice(4).map((call) => call.result));
    for (const s of busy) {
      assert.equal(s.status, "rejected");
      assert.ok((s as PromiseRejectedResult).reason instanceof ServerBusyError);
    }
    // At once: refused while the 4 admitted calls were still running, not queued behind them.
    assert.equal(t.server.inFlight, 4);
    for (const call of calls.slice(0, 4)) {
      assert.deepEqual(await call.recv(), { question: "name?" });
      await call.send({ name: "Ada" });
      assert.deepEqual(await call.result, { success: true, text: "Hello, Ada" });
    }
  }
});

Deno.test("maxPendingCalls: the pool's queue is capped server-wide with -32001", async () => {
  await using t = await startFixtures({ threads: 1, maxPendingCalls: 3 });
  const a = t.client();
  const b = t.client();
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
    await using t = await startFixtures({ threads, handlerTimeout: 150 });
    const client = t.client({ timeout: 10_000 });
    // The server's answer, not the end of the sleep (a minute) nor the client giving up (10 s).
    await assert.rejects(
      client.execute("sleep", { ms: 60_000 }),
      new CallTimeoutError('Call to "sleep" timed out after 150 ms'),
    );
    // A conversation waiting on a client that never answers times out too.
    const call = client.call("greet");
    await call.recv();
    await assert.rejects(call.result, CallTimeoutError);
    assert.deepEqual(await client.execute("add", { x: 1, y: 2 }), { success: true, solution: 3 });
    // The abandoned sleep stopped its timer on the call's signal (else the test leaks it).
    if (threads === 0) assert.equal(sleepsRunning(), 0);
  }
});

Deno.test("handlerTimeout: a worker stuck in a CPU loop is written off and replaced", async () => {
  const dir = await Deno.makeTempDir({ prefix: "tcpy-spin-" });
  const stop = `${dir}/stop`; // the stuck handler spins until this file exists
  let spinning = false;
  try {
    await using t = await startFixtures({ threads: 1, handlerTimeout: 200 });
    const client = t.client();
    const before = await client.execute("where") as { thread: string };
    const spinMs = 60_000;
    const spinStarted = Date.now();
    await assert.rejects(client.execute("spin", { ms: spinMs, until: stop }), CallTimeoutError);
    spinning = true;
    // With one thread, only a replacement can answer while the old one spins.
    const answered = await waitFor(
      () => client.execute("add", { x: 2, y: 3 }, { timeout: 1000 }).catch(() => undefined),
      { what: "a replacement worker to answer", timeout: 20_000 },
    );
    assert.deepEqual(answered, { success: true, solution: 5 });
    assert.ok(Date.now() - spinStarted < spinMs, "answered while the stuck thread still spins");
    assert.equal((await client.execute("where") as { thread: string }).thread, before.thread);
  } finally {
    // End the written-off thread's loop; it removes the file once it has seen it.
    await Deno.writeTextFile(stop, "");
    if (spinning) {
      await waitFor(() => Deno.stat(stop).then(() => false, () => true), {
        what: "the stuck thread to end its loop",
      });
    }
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("maxOutputBytes + writeTimeout: a client that never reads is cut, others are served", async () => {
  await using t = await startFixtures({
    threads: 0,
    maxOutputBytes: 64 * 1024,
    writeTimeout: 300,
  });
  const hog = await Deno.connect({ hostname: "127.0.0.1", port: t.port });
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
  const other = t.client();
  assert.deepEqual(await other.execute("add", { x: 1, y: 1 }), { success: true, solution: 2 });
  // Within a few write deadlines the hog's connection is gone.
  await waitFor(() => t.server.connections === 1, {
    what: "the slow reader's connection to close",
  });
  hog.close();
  const sent = await writing;
  assert.ok(sent < 2000 * request.length, `backpressure stopped the hog after ${sent} bytes`);
  assert.deepEqual(await other.execute("add", { x: 2, y: 2 }), { success: true, solution: 4 });
});

Deno.test("idleTimeout: an idle connection is closed, a busy one is not", async () => {
  await using t = await startFixtures({ threads: 0, idleTimeout: 200 });
  const idle = await RawClient.connect(t.port);
  const busy = await RawClient.connect(t.port);
  try {
    await busy.write('{"jsonrpc":"2.0","id":1,"method":"sleep","params":{"ms":600}}\n');
    const started = Date.now();
    assert.equal(await idle.closedByPeer(), true);
    const idleFor = Date.now() - started;
    assert.ok(idleFor >= 150, `closed after ${idleFor} ms, before the idle timeout`);
    assert.deepEqual((await busy.read() as Reply).result, { success: true, slept: 600 });
  } finally {
    idle.close();
    busy.close();
  }
});

Deno.test("nesting deeper than the limit is refused with -32600 before it reaches a worker", async () => {
  await using t = await startFixtures({ threads: 1 });
  const raw = await RawClient.connect(t.port);
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
  await using t = await startFixtures({ threads: 0, maxMessageBytes: 4096 });
  const chunk = new TextEncoder().encode("y".repeat(64 * 1024));
  for (let i = 0; i < 20; i++) {
    const raw = await RawClient.connect(t.port);
    try {
      await raw.write(chunk); // 64 KiB, no newline: never buffered whole
      const reply = await raw.read() as Reply;
      assert.equal(reply.error?.code, ErrorCode.MESSAGE_TOO_LARGE);
      assert.equal(await raw.closedByPeer(), true);
    } finally {
      raw.close();
    }
  }
  await waitFor(() => t.server.connections === 0, { what: "every refused connection to close" });
});

Deno.test("secret: only a connection that sends tcpy.auth first with the secret can call", async () => {
  await using t = await startFixtures({ threads: 0, secret: "s3cret", authTimeout: 300 });
  const good = t.client(); // the server's secret
  assert.deepEqual(await good.execute("add", { x: 1, y: 2 }), { success: true, solution: 3 });

  const bad = t.client({ secret: "guess" });
  await assert.rejects(bad.execute("add", { x: 1, y: 2 }), AuthenticationError);

  await using none = new TCPClient({ port: t.port }); // no secret
  await assert.rejects(none.execute("add", { x: 1, y: 2 }), AuthenticationError);

  // Silent: closed after authTimeout. Big first message: closed at 4 KiB.
  const silent = await RawClient.connect(t.port);
  const big = await RawClient.connect(t.port);
  try {
    await big.write("z".repeat(10_000));
    assert.equal((await big.read() as Reply).error?.code, ErrorCode.UNAUTHORIZED);
    // Told within authTimeout (300 ms), well before the default of 5 s.
    const reply = await silent.read(4_000) as Reply;
    assert.equal(reply.error?.code, ErrorCode.UNAUTHORIZED);
    assert.equal(await silent.closedByPeer(), true);
  } finally {
    silent.close();
    big.close();
  }
});

Deno.test("TCPClient reconnect: retries a refused connect with backoff until the server is up", async () => {
  const port = freePort();
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
    // P-256 keys: generated in milliseconds, where RSA keys can take a second.
    const key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    const steps = [
      ["req", "-x509", ...key, "-days", "1", "-subj", "/CN=tcpy test CA"]
        .concat(["-keyout", `${dir}/ca.key`, "-out", `${dir}/ca.pem`]),
      ["req", ...key, "-subj", "/CN=localhost"]
        .concat(["-keyout", `${dir}/key.pem`, "-out", `${dir}/leaf.csr`]),
      ["x509", "-req", "-in", `${dir}/leaf.csr`, ...ca, "-days", "1"]
        .concat(["-extfile", `${dir}/leaf.ext`, "-out", `${dir}/cert.pem`]),
    ];
    for (const args of steps) {
      const made = await new Deno.Command("openssl", { args, stdout: "null", stderr: "piped" })
        .output();
      assert.equal(made.code, 0, new TextDecoder().decode(made.stderr));
    }
    await using t = await startFixtures({
      threads: 1,
      tls: { certFile: `${dir}/cert.pem`, keyFile: `${dir}/key.pem` },
    });
    await using client = new TCPClient({
      host: "localhost",
      port: t.port,
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

    await using untrusting = new TCPClient({ host: "localhost", port: t.port, tls: true });
    await assert.rejects(untrusting.execute("add", { x: 1, y: 1 }));
    await using plain = new TCPClient({ host: "localhost", port: t.port, timeout: 2000 });
    await assert.rejects(plain.execute("add", { x: 1, y: 1 }));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("TCP keepalive is on for accepted connections", async () => {
  await using t = await startFixtures({ threads: 0 });
  const client = t.client();
  await client.execute("add", { x: 1, y: 1 });
  const ss = await new Deno.Command("ss", {
    args: ["-tnoH", "state", "established", `sport = :${t.port}`],
    stdout: "piped",
  }).output();
  const line = new TextDecoder().decode(ss.stdout);
  assert.match(line, /timer:\(keepalive/, line);
});

Deno.test("the accept loop survives running out of file descriptors and recovers", async () => {
  // A server in a subprocess limited to 64 descriptors, then more clients than that.
  const script = `
    import { startFixtures } from ${JSON.stringify(new URL("./_helpers.ts", import.meta.url).href)};
    const t = await startFixtures({ threads: 0 });
    console.log("PORT", t.port);
    Deno.addSignalListener("SIGTERM", () => t.close());`;
  await using child = new Child("sh", [
    "-c",
    `ulimit -n 64 && exec "$0" eval "$1"`,
    Deno.execPath(),
    script,
  ]);
  const clients: Deno.Conn[] = [];
  try {
    const port = Number((await child.waitFor(/PORT (\d+)/))[1]);
    const first = new TCPClient({ host: "127.0.0.1", port });
    assert.deepEqual(await first.execute("add", { x: 1, y: 1 }), { success: true, solution: 2 });
    // The kernel completes these handshakes, but the server cannot accept them all.
    for (let i = 0; i < 100; i++) {
      clients.push(await Deno.connect({ hostname: "127.0.0.1", port }));
    }
    await waitFor(async () => (await openFiles(child.pid)) >= 64, {
      what: "the server to use all its 64 descriptors",
    });
    // An established connection keeps working while accept() fails with EMFILE.
    assert.deepEqual(await first.execute("add", { x: 2, y: 2 }), { success: true, solution: 4 });
    await first.disconnect();
    for (const conn of clients.splice(0)) conn.close();
    // Once descriptors are free again, new clients are served.
    const recovered = await waitFor(async () => {
      const late = new TCPClient({ host: "127.0.0.1", port, timeout: 1000 });
      try {
        return await late.execute("add", { x: 3, y: 3 });
      } catch {
        return undefined;
      } finally {
        await late.disconnect();
      }
    }, { what: "a new client to be served", interval: 100 });
    assert.deepEqual(recovered, { success: true, solution: 6 });
  } finally {
    for (const conn of clients) conn.close();
  }
  const done = await child.stop("SIGTERM");
  assert.equal(done.code, 0, child.stderr);
});

/** How many descriptors process `pid` has open (Linux; through `ls`, as Deno guards /proc). */
async function openFiles(pid: number): Promise<number> {
  const { stdout } = await new Deno.Command("ls", { args: [`/proc/${pid}/fd`], stderr: "null" })
    .output();
  return new TextDecoder().decode(stdout).split("\n").filter((line) => line !== "").length;
}

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
  await using t = await startFixtures({ threads: 0, secret: "s3cret" });
  for (const first of ["z".repeat(10_000) + "\n", "a\nb\nc\n"]) {
    const raw = await RawClient.connect(t.port);
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
  let seen = "";
  await using fake = fakeServer(async (conn) => {
    const decoder = new TextDecoder();
    for await (const chunk of conn.readable) seen += decoder.decode(chunk, { stream: true });
  });
  await using client = new TCPClient({ port: fake.port });
  const controller = new AbortController();
  const call = client.execute("charge", { amount: 5 }, { signal: controller.signal });
  controller.abort(new Error("changed my mind"));
  await assert.rejects(call, /changed my mind/);
  const other = client.execute("other");
  // Calls go out in order: once "other" arrived, an aborted "charge" would have too.
  await waitFor(() => seen.includes('"other"'), { what: "the next call to arrive" });
  assert.ok(!seen.includes('"charge"'), seen);
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

Deno.test("a read whose replies the client does not take yet is held, not queued: nothing is lost or cut", async () => {
  // Before, the whole read was dispatched at once: ~190 KB of replies queued in the
  // server, far past the slow-consumer cut (16 KiB here), and the client was cut.
  await using t = await startFixtures({ threads: 0, maxOutputBytes: 1024, maxReplyBytes: 4096 });
  const raw = await RawClient.connect(t.port);
  try {
    // One read of 2,000 empty batches: ~95 bytes of error reply each. The server
    // dispatches them only while less than maxOutputBytes waits to be written.
    await raw.write("[]\n".repeat(2000));
    for (let i = 0; i < 2000; i++) {
      const reply = await raw.read() as { error?: { code: number } };
      assert.equal(reply.error?.code, -32600, `reply ${i}`);
    }
    assert.deepEqual(await t.client().execute("add", { x: 1, y: 2 }), {
      success: true,
      solution: 3,
    });
  } finally {
    raw.close();
  }
});

/**
 * I/O threads ("shards"): several Web Workers listening on one port with
 * SO_REUSEPORT. Needs `--unstable-net`, so the server runs as a subprocess.
 */
import assert from "node:assert/strict";
import { ShuttingDownError, TCPClient } from "../mod.ts";
import { Child, waitFor, within } from "../tools/_process.ts";

const SERVER = new URL("./fixtures/io_server.ts", import.meta.url);

/** Starts tests/fixtures/io_server.ts (on `port`, else a free one) as its own process. */
function ioServer(name: string, port?: number, stderr: "piped" | "inherit" = "inherit"): Child {
  return new Child(Deno.execPath(), [
    "run",
    "--unstable-net",
    "--allow-net=127.0.0.1",
    "--allow-read",
    SERVER.pathname,
    ...(port === undefined ? [] : [String(port)]),
  ], { name, stderr });
}

Deno.test("I/O threads share one port: connections spread over them, pooled calls reach the pool, close drains", async () => {
  await using server = ioServer("io_server.ts");
  const match = await server.waitFor(/^PORT (\d+) IO (\d+)\n/);
  const [port, io] = [Number(match[1]), Number(match[2])];
  const clients: TCPClient[] = [];
  try {
    assert.equal(io, 2);
    // The kernel spreads connections by hash: 16 all on one thread is 1 in 32,768.
    for (let i = 0; i < 16; i++) clients.push(new TCPClient({ port }));
    const inline = await Promise.all(clients.map((c) => c.execute("whereInline")));
    const threads = new Set(inline.map((r) => (r as { thread: string }).thread));
    assert.deepEqual([...threads].sort(), ["tcpy-io-0", "tcpy-io-1"]);
    // A command pinned to the pool runs in the pool's worker, whichever I/O thread read it.
    const pooled = await Promise.all(clients.map((c) => c.execute("where")));
    assert.deepEqual(
      new Set(pooled.map((r) => (r as { thread: string }).thread)),
      new Set(["tcpy-worker-0"]),
    );
    // A conversation with a pooled handler crosses both hops.
    const call = clients[0].call("greet", { greeting: "Hi" });
    assert.deepEqual(await call.recv(), { question: "name?" });
    await call.send({ name: "Ada" });
    assert.deepEqual(await call.result, { success: true, text: "Hi, Ada" });
    // Many measured (unset) calls: answered right wherever they run.
    const sums = await Promise.all(
      Array.from({ length: 400 }, (_, i) => clients[i % 16].execute("add", { x: i, y: 1 })),
    );
    sums.forEach((r, i) => assert.deepEqual(r, { success: true, solution: i + 1 }));
    // Hooks run on the main thread, ids above 2^53 included (as exact digits).
    const big = await Deno.connect({ hostname: "127.0.0.1", port });
    await big.write(new TextEncoder().encode(
      '{"jsonrpc":"2.0","id":12345678901234567890,"method":"add","params":{"x":1,"y":1}}\n' +
        '{"jsonrpc":"2.0","id":98765432109876543210,"method":"boom"}\n',
    ));
    const answered = new Uint8Array(4096);
    let text = "";
    while ((text.match(/\n/g) ?? []).length < 2) {
      const n = await big.read(answered);
      if (n === null) break;
      text += new TextDecoder().decode(answered.subarray(0, n));
    }
    big.close();
    assert.match(text, /"id":12345678901234567890,"result"/);
    assert.match(text, /"id":98765432109876543210,"error"/);
    // A second server on the same port is refused, as with one thread.
    const second = ioServer("second io_server.ts", port);
    await second.waitFor(
      /^FAILED AddrInUse: Cannot listen on 127\.0\.0\.1:\d+: the address is already in use/m,
    );
    // It exits by itself, with code 1.
    assert.equal((await within(second.status, 10_000, "the second server to exit")).code, 1);
    // A call in flight during close() still gets its answer: a conversation
    // that waits for its client, answered once the connection drains.
    const held = clients[1].call("greet");
    assert.deepEqual(await held.recv(), { question: "name?" });
    server.process.kill("SIGTERM");
    await waitFor(
      () =>
        clients[1].execute("tcpy.ping").then(() => false, (e) => e instanceof ShuttingDownError),
      { what: "the connection to drain (tcpy.ping refused)" },
    );
    await held.send({ name: "Bo" });
    assert.deepEqual(await held.result, { success: true, text: "Hello, Bo" });
  } finally {
    for (const c of clients) await c.disconnect();
  }
  const done = await server.stop("SIGTERM"); // again, if it still runs
  assert.match(server.stdout, /CLOSED/);
  assert.equal(done.code, 0);
  const observed = JSON.parse(server.stdout.match(/^OBSERVED (.*)$/m)![1]) as {
    calls: unknown[];
    failures: [unknown, string][];
    stats: Record<string, { calls: number; failures: number }>;
  };
  assert.ok(observed.calls.includes("12345678901234567890"), "the big id's call record arrived");
  assert.deepEqual(observed.failures, [["98765432109876543210", "boom"]]);
  assert.equal(observed.stats.add.calls, 401);
  assert.equal(observed.stats.boom.failures, 1);
});

Deno.test("an I/O thread ended by an inline handler is replaced; the port keeps serving on every thread", async () => {
  await using server = ioServer("io_server.ts", undefined, "piped");
  const match = await server.waitFor(/^PORT (\d+) IO (\d+)\n/);
  const port = Number(match[1]);
  const doomed = new TCPClient({ port });
  try {
    await assert.rejects(doomed.execute("quitInline"));
  } finally {
    await doomed.disconnect();
  }
  await server.waitFor(
    /I\/O thread \d stopped \(an inline handler ended the I\/O thread \(self\.close\(\)\)\); starting another/,
    "stderr",
  );
  // Both threads answer again: new connections spread over the survivor and the replacement.
  const seen = new Set<string>();
  await waitFor(async () => {
    const client = new TCPClient({ port });
    try {
      seen.add((await client.execute("whereInline") as { thread: string }).thread);
    } finally {
      await client.disconnect();
    }
    return seen.size === 2;
  }, { what: () => `both I/O threads answering (seen: ${[...seen].join(", ")})`, timeout: 10_000 });
  assert.equal((await server.stop("SIGTERM")).code, 0);
});

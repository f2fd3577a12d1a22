/**
 * I/O threads ("shards"): several Web Workers listening on one port with
 * SO_REUSEPORT. Needs `--unstable-net`, so the server runs as a subprocess.
 */
import assert from "node:assert/strict";
import { TCPClient } from "../mod.ts";

const SERVER = new URL("./fixtures/io_server.ts", import.meta.url);

async function startIoServer() {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--unstable-net", "--allow-net=127.0.0.1", "--allow-read", SERVER.pathname],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let seen = "";
  while (!seen.includes("\n")) {
    const { value, done } = await lines.read();
    if (done) throw new Error(`server exited before listening: ${seen}`);
    seen += value;
  }
  const match = seen.match(/^PORT (\d+) IO (\d+)/);
  assert.ok(match, `unexpected first line: ${seen}`);
  return { child, lines, port: Number(match[1]), io: Number(match[2]) };
}

Deno.test("I/O threads share one port: connections spread over them, pooled calls reach the pool, close drains", async () => {
  const { child, lines, port, io } = await startIoServer();
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
    // A call in flight during close() still gets its answer.
    const slow = clients[1].execute("sleep", { ms: 300 });
    await new Promise((resolve) => setTimeout(resolve, 50));
    child.kill("SIGTERM");
    assert.deepEqual(await slow, { success: true, slept: 300 });
  } finally {
    for (const c of clients) await c.disconnect();
    try {
      child.kill("SIGTERM"); // again, if an assertion failed before
    } catch {
      // Already exited.
    }
    let rest = "";
    while (true) {
      const { value, done } = await lines.read();
      if (done) break;
      rest += value;
    }
    const status = await child.status;
    assert.match(rest, /CLOSED/);
    assert.equal(status.code, 0);
  }
});

/**
 * Who waits behind whom: the scheduler's promises, against real servers on
 * 127.0.0.1 with real workers. Each test is bounded in calls and time, and
 * asserts an order of events (the bystander was answered before the flood
 * was through), never a duration.
 */
import assert from "node:assert/strict";
import { TCPClient } from "../mod.ts";
import { ROOT } from "../scripts/compile.ts";
import { Child } from "../tools/_process.ts";
import { POOL_SHARE } from "../internal/connection.ts";
import { startServer, within } from "./_helpers.ts";

const enc = new TextEncoder();

function request(id: number | string, method: string, params: unknown = {}): string {
  return JSON.stringify({ jsonrpc: "2.0", id, method, params }) + "\n";
}

/** One call on a fresh connection; resolves with its reply line. */
async function callOnce(port: number, method: string, params: unknown): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await conn.write(enc.encode(request(1, method, params)));
    const buffer = new Uint8Array(4096);
    let text = "";
    while (!text.includes("\n")) {
      const n = await conn.read(buffer);
      if (n === null) throw new Error("closed without a reply");
      text += new TextDecoder().decode(buffer.subarray(0, n));
    }
    return text.slice(0, text.indexOf("\n"));
  } finally {
    conn.close();
  }
}

// A flooder in another process, so it keeps the socket full the whole time:
// it sends `total` add calls as fast as the socket takes them, reads the
// replies on a second thread, says "started" after the first 1,000 and
// "done" after the last.
const FLOODER = `
import socket, sys, threading
port, total = int(sys.argv[1]), int(sys.argv[2])
s = socket.create_connection(("127.0.0.1", port))
line = b'{"jsonrpc":"2.0","id":1,"method":"add","params":{"x":1,"y":2}}\\n'
def read():
    seen, said = 0, False
    while seen < total:
        data = s.recv(1 << 16)
        if not data:
            break
        seen += data.count(b"\\n")
        if seen >= 1000 and not said:
            print("started", flush=True)
            said = True
    print("done", seen, flush=True)
t = threading.Thread(target=read)
t.start()
s.sendall(line * total)
t.join()
`;

/** Calls in the flood: a few seconds of work, so it is still going when the bystander calls. */
const FLOOD = 1_500_000;

Deno.test("a connection that keeps its socket full does not hold its thread: a bystander is answered mid-flood", async () => {
  await using server = await startServer({ threads: 0 });
  const flooder = new Deno.Command("python3", {
    args: ["-c", FLOODER, String(server.port), String(FLOOD)],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const lines = flooder.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let said = "";
  const next = async () => {
    while (!said.includes("\n")) {
      const { value, done } = await lines.read();
      if (done) throw new Error(`the flooder ended after: ${said}`);
      said += value;
    }
    const line = said.slice(0, said.indexOf("\n"));
    said = said.slice(said.indexOf("\n") + 1);
    return line;
  };
  try {
    assert.equal(await within(next(), 20_000, "flood started"), "started");
    let floodDone = false;
    const finished = next().then((line) => {
      floodDone = true;
      return line;
    });
    const reply = await within(callOnce(server.port, "add", { x: 2, y: 2 }), 20_000, "bystander");
    assert.match(reply, /"solution":4/);
    // Before: the flood's reads were dispatched back to back while its socket
    // held data, and the bystander waited until the flood was through.
    assert.equal(floodDone, false, "the bystander was answered only after the whole flood");
    assert.equal(await within(finished, 60_000, "flood done"), `done ${FLOOD}`);
  } finally {
    try {
      flooder.kill();
    } catch {
      // Already ended.
    }
    await flooder.status;
    lines.releaseLock();
    await flooder.stdout.cancel().catch(() => {});
  }
});

Deno.test("examples/kv_store.ts at the defaults: 20 connections x 50 concurrent incr end at exactly 1000", async () => {
  // As its header says to run it, with I/O threads (--unstable-net) and the pool.
  await using proc = new Child(Deno.execPath(), [
    "run",
    "--unstable-net",
    "--allow-net",
    "--allow-read",
    "cli.ts",
    "serve",
    "examples/kv_store.ts",
    "--host",
    "127.0.0.1",
    "--port",
    "0",
  ], { cwd: ROOT });
  const match = await proc.waitFor(/tcpy listening on 127\.0\.0\.1:(\d+)/, "stdout", 30_000);
  const port = Number(match[1]);
  const clients = Array.from({ length: 20 }, () => new TCPClient({ host: "127.0.0.1", port }));
  try {
    const values = await within(
      Promise.all(
        clients.flatMap((client) =>
          Array.from({ length: 50 }, () => client.execute("incr", { key: "hits" }))
        ),
      ),
      30_000,
      "1000 incr",
    );
    const seen = values.map((v) => (v as { value: number }).value).sort((a, b) => a - b);
    // Every increment saw a distinct count: none was lost to another thread's copy.
    assert.deepEqual(seen, Array.from({ length: 1000 }, (_, i) => i + 1));
    await using other = new TCPClient({ host: "127.0.0.1", port });
    assert.deepEqual(await other.execute("get", { key: "hits" }), { success: true, value: 1000 });
    assert.deepEqual(await other.execute("get", { key: "none" }), { success: true, value: null });
    assert.deepEqual(await other.execute("set", { key: "a", value: [1] }), { success: true });
    assert.deepEqual(await other.execute("get", { key: "a" }), { success: true, value: [1] });
    assert.deepEqual(await other.execute("delete", { key: "a" }), { success: true, deleted: true });
    assert.deepEqual(await other.execute("delete", { key: "a" }), {
      success: true,
      deleted: false,
    });
    assert.deepEqual(await other.execute("incr", { key: "n", by: 5 }), { success: true, value: 5 });
  } finally {
    for (const client of clients) await client.disconnect();
  }
});

Deno.test("a client that never reads has at most POOL_SHARE calls in the pool: results in transit are bounded", async () => {
  await using server = await startServer({ threads: 2 });
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
  try {
    // 400 pipelined calls with 256 KiB results, never read: before, all 400 went to the
    // pool at once (100 MiB of results on their way to a writer that could not drain).
    let lines = "";
    for (let i = 0; i < 400; i++) lines += request(i, "blob", { bytes: 256 * 1024 });
    await conn.write(enc.encode(lines));
    let most = 0;
    const until = Date.now() + 1500;
    while (Date.now() < until) {
      most = Math.max(most, server.inFlight);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    assert.ok(most > 0, "no call ever reached the pool");
    assert.ok(most <= POOL_SHARE, `${most} calls of one connection in flight at once`);
    // A bystander is still served.
    assert.match(await callOnce(server.port, "add", { x: 1, y: 1 }), /"solution":2/);
  } finally {
    conn.close();
  }
});

Deno.test("a client with POOL_SHARE pooled conversations waiting still reaches them: their messages are not held", async () => {
  await using server = await startServer({ threads: 2 });
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
  try {
    // POOL_SHARE + 4 greet conversations pipelined: the last 4 lines are held until a greet
    // finishes, and each greet waits for its answer, sent after its question.
    const n = POOL_SHARE + 4;
    let lines = "";
    for (let i = 0; i < n; i++) lines += request(i, "greet", {});
    await conn.write(enc.encode(lines));
    const reader = conn.readable.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    let done = 0;
    while (done < n) {
      const { value, done: eof } = await within(reader.read(), 10_000, `reply ${done}`);
      if (eof) throw new Error("closed");
      text += value;
      let at;
      while ((at = text.indexOf("\n")) >= 0) {
        const message = JSON.parse(text.slice(0, at));
        text = text.slice(at + 1);
        if (message.method === "tcpy.message") {
          const answer = {
            jsonrpc: "2.0",
            method: "tcpy.message",
            params: { id: message.params.id, data: { name: "Ada" } },
          };
          await conn.write(enc.encode(JSON.stringify(answer) + "\n"));
        } else {
          assert.deepEqual(message.result, { success: true, text: "Hello, Ada" });
          done++;
        }
      }
    }
    reader.releaseLock();
  } finally {
    conn.close();
  }
});

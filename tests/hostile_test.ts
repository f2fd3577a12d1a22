/**
 * No single client can crash the server, exhaust its memory or starve the
 * others: one test per attack, against a real server on 127.0.0.1 with real
 * workers. Each attack is bounded in bytes and time, so on a server without
 * the protection it fails an assertion (stating the figure) instead of
 * taking the test process down. The server runs in this process, so its
 * memory is `Deno.memoryUsage().rss` (peak growth while attacked), except for
 * the 1-byte drip, which needs a server process it can garbage-collect.
 *
 * `TCPY_FIGURES=1` prints each measured figure, to compare two versions.
 */
import assert from "node:assert/strict";
import { ErrorCode, type TCPServerOptions } from "../mod.ts";
import { delay, startServer, within } from "./_helpers.ts";
import { Child } from "./_processes.ts";
import { commands } from "./fixtures/hostile_handlers.ts";

const HOSTILE = new URL("./fixtures/hostile_handlers.ts", import.meta.url);
const KiB = 1024;
const MiB = 1024 * KiB;

type Reply = { id: unknown; result?: unknown; error?: { code: number; message: string } };

function startHostile(options: TCPServerOptions = {}) {
  return startServer({ commands, module: HOSTILE, gracePeriod: 1000, ...options });
}

function request(id: number | string, method: string, params: unknown = {}): string {
  return JSON.stringify({ jsonrpc: "2.0", id, method, params }) + "\n";
}

/** Tracks the growth of this process's resident memory: `peak()` in MiB over the start. */
function rssGrowth(every = 10) {
  const start = Deno.memoryUsage().rss;
  let peak = start;
  const sample = () => peak = Math.max(peak, Deno.memoryUsage().rss);
  const timer = setInterval(sample, every);
  return {
    /** Growth so far, in MiB. */
    peak(): number {
      sample();
      return (peak - start) / MiB;
    },
    stop(): number {
      clearInterval(timer);
      return this.peak();
    },
  };
}

const dec = new TextDecoder();

/** Prints a measured figure when TCPY_FIGURES is set (to compare servers by hand). */
function figure(what: string, value: unknown): void {
  if (Deno.env.get("TCPY_FIGURES")) console.log(`FIGURE ${what}: ${JSON.stringify(value)}`);
}

/**
 * A socket read as raw text lines, each wait bounded (a read left pending by
 * a timeout is picked up by the next call), each line bounded in length.
 */
class RawLines {
  #text = "";
  #eof = false;
  #reading: Promise<number | null> | undefined;
  readonly #chunk = new Uint8Array(64 * KiB);
  private constructor(readonly conn: Deno.TcpConn) {}

  static async connect(port: number): Promise<RawLines> {
    return new RawLines(await Deno.connect({ hostname: "127.0.0.1", port }));
  }

  async write(text: string | Uint8Array): Promise<void> {
    const bytes = typeof text === "string" ? new TextEncoder().encode(text) : text;
    let written = 0;
    while (written < bytes.length) written += await this.conn.write(bytes.subarray(written));
  }

  /** The next line's text; `undefined` at end of stream. Fails after `ms` or past `maxChars`. */
  async line(ms = 5000, maxChars = 4 * MiB): Promise<string | undefined> {
    const deadline = Date.now() + ms;
    while (!this.#text.includes("\n")) {
      if (this.#eof) return undefined;
      if (this.#text.length > maxChars) throw new Error(`a line longer than ${maxChars} chars`);
      if (!this.#reading) {
        this.#reading = this.conn.read(this.#chunk);
        this.#reading.catch(() => {});
      }
      let n: number | null;
      try {
        n = await within(this.#reading, Math.max(1, deadline - Date.now()), "line");
      } catch (error) {
        if ((error as Error).message.startsWith("line:")) throw error;
        n = null; // reset by the peer
      }
      this.#reading = undefined;
      if (n === null) this.#eof = true;
      else this.#text += dec.decode(this.#chunk.subarray(0, n), { stream: true });
    }
    const at = this.#text.indexOf("\n");
    const line = this.#text.slice(0, at);
    this.#text = this.#text.slice(at + 1);
    return line;
  }

  /** The next line as JSON. */
  async json(ms = 5000, maxChars = 4 * MiB): Promise<Reply | undefined> {
    const line = await this.line(ms, maxChars);
    return line === undefined ? undefined : JSON.parse(line);
  }

  close(): void {
    try {
      this.conn.close();
    } catch {
      // Already closed.
    }
  }
}

/** Calls `method` on a fresh connection; the reply, or a string saying why there is none. */
async function callOnce(
  port: number,
  method: string,
  params: unknown = {},
  ms = 2000,
): Promise<Reply | string> {
  const client = await RawLines.connect(port);
  try {
    await client.write(request(1, method, params));
    return (await client.json(ms)) ?? "closed without a reply";
  } catch (error) {
    return (error as Error).message;
  } finally {
    client.close();
  }
}

// 1 ─────────────────────────────────────────────────────────────────────────

const RESET_STORM = `
import socket, struct, sys
socket.setdefaulttimeout(5)
port, n = int(sys.argv[1]), int(sys.argv[2])
socks = []
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b'{"jsonrpc":"2.0","id":1,"meth')
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    socks.append(s)
for s in socks:
    s.close()
`;

Deno.test("300 clients that reset before they are accepted do not stall accept(): a fresh call is answered within 1 s", async () => {
  await using server = await startHostile({ threads: 0 });
  // The server runs on this thread: while Python runs synchronously, the
  // server cannot accept, so all 300 connections are reset (SO_LINGER 0)
  // while they wait in the backlog, and each accept() of one fails.
  const python = new Deno.Command("python3", {
    args: ["-c", RESET_STORM, String(server.port), "300"],
    stdout: "null",
  }).outputSync();
  assert.equal(python.code, 0, dec.decode(python.stderr));
  const started = performance.now();
  const reply = await callOnce(server.port, "add", { x: 1, y: 2 }, 3000);
  const ms = Math.round(performance.now() - started);
  figure("1 fresh call after 300 resets (ms)", typeof reply === "string" ? reply : ms);
  assert.deepEqual(
    reply,
    { jsonrpc: "2.0", id: 1, result: { success: true, solution: 3 } },
    `a fresh call after 300 resets: ${JSON.stringify(reply)} after ${ms} ms`,
  );
  assert.ok(ms < 1000, `a fresh call after 300 resets was answered after ${ms} ms (limit 1000)`);
});

// 2 ─────────────────────────────────────────────────────────────────────────

Deno.test("a call flooded with 256 MiB of tcpy.message its handler never reads gets -32001; memory stays bounded", async () => {
  for (const command of ["deafInline", "deaf"]) {
    await using server = await startHostile({ threads: 1 });
    const attacker = await RawLines.connect(server.port);
    try {
      await attacker.write(request(1, command, { ms: 3000 }));
      const data = "x".repeat(512 * KiB - 100);
      const note = new TextEncoder().encode(
        JSON.stringify({ jsonrpc: "2.0", method: "tcpy.message", params: { id: 1, data } }) + "\n",
      );
      const rss = rssGrowth();
      const reply = attacker.json(10_000);
      reply.catch(() => {});
      for (let i = 0; i < 512; i++) await attacker.write(note); // 256 MiB
      const grown = rss.stop();
      const answer = await within(reply, 1000, "the flooded call's reply")
        .catch((error: Error) => error.message);
      const got = typeof answer === "object" ? answer.error?.code : answer ?? "no reply";
      figure(`2 ${command}: flooded call's reply, RSS growth (MiB)`, [got, Math.round(grown)]);
      assert.equal(
        got,
        ErrorCode.SERVER_BUSY,
        `${command}: the flooded call got ${JSON.stringify(answer)?.slice(0, 200)}`,
      );
      assert.match((answer as Reply).error!.message, /maxUnreadMessages/);
      assert.ok(
        grown < 128,
        `${command}: RSS grew ${grown.toFixed(0)} MiB under a 256 MiB flood (limit 128)`,
      );
      assert.deepEqual(
        await callOnce(server.port, "add", { x: 2, y: 3 }),
        { jsonrpc: "2.0", id: 1, result: { success: true, solution: 5 } },
      );
    } finally {
      attacker.close();
    }
  }
});

// 3 ─────────────────────────────────────────────────────────────────────────

Deno.test("thrown values String() cannot convert fail only their call with -32603; a floating rejection is logged", async () => {
  await using server = await startHostile({ threads: 1 });
  const neighbour = await RawLines.connect(server.port);
  let client = await RawLines.connect(server.port);
  const logged: string[] = [];
  const consoleError = console.error;
  console.error = (...args: unknown[]) => logged.push(args.join(" "));
  try {
    // A neighbour's call running in the same worker while it is attacked.
    await neighbour.write(request("n", "sleep", { ms: 1500 }));
    let id = 0;
    /** The reply, or why there is none (then the next call uses a new connection). */
    const call = async (method: string, params: unknown = {}): Promise<Reply | string> => {
      try {
        await client.write(request(++id, method, params));
        const reply = await client.json(3000);
        if (reply) return reply;
      } catch (error) {
        return (error as Error).message;
      }
      client.close();
      client = await RawLines.connect(server.port);
      return "the connection closed without a reply";
    };
    const failures: string[] = [];
    for (const command of ["throwUnprintableInline", "throwUnprintable"]) {
      for (const kind of ["nullProto", "badToString", "revokedProxy"]) {
        for (const async of [false, true]) {
          const what = `${command} ${kind}${async ? " async" : ""}`;
          const reply = await call(command, { kind, async });
          if (typeof reply === "string" || reply.error?.code !== ErrorCode.INTERNAL_ERROR) {
            failures.push(`${what}: ${JSON.stringify(reply)}`);
          }
          // The same connection goes on, inline and in the (same) worker.
          const after = await call(command.endsWith("Inline") ? "whereInline" : "where");
          if (typeof after === "string" || !after.result) {
            failures.push(`after ${what}: ${JSON.stringify(after)}`);
          }
        }
      }
    }
    for (const command of ["floatingInline", "floating"]) {
      const reply = await call(command);
      if (typeof reply === "string" || JSON.stringify(reply.result) !== '{"floated":true}') {
        failures.push(`${command}: ${JSON.stringify(reply)}`);
      }
      // Let the rejection be reported, then call again, inline and pooled.
      await delay(50);
      for (const next of ["whereInline", "where"]) {
        const after = await call(next);
        if (typeof after === "string" || !after.result) {
          failures.push(`${next} after ${command}: ${JSON.stringify(after)}`);
        }
      }
    }
    const slept = await neighbour.json(3000).catch((error) => (error as Error).message);
    if (typeof slept !== "object" || !slept.result) {
      failures.push(`the worker's neighbour: ${JSON.stringify(slept)}`);
    }
    figure("3 calls gone wrong", failures);
    assert.deepEqual(failures, [], `${failures.length} of 31 calls went wrong`);
    // The inline one is reported on this thread's stderr (the pooled one on its worker's).
    assert.ok(
      logged.some((line) => /nobody handled it \(kept serving\): Error: x/.test(line)),
      `logged: ${JSON.stringify(logged)}`,
    );
  } finally {
    console.error = consoleError;
    client.close();
    neighbour.close();
  }
});

// 4 ─────────────────────────────────────────────────────────────────────────

Deno.test("send() to a client that never reads waits: memory stays bounded and other clients are served", async () => {
  await using server = await startHostile({ threads: 1 });
  const rss = rssGrowth();
  const attackers = await Promise.all([0, 1].map(() => RawLines.connect(server.port)));
  try {
    const params = { chunkBytes: 64 * KiB, maxBytes: 128 * MiB, ms: 2000 };
    await attackers[0].write(request(1, "firehoseInline", params));
    await attackers[1].write(request(1, "firehose", params));
    const started = Date.now();
    let served = 0;
    let calls = 0;
    while (Date.now() - started < 2200) {
      calls++;
      const reply = await callOnce(server.port, "add", { x: 1, y: 1 }, 1000);
      if (typeof reply === "object" && reply.result) served++;
      await delay(50);
    }
    const grown = rss.stop();
    figure("4 firehose: RSS growth (MiB), bystander served/calls", [
      Math.round(grown),
      served,
      calls,
    ]);
    assert.ok(
      grown < 64,
      `RSS grew ${
        grown.toFixed(0)
      } MiB while 2 handlers sent 64 KiB chunks to clients that never read (limit 64)`,
    );
    assert.equal(served, calls, `a bystander was served ${served} of ${calls} calls`);
  } finally {
    rss.stop();
    for (const attacker of attackers) attacker.close();
  }
});

Deno.test("results over maxReplyBytes get -32603 'Reply too large', alone and in a batch; memory stays bounded", async () => {
  await using server = await startHostile({ threads: 1 });
  const client = await RawLines.connect(server.port);
  try {
    const rss = rssGrowth();
    const bytes = 2 * MiB; // twice the default maxReplyBytes
    for (const method of ["bigInline", "big"]) {
      await client.write(request(1, method, { bytes }));
      const single = await client.json(10_000, 64 * KiB).catch((error) => (error as Error).message);
      assert.match(
        typeof single === "object" ? single.error?.message ?? "" : "",
        /^Reply too large: .* \(maxReplyBytes\)$/,
        `${method} returning ${bytes} bytes: ${JSON.stringify(single)}`,
      );
    }
    // 40 calls in one batch, half inline, half pooled: 80 MiB of results.
    const batch = Array.from({ length: 40 }, (_, i) => ({
      jsonrpc: "2.0",
      id: i,
      method: i % 2 ? "big" : "bigInline",
      params: { bytes },
    }));
    await client.write(JSON.stringify(batch) + "\n");
    const line = await client.line(20_000, 64 * KiB).catch((error) => (error as Error).message);
    const grown = rss.stop();
    const replies = (line?.startsWith("[") ? JSON.parse(line) : []) as Reply[];
    const tooLarge = replies.filter((r) =>
      r.error?.code === ErrorCode.INTERNAL_ERROR && /^Reply too large/.test(r.error.message)
    );
    figure("4 big results: too large/40, RSS growth (MiB)", [tooLarge.length, Math.round(grown)]);
    assert.equal(tooLarge.length, 40, `${tooLarge.length} of 40 big results got "Reply too large"`);
    assert.ok(grown < 128, `RSS grew ${grown.toFixed(0)} MiB for 84 MiB of results (limit 128)`);
  } finally {
    client.close();
  }
});

Deno.test("a batch whose replies fit in maxReplyBytes together is answered whole", async () => {
  await using server = await startHostile({ threads: 0 });
  const client = await RawLines.connect(server.port);
  try {
    // Replies of ~100 KB: 10 fit under the 1,048,576-byte limit, the 11th does not.
    for (const [length, refusals] of [[10, 0], [11, 1]]) {
      const batch = Array.from({ length }, (_, i) => ({
        jsonrpc: "2.0",
        id: i,
        method: "bigInline",
        params: { bytes: 100_000 },
      }));
      await client.write(JSON.stringify(batch) + "\n");
      const line = (await client.line(5000))!;
      const refused = (JSON.parse(line) as Reply[]).filter((r) => r.error);
      assert.equal(
        refused.length,
        refusals,
        `a batch of ${length}: ${line.length + 1} bytes, ${refused.length} replies refused`,
      );
      assert.ok(line.length + 1 <= 1024 * KiB, `a ${line.length + 1}-byte batch reply`);
    }
  } finally {
    client.close();
  }
});

// 6 ─────────────────────────────────────────────────────────────────────────

Deno.test("16 connections holding idle pooled conversations cannot starve a bystander's pooled calls", async () => {
  // Scaled down 16x from the defaults (maxPendingCalls 16384, maxInFlight
  // 1024): 16 connections at their per-connection cap would fill the pool's
  // queue exactly, as 16 x 1024 fill 16384.
  await using server = await startHostile({ threads: 2, maxPendingCalls: 1024, maxInFlight: 64 });
  const attackers = await Promise.all(
    Array.from({ length: 16 }, () => RawLines.connect(server.port)),
  );
  try {
    let held = 0;
    for (const attacker of attackers) {
      let lines = "";
      for (let i = 0; i < 1024; i++) lines += request(i, "listen");
      await attacker.write(lines + request("ping", "tcpy.ping"));
      // Refusals come at once and the ping after them (it passes lines held
      // for room in the pool): the rest are held.
      let refused = 0;
      while ((await attacker.json(5000))?.id !== "ping") refused++;
      held += 1024 - refused;
    }
    const bystander = await RawLines.connect(server.port);
    let served = 0;
    try {
      for (let i = 0; i < 100; i++) {
        await bystander.write(request(i, "add", { x: i, y: 1 }));
        const reply = await bystander.json(2000);
        if ((reply?.result as { solution?: number })?.solution === i + 1) served++;
      }
    } finally {
      bystander.close();
    }
    figure("6 bystander served/100, conversations held", [served, held]);
    assert.ok(
      served >= 95,
      `a bystander was served ${served} of 100 pooled calls while 16 connections held ${held} conversations`,
    );
  } finally {
    for (const attacker of attackers) attacker.close();
  }
});

// 7 ─────────────────────────────────────────────────────────────────────────

const SERVE = new URL("./fixtures/serve.ts", import.meta.url).pathname;

Deno.test("an unfinished line dripped 1 byte per segment costs little memory per byte held", async () => {
  // The server runs in its own process here (tests/fixtures/serve.ts), whose
  // `stats` runs a full GC first: the figure is what the server holds per
  // byte, not garbage. (Its RSS is reported too, but it is no measure of
  // what is held: Deno's own RSS climbs ~40 MiB over the first ~400,000
  // reads of any server, and plateaus, even one that discards every byte.)
  const child = new Child(Deno.execPath(), [
    "run",
    "--v8-flags=--expose-gc",
    "--allow-net=127.0.0.1",
    "--allow-read",
    SERVE,
    "--threads",
    "0",
  ], { name: "serve.ts" });
  const drippers: Deno.TcpConn[] = [];
  try {
    const [, listening] = await child.waitFor(/^PORT (\d+)$/m, "stdout", 20_000);
    const server = Number(listening);
    const memory = async () => {
      const stats = await callOnce(server, "stats", { gc: true }) as Reply;
      const { heapUsed, external } = stats.result as { heapUsed: number; external: number };
      const ps = await new Deno.Command("ps", {
        args: ["-o", "rss=", "-p", `${child.process.pid}`],
      })
        .output();
      return { held: heapUsed + external, rss: Number(dec.decode(ps.stdout)) * 1024 };
    };
    // Many connections, one byte each per turn of the event loop: the server
    // reads about one byte per read, as from a client sending one byte per
    // TCP segment.
    for (let i = 0; i < 256; i++) {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: server });
      conn.setNoDelay(true);
      drippers.push(conn);
    }
    const line = new TextEncoder().encode(
      '{"jsonrpc":"2.0","id":1,"method":"echo","params":"' + "x".repeat(1024),
    );
    let at = 0;
    const drip = async (rounds: number) => {
      for (const end = at + rounds; at < end; at++) {
        const byte = line.subarray(at, at + 1);
        await Promise.all(drippers.map((conn) => conn.write(byte)));
        await delay(0);
      }
    };
    await drip(32); // warm up: every connection has begun its line
    const before = await memory();
    const rounds = 256;
    await drip(rounds);
    await delay(100);
    const after = await memory();
    const bytes = drippers.length * rounds;
    const perByte = {
      held: Math.round(10 * (after.held - before.held) / bytes) / 10,
      rss: Math.round(10 * (after.rss - before.rss) / bytes) / 10,
    };
    figure("7 bytes per byte of unfinished line: heap+external held, RSS", perByte);
    assert.ok(
      perByte.held < 8,
      `the server's heap and buffers grew ${perByte.held} bytes per byte of unfinished line ` +
        `held (${bytes} bytes in 1-byte segments, limit 8; RSS grew ${perByte.rss})`,
    );
  } finally {
    for (const conn of drippers) conn.close();
    await child.stop("SIGKILL");
  }
});

Deno.test("messageTimeout: an unfinished line gets -32600 and the connection closes", async () => {
  await using server = await startHostile({ threads: 0, messageTimeout: 300 });
  const client = await RawLines.connect(server.port);
  try {
    const started = Date.now();
    await client.write('{"jsonrpc":"2.0","id":1,"meth');
    const reply = await client.json(3000).catch((error) => (error as Error).message);
    assert.equal(
      typeof reply === "object" ? reply.error?.code : reply,
      ErrorCode.INVALID_REQUEST,
      `an unfinished line, messageTimeout 300: ${JSON.stringify(reply)}`,
    );
    assert.match((reply as Reply).error!.message, /messageTimeout/);
    // tcpy.bye, then the end of the stream.
    while ((await client.line(3000)) !== undefined) { /* bye */ }
    const ms = Date.now() - started;
    figure("7 messageTimeout 300: closed after (ms)", ms);
    assert.ok(ms < 1500, `the connection closed ${ms} ms after the line began (limit 1500)`);
  } finally {
    client.close();
  }
});

// 8 ─────────────────────────────────────────────────────────────────────────

Deno.test("ids above 2^53 come back byte for byte, and key their conversations", async () => {
  await using server = await startHostile({ threads: 1 });
  const client = await RawLines.connect(server.port);
  try {
    for (const id of ["9223372036854775807", "9007199254740993", "-9007199254740993"]) {
      await client.write(`{"jsonrpc":"2.0","id":${id},"method":"echo","params":{"a":1}}\n`);
      const line = await client.line(3000);
      assert.equal(line, `{"jsonrpc":"2.0","id":${id},"result":{"a":1}}`);
    }
    // Two conversations whose ids round to the same double, 2^53.
    const ids = ["9007199254740992", "9007199254740993"];
    for (const id of ids) {
      await client.write(`{"jsonrpc":"2.0","id":${id},"method":"greet","params":{}}\n`);
    }
    const questions = [await client.line(3000), await client.line(3000)];
    for (const id of ids) {
      assert.ok(
        questions.includes(
          `{"jsonrpc":"2.0","method":"tcpy.message","params":{"id":${id},"data":{"question":"name?"}}}`,
        ),
        `no question for conversation ${id}: ${JSON.stringify(questions)}`,
      );
    }
    for (const id of ids.toReversed()) {
      await client.write(
        `{"jsonrpc":"2.0","method":"tcpy.message","params":{"id":${id},"data":{"name":"n${id}"}}}\n`,
      );
    }
    const answers = [await client.line(3000), await client.line(3000)];
    for (const id of ids) {
      assert.ok(
        answers.includes(
          `{"jsonrpc":"2.0","id":${id},"result":{"success":true,"text":"Hello, n${id}"}}`,
        ),
        `no answer for conversation ${id}: ${JSON.stringify(answers)}`,
      );
    }
  } finally {
    client.close();
  }
});

// 9 ─────────────────────────────────────────────────────────────────────────

Deno.test("a command that kills its worker ~150 times a second is refused; an innocent client is served", async () => {
  // 3 workers: with 2, both can be dead at once while the first 3 crashes
  // open the circuit (innocent 133-145 of 150 here); with 4 even a server
  // with no circuit keeps the innocent at ~94% by respawning at once.
  await using server = await startHostile({ threads: 3 });
  const killer = await RawLines.connect(server.port);
  const innocent = await RawLines.connect(server.port);
  /** Reads `count` replies off `client` into `into`; fewer if `ms` pass without one. */
  const collect = async (client: RawLines, into: Reply[], count: number, ms: number) => {
    while (into.length < count) {
      const reply = await client.json(ms).catch(() => undefined);
      if (!reply) return;
      into.push(reply);
    }
  };
  /** Writes `calls` calls of `method` to `client`, `perTick` every 20 ms. */
  const steady = async (client: RawLines, method: string, calls: number, perTick: number) => {
    for (let id = 1; id <= calls;) {
      let lines = "";
      for (let i = 0; i < perTick && id <= calls; i++, id++) {
        lines += request(id, method, { x: id, y: 0 });
      }
      await client.write(lines);
      await delay(20);
    }
  };
  try {
    // ~3 s: the killer sends 450 calls (3 per 20 ms), the innocent 150 (1 per 20 ms).
    const killed: Reply[] = [];
    const served: Reply[] = [];
    const reading = [collect(killer, killed, 450, 2000), collect(innocent, served, 150, 2000)];
    await Promise.all([steady(killer, "exit", 450, 3), steady(innocent, "add", 150, 1)]);
    await Promise.all(reading);
    const ok = served.filter((r) => (r.result as { solution?: number })?.solution === r.id).length;
    const refused = killed.filter((r) =>
      r.error?.code === ErrorCode.WORKER_CRASHED && /refused/.test(r.error.message)
    ).length;
    figure("9 innocent served/150, killer refused/450", [ok, refused]);
    assert.ok(
      ok >= 135,
      `the innocent client was served ${ok} of 150 calls made while another killed workers (limit 90%)`,
    );
    assert.ok(refused >= 400, `${refused} of the killer's 450 calls were refused (limit 400)`);
  } finally {
    killer.close();
    innocent.close();
  }
});

// 10 ────────────────────────────────────────────────────────────────────────

Deno.test("a handler returning a function or a Symbol gets -32603, not result null", async () => {
  await using server = await startHostile({ threads: 1 });
  const client = await RawLines.connect(server.port);
  try {
    const replies: string[] = [];
    for (const command of ["unsendableInline", "unsendable"]) {
      for (const kind of ["function", "symbol"]) {
        await client.write(request(1, command, { kind }));
        const reply = await client.json(3000);
        const got = reply?.error ? reply.error.code : `result ${JSON.stringify(reply?.result)}`;
        replies.push(`${command} ${kind}: ${got}`);
      }
    }
    assert.deepEqual(replies, [
      "unsendableInline function: -32603",
      "unsendableInline symbol: -32603",
      "unsendable function: -32603",
      "unsendable symbol: -32603",
    ]);
  } finally {
    client.close();
  }
});

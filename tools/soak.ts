/**
 * Soak and fault test (`deno task soak`): starts `tests/fixtures/serve.ts` as
 * a subprocess on loopback, measures its memory (VmRSS, and the main
 * thread's V8 heap after a full GC), open file descriptors and threads after
 * a warm-up, runs sustained load for `--seconds` with faults mixed in, stops,
 * waits `--settle` seconds and measures again. Exits 1 if the server died,
 * leaked descriptors or calls, kept connections, or grew its RSS by more than
 * `--max-rss-growth` (a fraction: 0.5 is 50%) or its JS heaps (main thread
 * and workers, after a full GC) by more than `--max-heap-growth`. RSS also
 * counts memory the allocators keep after a peak; the heaps are the sharper
 * leak detector.
 *
 * The load, from concurrent actors:
 * - `--clients` TCPClients making well-formed calls (add, echo, sleep, a
 *   greet conversation, and calls that must fail: boom, an unknown command,
 *   strict with bad params), 8 at a time, reconnecting every 400 calls;
 * - `--raw` raw sockets sending bursts of 20 lines of which a share
 *   (`--malformed`, 10%) is junk from the fuzzer's generator and the rest
 *   `add` calls whose replies are checked, as is every reply line;
 * - `--abrupt` loops that start `sleep`/`greet`/`sum` calls and close the
 *   socket while they run;
 * - `--slow` loops that send 100-300 `echo` calls with 32-64 KiB params
 *   and never read the replies, then vanish; half of them wait past the
 *   server's write timeout (5 s here), which cuts them ("expected errors").
 *
 * ```sh
 * deno task soak --seconds 20 --threads 2
 * ```
 */
import { parseArgs } from "node:util";
import { HandlerFailedError, InvalidParamsError, TCPClient, UnknownCommandError } from "../mod.ts";
import { checkLine, malformedMessage, Rng } from "../tests/fuzz_cases.ts";
import { Child, delay, within } from "./_process.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    seconds: { type: "string", default: "30" },
    threads: { type: "string", default: "2" },
    clients: { type: "string", default: "4" },
    raw: { type: "string", default: "2" },
    abrupt: { type: "string", default: "2" },
    slow: { type: "string", default: "1" },
    malformed: { type: "string", default: "0.1" },
    warmup: { type: "string" },
    settle: { type: "string", default: "5" },
    "max-rss-growth": { type: "string", default: "0.5" },
    "max-fd-growth": { type: "string", default: "5" },
    "max-heap-growth": { type: "string", default: "0.25" },
    seed: { type: "string" },
    help: { type: "boolean", short: "h", default: false },
  },
});

if (values.help) {
  console.log(
    "usage: deno task soak [--seconds 30] [--threads 2] [--clients 4] [--raw 2] [--abrupt 2]\n" +
      "         [--slow 1] [--malformed 0.1] [--warmup seconds/4, 5..30] [--settle 5]\n" +
      "         [--max-rss-growth 0.5]" +
      " [--max-fd-growth 5] [--max-heap-growth 0.25] [--seed N]",
  );
  Deno.exit(0);
}

function num(name: keyof typeof values, min: number, max: number): number {
  const value = Number(values[name]);
  if (!Number.isFinite(value) || value < min || value > max) {
    console.error(`--${name} must be a number from ${min} to ${max}, got ${values[name]}`);
    Deno.exit(2);
  }
  return value;
}

const SECONDS = num("seconds", 1, 3600);
const THREADS = Math.floor(num("threads", 0, 64));
const CLIENTS = Math.floor(num("clients", 0, 100));
const RAW = Math.floor(num("raw", 0, 100));
const ABRUPT = Math.floor(num("abrupt", 0, 100));
const SLOW = Math.floor(num("slow", 0, 100));
const MALFORMED = num("malformed", 0, 1);
// Warm-up: long enough for the allocators to reach their working set, so RSS growth
// after it means memory kept, not memory first touched.
const WARMUP = values.warmup === undefined
  ? Math.min(30, Math.max(5, SECONDS / 4))
  : num("warmup", 0, 600);
const SETTLE = num("settle", 0, 600);
const MAX_RSS_GROWTH = num("max-rss-growth", 0, 100);
const MAX_FD_GROWTH = num("max-fd-growth", 0, 1e6);
const MAX_HEAP_GROWTH = num("max-heap-growth", 0, 100);
const SEED = values.seed === undefined
  ? crypto.getRandomValues(new Uint32Array(1))[0]
  : num("seed", 0, 0xffffffff);

/** The server's `maxMessageBytes` (its default) and write timeout, in ms. */
const LIMIT = 1024 * 1024;
const WRITE_TIMEOUT = 5_000;
const SERVE = new URL("../tests/fixtures/serve.ts", import.meta.url);
const enc = new TextEncoder();

// ---------------------------------------------------------------------------
// What we measure

interface Figures {
  rssKiB: number;
  fds: number;
  threads: number;
}

/**
 * Reads /proc through `cat` and `ls`: Deno only lets a program read another
 * process's /proc entries with every permission granted.
 */
function proc(cmd: string, path: string): string {
  const { success, stdout } = new Deno.Command(cmd, { args: [path], stderr: "null" }).outputSync();
  if (!success) throw new Error(`${cmd} ${path} failed: is the server still running?`);
  return new TextDecoder().decode(stdout);
}

function measure(pid: number): Figures {
  const status = proc("cat", `/proc/${pid}/status`);
  const field = (name: string) => Number(status.match(new RegExp(`^${name}:\\s+(\\d+)`, "m"))?.[1]);
  const fds = proc("ls", `/proc/${pid}/fd`).split("\n").filter((l) => l !== "").length;
  return { rssKiB: field("VmRSS"), fds, threads: field("Threads") };
}

interface ServerStats {
  connections: number;
  inFlight: number;
  /** The main thread's V8 heap, after a full GC (workers not included). */
  heapUsed: number;
  /** The workers' V8 heaps after a full GC, summed over those sampled. */
  workerHeapUsed: number;
  /** How many threads the worker heap figure covers. */
  workersSampled: number;
}

/**
 * Asks the server for its own figures, on a fresh connection (counted in
 * them), after a full GC in the server; then lets the GC settle before the
 * caller reads /proc.
 */
async function serverStats(port: number): Promise<ServerStats> {
  let stats: ServerStats;
  {
    await using client = new TCPClient({ port, timeout: 5_000 });
    // `heap` runs in whichever worker is least busy: ask often enough to reach each.
    const heaps = await Promise.all(
      Array.from({ length: 4 * Math.max(1, THREADS) }, () => client.execute("heap")),
    ) as { thread: string; heapUsed: number }[];
    // With threads 0 it runs on the main thread, which `stats` already covers.
    const byThread = new Map(
      heaps.filter((h) => h.thread !== "main").map((h) => [h.thread, h.heapUsed]),
    );
    stats = await client.execute("stats", { gc: true }) as ServerStats;
    stats.workerHeapUsed = [...byThread.values()].reduce((sum, n) => sum + n, 0);
    stats.workersSampled = byThread.size;
  }
  await delay(500);
  return stats;
}

// ---------------------------------------------------------------------------
// Tallies

interface Tally {
  connections: number;
  calls: number;
  ok: number;
  expectedErrors: number;
  unexpected: number;
  violations: number;
  malformed: number;
  disconnects: number;
}

function tally(): Tally {
  return {
    connections: 0,
    calls: 0,
    ok: 0,
    expectedErrors: 0,
    unexpected: 0,
    violations: 0,
    malformed: 0,
    disconnects: 0,
  };
}

const tallies = { rpc: tally(), raw: tally(), abrupt: tally(), slow: tally() };
const notes: string[] = [];
function note(text: string): void {
  if (notes.length < 20) notes.push(text);
}

// ---------------------------------------------------------------------------
// A raw line socket

class Wire {
  readonly conn: Deno.TcpConn;
  readonly done: Promise<void>;
  #closed = false;

  private constructor(conn: Deno.TcpConn, onLine: (line: Uint8Array) => void) {
    this.conn = conn;
    this.done = this.#read(onLine);
  }

  static async open(port: number, onLine: (line: Uint8Array) => void): Promise<Wire> {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    conn.setNoDelay(true);
    return new Wire(conn, onLine);
  }

  async #read(onLine: (line: Uint8Array) => void): Promise<void> {
    const buffer = new Uint8Array(65536);
    let rest = new Uint8Array(0);
    try {
      while (true) {
        const n = await this.conn.read(buffer);
        if (n === null) return;
        const chunk = new Uint8Array(rest.length + n);
        chunk.set(rest);
        chunk.set(buffer.subarray(0, n), rest.length);
        let start = 0;
        while (true) {
          const nl = chunk.indexOf(0x0a, start);
          if (nl === -1) break;
          onLine(chunk.subarray(start, nl));
          start = nl + 1;
        }
        rest = chunk.slice(start);
      }
    } catch {
      // Closed by us, or reset.
    }
  }

  async write(bytes: Uint8Array): Promise<void> {
    let written = 0;
    while (written < bytes.length) written += await this.conn.write(bytes.subarray(written));
  }

  async close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      try {
        this.conn.close();
      } catch {
        // Already closed.
      }
    }
    await this.done;
  }
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((sum, p) => sum + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

// ---------------------------------------------------------------------------
// The actors

/** Well-formed calls through TCPClient, 8 at a time; some must fail, and how. */
async function rpcActor(port: number, rng: Rng, stopAt: number, t: Tally): Promise<void> {
  while (Date.now() < stopAt) {
    const client = new TCPClient({ port, timeout: 15_000 });
    t.connections++;
    try {
      for (let round = 0; round < 50 && Date.now() < stopAt; round++) {
        await Promise.all(Array.from({ length: 8 }, () => oneCall(client, rng, t)));
      }
    } finally {
      await client.disconnect();
    }
  }
}

async function oneCall(client: TCPClient, rng: Rng, t: Tally): Promise<void> {
  t.calls++;
  const kind = rng.int(0, 9);
  const expect = (ok: boolean, what: string, got: unknown) => {
    if (ok) t.ok++;
    else {
      t.unexpected++;
      note(`rpc ${what}: got ${JSON.stringify(got)?.slice(0, 200)}`);
    }
  };
  const expected: Record<number, [new (...args: never[]) => Error, string]> = {
    7: [HandlerFailedError, "boom"],
    8: [UnknownCommandError, "nope"],
    9: [InvalidParamsError, "strict"],
  };
  try {
    if (kind <= 3) {
      const x = rng.int(-1e6, 1e6);
      const y = rng.int(-1e6, 1e6);
      const r = await client.execute("add", { x, y }) as { solution?: number };
      expect(r.solution === x + y, "add", r);
    } else if (kind === 4) {
      const params = { s: "é".repeat(rng.int(0, 2000)), n: [rng.int(0, 9), null, true] };
      const r = await client.execute("echo", params);
      expect(JSON.stringify(r) === JSON.stringify(params), "echo", r);
    } else if (kind === 5) {
      const ms = rng.int(1, 30);
      const r = await client.execute("sleep", { ms }) as { slept?: number };
      expect(r.slept === ms, "sleep", r);
    } else if (kind === 6) {
      const call = client.call("greet", { greeting: "Hi" });
      const question = await call.recv() as { question?: string };
      if (question.question !== "name?") expect(false, "greet question", question);
      const name = `n${rng.int(0, 1e6)}`;
      await call.send({ name });
      const r = await call.result as { text?: string };
      expect(r.text === `Hi, ${name}`, "greet", r);
    } else {
      const command = expected[kind][1];
      await client.execute(command, command === "strict" ? { n: "x" } : {});
      expect(false, `${command} should have failed`, "a result");
      return;
    }
  } catch (error) {
    const want = expected[kind];
    if (want && error instanceof want[0]) t.expectedErrors++;
    else {
      t.unexpected++;
      note(`rpc call kind ${kind}: ${(error as Error).name}: ${(error as Error).message}`);
    }
  }
}

/** Bursts of 20 lines, a share of them junk; every add must be answered right. */
async function rawActor(port: number, rng: Rng, stopAt: number, t: Tally): Promise<void> {
  let seq = 0;
  while (Date.now() < stopAt) {
    const pending = new Map<string, number>();
    let wake: (() => void) | undefined;
    const wire = await Wire.open(port, (line) => {
      const report = checkLine(line);
      if (typeof report === "string") {
        t.violations++;
        note(`raw: ${report}`);
        return;
      }
      for (const response of report.responses) {
        const r = response as { id?: unknown; result?: { solution?: number } };
        if (typeof r.id !== "string" || !pending.has(r.id)) continue;
        const want = pending.get(r.id);
        pending.delete(r.id);
        if (r.result?.solution === want) t.ok++;
        else {
          t.unexpected++;
          note(`raw add ${r.id}: ${JSON.stringify(r).slice(0, 200)}`);
        }
      }
      if (pending.size === 0) wake?.();
    });
    t.connections++;
    try {
      for (let round = 0; round < 20 && Date.now() < stopAt; round++) {
        const parts: Uint8Array[] = [];
        for (let i = 0; i < 20; i++) {
          if (rng.chance(MALFORMED)) {
            parts.push(malformedMessage(rng, LIMIT));
            t.malformed++;
          } else {
            const id = `raw-${seq++}`;
            const x = rng.int(0, 1e6);
            const y = rng.int(0, 1e6);
            pending.set(id, x + y);
            parts.push(
              enc.encode(
                `{"jsonrpc":"2.0","id":"${id}","method":"add","params":{"x":${x},"y":${y}}}`,
              ),
            );
            t.calls++;
          }
          parts.push(enc.encode("\n"));
        }
        await wire.write(concat(parts));
        if (pending.size > 0) {
          const replies = new Promise<true>((resolve) => (wake = () => resolve(true)));
          const answered = await within(replies, 10_000, "adds").catch(() => false);
          wake = undefined;
          if (!answered) {
            t.unexpected += pending.size;
            note(`raw: ${pending.size} adds unanswered after 10 s`);
            pending.clear();
            break;
          }
        }
      }
    } catch (error) {
      t.unexpected++;
      note(`raw: ${(error as Error).name}: ${(error as Error).message}`);
    } finally {
      await wire.close();
    }
  }
}

/** Starts slow or conversational calls, then closes the socket under them. */
async function abruptActor(port: number, rng: Rng, stopAt: number, t: Tally): Promise<void> {
  let seq = 0;
  while (Date.now() < stopAt) {
    const wire = await Wire.open(port, () => {});
    t.connections++;
    try {
      const lines: string[] = [];
      const n = rng.int(1, 4);
      for (let i = 0; i < n; i++) {
        const id = seq++;
        const method = rng.pick(["sleep", "sleep", "greet", "sum"]);
        const params = method === "sleep" ? `,"params":{"ms":${rng.int(100, 1000)}}` : "";
        lines.push(`{"jsonrpc":"2.0","id":${id},"method":"${method}"${params}}\n`);
        t.calls++;
      }
      await wire.write(enc.encode(lines.join("")));
      await delay(rng.int(0, 50));
    } catch (error) {
      t.unexpected++;
      note(`abrupt: ${(error as Error).message}`);
    } finally {
      t.disconnects++;
      await wire.close();
    }
  }
}

/** Sends big echo calls, never reads a reply, then vanishes. */
async function slowActor(
  port: number,
  rng: Rng,
  stopAt: number,
  t: Tally,
  warmUp = false,
): Promise<void> {
  let seq = 0;
  while (Date.now() < stopAt) {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    t.connections++;
    // The warm-up plays the heaviest case, so the memory it takes is in the baseline.
    const size = warmUp ? 64 * 1024 : rng.int(32, 64) * 1024;
    const count = warmUp ? 300 : rng.int(100, 300);
    const body = "s".repeat(size);
    let cut = false;
    let closing = false;
    let written = false;
    const writing = (async () => {
      for (let i = 0; i < count; i++) {
        const line = `{"jsonrpc":"2.0","id":${seq++},"method":"echo","params":{"s":"${body}"}}\n`;
        const bytes = enc.encode(line);
        for (let n = 0; n < bytes.length;) n += await conn.write(bytes.subarray(n));
        t.calls++;
      }
      written = true;
    })().catch(() => {
      // A failed write before our own close: the server cut us (write timeout).
      if (!closing) cut = true;
    });
    // Hold the connection: half the time past the server's write timeout.
    const wanted = rng.chance(0.5)
      ? rng.int(500, 3_000)
      : rng.int(WRITE_TIMEOUT + 1_500, WRITE_TIMEOUT + 3_000);
    const hold = warmUp ? 3_000 : Math.min(wanted, Math.max(200, stopAt - Date.now()));
    await delay(hold);
    let probe: Promise<void> | undefined;
    if (written && !cut) {
      // A server that cut us (write timeout) has reset the connection: a write says so.
      probe = conn.write(enc.encode("\n")).then(() => {}, () => {
        if (!closing) cut = true;
      });
      await Promise.race([probe, delay(100)]);
    }
    t.disconnects++;
    closing = true;
    try {
      conn.close();
    } catch {
      // Already closed.
    }
    await writing;
    await probe;
    if (cut) t.expectedErrors++; // cut by the server's write timeout
  }
}

/** Runs every actor until `stopAt`. */
async function load(port: number, rng: Rng, stopAt: number, warmUp = false): Promise<void> {
  const actors: Promise<void>[] = [];
  type Actor = (port: number, rng: Rng, stopAt: number, t: Tally, warmUp: boolean) => Promise<void>;
  const spawn = (n: number, actor: Actor, t: Tally) => {
    for (let i = 0; i < n; i++) {
      actors.push(actor(port, new Rng(rng.int(0, 2 ** 32 - 1)), stopAt, t, warmUp));
    }
  };
  spawn(CLIENTS, rpcActor, tallies.rpc);
  spawn(RAW, rawActor, tallies.raw);
  spawn(ABRUPT, abruptActor, tallies.abrupt);
  spawn(SLOW, slowActor, tallies.slow);
  await Promise.all(actors);
}

// ---------------------------------------------------------------------------
// The server process

const args = [
  "run",
  "--v8-flags=--expose-gc",
  "--allow-net=127.0.0.1",
  "--allow-read",
  decodeURIComponent(SERVE.pathname),
  "--threads",
  String(THREADS),
  "--write-timeout",
  String(WRITE_TIMEOUT),
];
console.log(`soak: seed ${SEED}, ${SECONDS} s of load, server: deno ${args.join(" ")}`);
const child = new Child(Deno.execPath(), args, { name: "the server", keep: 100_000 });

let failed = false;
const verdicts: string[] = [];
function verdict(ok: boolean, text: string): void {
  verdicts.push(`${ok ? "ok  " : "FAIL"} ${text}`);
  if (!ok) failed = true;
}

try {
  const listening = Number((await child.waitFor(/^PORT (\d+)$/m, "stdout", 30_000))[1]);
  const pid = child.pid;
  console.log(`server pid ${pid} listening on 127.0.0.1:${listening}`);
  const rng = new Rng(SEED);

  // Warm-up: the same load, briefly, so JIT and pools are in their steady state.
  if (WARMUP > 0) {
    await load(listening, new Rng(rng.int(0, 2 ** 32 - 1)), Date.now() + WARMUP * 1000, true);
  }
  await delay(Math.min(SETTLE, 3) * 1000);
  for (const t of Object.values(tallies)) Object.assign(t, tally());
  notes.length = 0;
  const statsBefore = await serverStats(listening);
  const before = measure(pid);

  // Load, sampling the process every second.
  const peak = { ...before };
  let ticks = 0;
  const sampler = setInterval(() => {
    if (child.exited) return;
    try {
      const now = measure(pid);
      peak.rssKiB = Math.max(peak.rssKiB, now.rssKiB);
      peak.fds = Math.max(peak.fds, now.fds);
      peak.threads = Math.max(peak.threads, now.threads);
      if (++ticks % 10 === 0) {
        const calls = Object.values(tallies).reduce((sum, t) => sum + t.calls, 0);
        console.log(
          `  t=${ticks} s: RSS ${(now.rssKiB / 1024).toFixed(1)} MiB, ${now.fds} fds, ` +
            `${calls} calls so far`,
        );
      }
    } catch {
      // The process is gone; reported below.
    }
  }, 1000);
  const started = Date.now();
  try {
    await load(listening, rng, started + SECONDS * 1000);
  } finally {
    clearInterval(sampler);
  }
  const loadSeconds = (Date.now() - started) / 1000;
  const exited = child.exited ? await child.status : undefined;
  verdict(!exited, `the server process survived the load${exited ? ` (exit ${exited.code})` : ""}`);
  if (exited) throw new Error("the server died");

  // Settle, then measure again.
  await delay(SETTLE * 1000);
  const statsAfter = await serverStats(listening);
  const after = measure(pid);

  const mib = (kib: number) => (kib / 1024).toFixed(1);
  const rows: [string, string, string, string, string][] = [
    [
      "RSS (MiB)",
      mib(before.rssKiB),
      mib(peak.rssKiB),
      mib(after.rssKiB),
      `<= +${MAX_RSS_GROWTH * 100}%`,
    ],
    ["open fds", `${before.fds}`, `${peak.fds}`, `${after.fds}`, `<= +${MAX_FD_GROWTH}`],
    ["threads", `${before.threads}`, `${peak.threads}`, `${after.threads}`, "-"],
    [
      `worker heaps used (MiB, ${statsAfter.workersSampled} threads)`,
      mib(statsBefore.workerHeapUsed / 1024),
      "-",
      mib(statsAfter.workerHeapUsed / 1024),
      `<= +${MAX_HEAP_GROWTH * 100}% (sum`,
    ],
    [
      "main heap used (MiB)",
      mib(statsBefore.heapUsed / 1024),
      "-",
      mib(statsAfter.heapUsed / 1024),
      "of both)",
    ],
    ["connections (stats)", `${statsBefore.connections}`, "-", `${statsAfter.connections}`, "<= 1"],
    ["calls in flight (stats)", `${statsBefore.inFlight}`, "-", `${statsAfter.inFlight}`, "<= 1"],
  ];
  console.log(
    `\nserver figures (pid ${pid}, ${THREADS} threads; start after ${WARMUP} s of warm-up, ` +
      `end after ${SETTLE} s of rest; both after a full GC):`,
  );
  console.log(table(["measure", "start", "peak", "end", "limit"], rows));
  console.log(
    "(the stats call counts itself: 1 connection and 1 call in flight is an idle server)\n",
  );

  const loadRows = Object.entries(tallies).map(([name, t]) => [
    name,
    `${t.connections}`,
    `${t.calls}`,
    `${t.ok}`,
    `${t.expectedErrors}`,
    `${t.unexpected}`,
    `${t.violations}`,
    `${t.malformed}`,
    `${t.disconnects}`,
  ]);
  const sum = (key: keyof Tally) => Object.values(tallies).reduce((s, t) => s + t[key], 0);
  loadRows.push([
    "total",
    `${sum("connections")}`,
    `${sum("calls")}`,
    `${sum("ok")}`,
    `${sum("expectedErrors")}`,
    `${sum("unexpected")}`,
    `${sum("violations")}`,
    `${sum("malformed")}`,
    `${sum("disconnects")}`,
  ]);
  console.log(
    `load: ${loadSeconds.toFixed(1)} s, ${(sum("calls") / loadSeconds).toFixed(0)} calls/s`,
  );
  console.log(
    table(
      [
        "actor",
        "conns",
        "calls",
        "ok",
        "expected errors",
        "unexpected",
        "bad replies",
        "malformed sent",
        "abrupt closes",
      ],
      loadRows,
    ),
  );
  if (notes.length > 0) console.log(`\nfirst problems:\n  ${notes.join("\n  ")}`);

  verdict(
    after.fds <= before.fds + MAX_FD_GROWTH,
    `fds back near start: ${before.fds} -> ${after.fds}`,
  );
  verdict(
    statsAfter.inFlight <= 1,
    `no call left in flight: ${statsAfter.inFlight - 1} besides the stats call`,
  );
  verdict(
    statsAfter.connections <= 1,
    `no connection left open: ${statsAfter.connections - 1} besides the stats caller`,
  );
  verdict(
    after.rssKiB <= before.rssKiB * (1 + MAX_RSS_GROWTH),
    `RSS growth ${(((after.rssKiB / before.rssKiB) - 1) * 100).toFixed(0)}% (limit ${
      MAX_RSS_GROWTH * 100
    }%)`,
  );
  const heapBefore = statsBefore.heapUsed + statsBefore.workerHeapUsed;
  const heapAfter = statsAfter.heapUsed + statsAfter.workerHeapUsed;
  verdict(
    heapAfter <= heapBefore * (1 + MAX_HEAP_GROWTH),
    `JS heaps after GC (main + workers) growth ${
      ((heapAfter / heapBefore - 1) * 100).toFixed(0)
    }% ` +
      `(limit ${MAX_HEAP_GROWTH * 100}%)`,
  );
  verdict(sum("unexpected") === 0, `no unexpected call outcome (${sum("unexpected")})`);
  verdict(sum("violations") === 0, `every reply line well-formed (${sum("violations")} bad)`);
  verdict(sum("calls") > 0 && sum("ok") > 0, "the load made successful calls");
} catch (error) {
  failed = true;
  console.error(`soak failed: ${(error as Error).message}`);
} finally {
  // Stop the server: SIGTERM (graceful), then SIGKILL if it hangs.
  if (!child.exited) {
    const t0 = Date.now();
    const final = await child.stop("SIGTERM", 10_000);
    verdict(
      !child.killed && final.code === 0,
      `SIGTERM stopped the server in ${Date.now() - t0} ms with exit code ${final.code}`,
    );
  } else {
    await within(child.done, 10_000, "the server's output").catch(() => {});
  }
  const stderr = child.stderr.trim();
  if (stderr) console.log(`\nserver stderr:\n${stderr.slice(-4000)}`);
}

console.log(`\n${verdicts.join("\n")}`);
console.log(failed ? "\nsoak: FAIL" : "\nsoak: ok");
Deno.exit(failed ? 1 : 0);

function table(head: string[], rows: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) =>
    `| ${
      cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join(" | ")
    } |`;
  const rule = `|${
    widths.map((w, i) => (i === 0 ? "-".repeat(w + 2) : "-".repeat(w + 1) + ":")).join("|")
  }|`;
  return [line(head), rule, ...rows.map(line)].join("\n");
}

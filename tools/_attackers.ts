/**
 * The attacks of `tools/attack.ts`, one function each. They run in a Web
 * Worker (`tools/_attack_worker.ts`), so their own JavaScript work does not
 * delay the bystander's timers and replies on the harness's main thread.
 *
 * Every attack talks to 127.0.0.1 only, stops by itself at `stopAt` (a
 * `Date.now()` value: each loop checks it, and a timer closes every socket
 * then, which ends any write or read still waiting), and bounds its
 * connections and counts. Each returns a short note for the table.
 *
 * @module
 */
import { TCPClient } from "../mod.ts";

/** What an attack is given. */
export interface AttackContext {
  port: number;
  /** `Date.now()` at which to stop. */
  stopAt: number;
  /** Connections an attack may hold open at once (from `ulimit -n`). */
  maxConnections: number;
  /** The `n` for which `vary {n}` takes about 0.45 s. */
  largeN: number;
  /** The server's `maxMessageBytes`. */
  maxMessageBytes: number;
}

/** What an attack tells the harness. */
export interface AttackReport {
  /** A few words for the table. */
  note: string;
  /** What the attacker did and saw, for the details below the table. */
  detail: string;
}

const enc = new TextEncoder();

/** The sockets of the running attack, closed all at once at `stopAt`. */
class Sockets {
  readonly #open = new Set<Deno.TcpConn>();
  readonly #timer: ReturnType<typeof setTimeout>;
  connected = 0;
  failed = 0;
  closedByServer = 0;
  /** Writes that failed before `stopAt`: the server cut the connection. */
  cut = 0;
  lines = 0;
  replies = 0;
  firstError = "";

  constructor(readonly ctx: AttackContext) {
    this.#timer = setTimeout(() => this.closeAll(), Math.max(0, ctx.stopAt - Date.now()));
  }

  get stopped(): boolean {
    return Date.now() >= this.ctx.stopAt;
  }

  async open(): Promise<Deno.TcpConn | undefined> {
    if (this.stopped) return undefined;
    try {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: this.ctx.port });
      conn.setNoDelay(true);
      if (this.stopped) {
        conn.close();
        return undefined;
      }
      this.#open.add(conn);
      this.connected++;
      return conn;
    } catch (error) {
      this.failed++;
      this.error(error);
      return undefined;
    }
  }

  error(error: unknown): void {
    if (!this.firstError && !this.stopped) {
      this.firstError = `${(error as Error).name}: ${(error as Error).message}`.slice(0, 80);
    }
  }

  close(conn: Deno.TcpConn): void {
    if (!this.#open.delete(conn)) return;
    try {
      conn.close();
    } catch {
      // Already closed.
    }
  }

  closeAll(): void {
    clearTimeout(this.#timer);
    for (const conn of [...this.#open]) this.close(conn);
  }

  /** Writes all of `bytes`; false once the socket is closed (by us at `stopAt`, or cut). */
  async write(conn: Deno.TcpConn, bytes: Uint8Array): Promise<boolean> {
    try {
      for (let n = 0; n < bytes.length;) n += await conn.write(bytes.subarray(n));
      return true;
    } catch (error) {
      if (!this.stopped) this.cut++;
      this.error(error);
      this.close(conn);
      return false;
    }
  }

  /**
   * Reads and discards until the socket ends, counting reply lines;
   * `onLines` hears how many arrived in each read.
   */
  async drain(conn: Deno.TcpConn, onLines?: (count: number) => void): Promise<void> {
    const buffer = new Uint8Array(256 * 1024);
    try {
      while (true) {
        const n = await conn.read(buffer);
        if (n === null) {
          if (!this.stopped) this.closedByServer++;
          break;
        }
        const view = buffer.subarray(0, n);
        let count = 0;
        for (let at = view.indexOf(10); at !== -1; at = view.indexOf(10, at + 1)) count++;
        this.replies += count;
        onLines?.(count);
      }
    } catch (error) {
      this.error(error);
    }
    this.close(conn);
  }

  summary(extra = ""): string {
    const parts = [
      `${this.connected} conns`,
      `${this.lines} lines sent`,
      `${this.replies} lines back`,
    ];
    if (this.closedByServer) parts.push(`${this.closedByServer} closed by server`);
    if (this.cut) parts.push(`${this.cut} writes failed (cut)`);
    if (this.failed) parts.push(`${this.failed} connects failed`);
    if (extra) parts.push(extra);
    if (this.firstError) parts.push(`first error: ${this.firstError}`);
    return parts.join(", ");
  }

  /** The report: `note` (or the count of lines sent), and what it cut short. */
  report(note = "", extra = ""): AttackReport {
    const parts = [note || `${count(this.lines)} lines sent`];
    const cut = Math.max(this.closedByServer, this.cut);
    if (cut) parts.push(`${cut} conns cut`);
    return { note: parts.join(", "), detail: this.summary(extra) };
  }
}

/** 1234567 as "1.2M". */
function count(n: number): string {
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)}M`;
  if (n >= 1e4) return `${(n / 1e3).toFixed(0)}k`;
  return String(n);
}

function request(id: number | undefined, method: string, params?: string): string {
  return `{"jsonrpc":"2.0",${id === undefined ? "" : `"id":${id},`}"method":"${method}"${
    params === undefined ? "" : `,"params":${params}`
  }}`;
}

/** `count` request lines with ids from `first`, encoded. */
function lines(first: number, count: number, method: string, params?: string): Uint8Array {
  let text = "";
  for (let i = 0; i < count; i++) text += request(first + i, method, params) + "\n";
  return enc.encode(text);
}

/** Writes `add` lines as fast as the socket takes them, reading and discarding the replies. */
async function flood(s: Sockets, perWrite: number, method = "add", params = '{"x":1,"y":2}') {
  const conn = await s.open();
  if (!conn) return;
  const reading = s.drain(conn);
  let id = 0;
  while (!s.stopped) {
    const ok = await s.write(conn, lines(id, perWrite, method, params));
    if (!ok) break;
    id += perWrite;
    s.lines += perWrite;
  }
  await reading;
}

/** A bounded number of tasks at a time. */
async function inParallel(count: number, limit: number, task: (i: number) => Promise<void>) {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(count, limit) }, async () => {
      while (next < count) await task(next++);
    }),
  );
}

// ---------------------------------------------------------------------------
// The attacks

/** 1. One socket pipelining `add` as fast as it can write; the replies are read and dropped. */
async function pipeline(ctx: AttackContext): Promise<AttackReport> {
  const s = new Sockets(ctx);
  await flood(s, 256);
  s.closeAll();
  return s.report();
}

/** 2. 64 sockets doing the same. */
async function many(ctx: AttackContext): Promise<AttackReport> {
  const s = new Sockets(ctx);
  await Promise.all(Array.from({ length: Math.min(64, ctx.maxConnections) }, () => flood(s, 64)));
  s.closeAll();
  return s.report();
}

/** 3. 4 sockets each keeping ~256 `cpu {ms: 1}` calls in flight. */
async function poolFlood(ctx: AttackContext): Promise<AttackReport> {
  const s = new Sockets(ctx);
  const DEPTH = 256;
  await Promise.all(Array.from({ length: 4 }, async () => {
    const conn = await s.open();
    if (!conn) return;
    let id = 0;
    let inFlight = 0;
    let writing = false;
    const top = async () => {
      if (writing || s.stopped) return;
      writing = true;
      while (inFlight <= DEPTH - 64 && !s.stopped) {
        const n = DEPTH - inFlight;
        inFlight += n;
        s.lines += n;
        if (!await s.write(conn, lines(id, n, "cpu", '{"ms":1}'))) break;
        id += n;
      }
      writing = false;
    };
    const reading = s.drain(conn, (count) => {
      inFlight = Math.max(0, inFlight - count);
      top();
    });
    await top();
    await reading;
  }));
  s.closeAll();
  return s.report();
}

/** 4. One socket sending batches of 1000 `add` calls as fast as it can write. */
async function batches(ctx: AttackContext): Promise<AttackReport> {
  const s = new Sockets(ctx);
  const conn = await s.open();
  if (conn) {
    const reading = s.drain(conn);
    let id = 0;
    let sent = 0;
    while (!s.stopped) {
      const calls: string[] = [];
      for (let i = 0; i < 1000; i++) calls.push(request(id++, "add", '{"x":1,"y":2}'));
      if (!await s.write(conn, enc.encode(`[${calls.join(",")}]\n`))) break;
      s.lines++;
      sent++;
    }
    await reading;
    s.closeAll();
    return s.report(`${sent} batches`, `${sent} batches of 1000`);
  }
  return s.report();
}

/** 5. 16 sockets pipelining `big {bytes: 524288}` and never reading. */
async function nonReader(ctx: AttackContext): Promise<AttackReport> {
  const s = new Sockets(ctx);
  const conns: Deno.TcpConn[] = [];
  await Promise.all(Array.from({ length: 16 }, async () => {
    const conn = await s.open();
    if (!conn) return;
    conns.push(conn);
    let id = 0;
    // Bounded: at most 4096 calls a socket (2 GiB of replies asked for).
    while (!s.stopped && id < 4096) {
      if (!await s.write(conn, lines(id, 16, "big", '{"bytes":524288}'))) break;
      id += 16;
      s.lines += 16;
    }
  }));
  // Until stopAt, an empty line (ignored by the server) on each socket every 250 ms: a
  // write fails once the server has cut the connection (a slow consumer).
  const blank = enc.encode("\n");
  while (!s.stopped && conns.length > 0) {
    await new Promise((resolve) => setTimeout(resolve, 250));
    for (const conn of conns.splice(0)) {
      if (!s.stopped && await s.write(conn, blank)) conns.push(conn);
    }
  }
  s.closeAll();
  return s.report();
}

/**
 * 6. 4 sockets each starting a `sink` conversation (which never `recv()`s)
 * and flooding it with `tcpy.message` notifications; when the unread limit
 * ends the call, the next one starts.
 */
async function messages(ctx: AttackContext): Promise<AttackReport> {
  const s = new Sockets(ctx);
  let sinks = 0;
  await Promise.all(Array.from({ length: 4 }, async () => {
    const conn = await s.open();
    if (!conn) return;
    const reading = s.drain(conn);
    const data = JSON.stringify("m".repeat(64));
    for (let id = 0; !s.stopped; id++) {
      let text = request(id, "sink", '{"ms":10000}') + "\n";
      const message =
        `{"jsonrpc":"2.0","method":"tcpy.message","params":{"id":${id},"data":${data}}}\n`;
      text += message.repeat(1100);
      if (!await s.write(conn, enc.encode(text))) break;
      sinks++;
      s.lines += 1101;
    }
    await reading;
  }));
  s.closeAll();
  return s.report(`${sinks} sinks`, `${sinks} sink calls, 1100 messages each`);
}

/**
 * 7. Measured placement: `vary {n: 10}` warmed a few hundred times on 4
 * connections (spread over the I/O threads), so it moves inline there; then
 * `vary {n: largeN}` (~0.45 s) every ~50 ms among cheap ones, at most one
 * large call in flight per connection.
 */
async function placement(ctx: AttackContext): Promise<AttackReport> {
  const clients = await spreadClients(ctx.port, 4, 2, 16);
  const timeout = 30_000;
  // Every call gives up at stopAt: the attack never outlives its window.
  const signal = AbortSignal.timeout(Math.max(1, ctx.stopAt - Date.now()));
  let large = 0;
  let largeDone = 0;
  let slowest = 0;
  let failed = 0;
  let firstError = "";
  const fail = (error: unknown) => {
    if (Date.now() >= ctx.stopAt) return; // given up at the end of the window
    failed++;
    firstError ||= `${(error as Error).name}: ${(error as Error).message}`.slice(0, 80);
  };
  try {
    // Warm-up: 300 cheap runs per connection, 50 at a time.
    for (let round = 0; round < 6 && Date.now() < ctx.stopAt; round++) {
      await Promise.all(
        clients.flatMap((c) =>
          Array.from(
            { length: 50 },
            () => c.execute("vary", { n: 10 }, { timeout, signal }).catch(fail),
          )
        ),
      );
    }
    const busy = new Set<TCPClient>();
    const pending: Promise<unknown>[] = [];
    for (let tick = 0; Date.now() < ctx.stopAt && tick < 10_000; tick++) {
      const client = clients[tick % clients.length];
      if (!busy.has(client)) {
        busy.add(client);
        large++;
        const started = Date.now();
        pending.push(
          client.execute("vary", { n: ctx.largeN }, { timeout, signal }).then(() => {
            largeDone++;
            slowest = Math.max(slowest, Date.now() - started);
          }, fail).finally(() => busy.delete(client)),
        );
      }
      for (let i = 0; i < 5; i++) {
        pending.push(client.execute("vary", { n: 10 }, { timeout, signal }).catch(fail));
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    // Do not wait for the large ones beyond the attack: disconnecting fails them.
  } finally {
    await Promise.race([
      Promise.all(clients.map((c) => c.disconnect().catch(() => {}))),
      new Promise((resolve) => setTimeout(resolve, 2_000)),
    ]);
  }
  const parts = [
    `${clients.length} conns`,
    `${large} large vary sent, ${largeDone} answered in the window`,
    `slowest ${(slowest / 1000).toFixed(1)} s`,
  ];
  if (failed) parts.push(`${failed} failed, first: ${firstError}`);
  return {
    note: `${large} large, slowest ${(slowest / 1000).toFixed(1)} s`,
    detail: parts.join(", "),
  };
}

/** 8. Many idle connections (up to 2,000, bounded by the descriptor limit), held. */
async function idle(ctx: AttackContext): Promise<AttackReport> {
  const s = new Sockets(ctx);
  const want = Math.min(2000, ctx.maxConnections);
  const reads: Promise<void>[] = [];
  let held = 0;
  await inParallel(want, 32, async () => {
    const conn = await s.open();
    if (!conn) return;
    held++;
    reads.push(s.drain(conn));
  });
  const wasHeld = held;
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, ctx.stopAt - Date.now())));
  s.closeAll();
  await Promise.all(reads);
  return {
    note: `held ${wasHeld} idle conns`,
    detail: `held ${wasHeld} of ${want} idle connections, ${s.closedByServer} closed by server` +
      (s.failed ? `, ${s.failed} connects failed` : "") +
      (s.firstError ? `, first error: ${s.firstError}` : ""),
  };
}

/** Lines the server must refuse, each cheap to tell apart. */
const JUNK: Uint8Array[] = [
  "{",
  "not json at all",
  '{"jsonrpc":"2.0"}',
  "[]",
  "[1,2,3]",
  "null",
  '"just a string"',
  '{"jsonrpc":"1.0","id":1,"method":"add"}',
  '{"jsonrpc":"2.0","id":{},"method":"add"}',
  '{"jsonrpc":"2.0","id":1,"method":"nope"}',
  '{"jsonrpc":"2.0","id":2,"method":"add","params":[1,2]}',
  '{"jsonrpc":"2.0","id":3,"method":"add","params":' + "[".repeat(100) + "]".repeat(100) + "}",
  '{"jsonrpc":"2.0","id":4,"method":"constructor"}',
].map((text) => enc.encode(text + "\n")).concat([
  new Uint8Array([0xff, 0xfe, 0x7b, 0x80, 0x0a]), // invalid UTF-8
]);

/** 9. Junk lines and lines just under `maxMessageBytes`, pipelined on 2 sockets. */
async function malformed(ctx: AttackContext): Promise<AttackReport> {
  const s = new Sockets(ctx);
  const size = ctx.maxMessageBytes - 64;
  const head = '{"jsonrpc":"2.0","id":0,"method":"add","params":{"x":1,"y":2,"pad":"';
  const big = [
    // A valid call with a large param: parsed whole, then answered.
    enc.encode(head + "p".repeat(size - head.length - 4) + '"}}\n'),
    // A JSON string, not a request: parsed whole, then refused.
    enc.encode('"' + "q".repeat(size - 2) + '"\n'),
    // Not JSON: refused at its first byte, but it still has to be read and split.
    enc.encode("r".repeat(size) + "\n"),
  ];
  let bigSent = 0;
  let reconnects = 0;
  await Promise.all(Array.from({ length: 2 }, async () => {
    while (!s.stopped && reconnects < 100) {
      const conn = await s.open();
      if (!conn) return;
      const reading = s.drain(conn);
      for (let round = 0; !s.stopped; round++) {
        const parts = [...JUNK, ...JUNK, ...JUNK, big[round % big.length]];
        const chunk = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
        let at = 0;
        for (const part of parts) {
          chunk.set(part, at);
          at += part.length;
        }
        if (!await s.write(conn, chunk)) break;
        s.lines += parts.length;
        bigSent++;
      }
      await reading;
      if (!s.stopped) reconnects++;
    }
  }));
  s.closeAll();
  return s.report("", `${bigSent} lines of ~${(size / 1048576).toFixed(2)} MiB`);
}

/** 10. 4 sockets flooding `add` notifications (no id: nothing is answered). */
async function notifications(ctx: AttackContext): Promise<AttackReport> {
  const s = new Sockets(ctx);
  const line = request(undefined, "add", '{"x":1,"y":2}') + "\n";
  const chunk = enc.encode(line.repeat(256));
  await Promise.all(Array.from({ length: 4 }, async () => {
    const conn = await s.open();
    if (!conn) return;
    const reading = s.drain(conn);
    while (!s.stopped) {
      if (!await s.write(conn, chunk)) break;
      s.lines += 256;
    }
    await reading;
  }));
  s.closeAll();
  return s.report();
}

/** 11. Up to 1,000 sockets each dripping `add` requests one byte every 100 ms. */
async function slowloris(ctx: AttackContext): Promise<AttackReport> {
  const s = new Sockets(ctx);
  const want = Math.min(1000, ctx.maxConnections);
  const conns: { conn: Deno.TcpConn; text: Uint8Array; at: number; id: number }[] = [];
  const reads: Promise<void>[] = [];
  await inParallel(want, 32, async () => {
    const conn = await s.open();
    if (!conn) return;
    reads.push(s.drain(conn));
    conns.push({ conn, text: lines(0, 1, "add", '{"x":1,"y":2}'), at: 0, id: 0 });
  });
  let bytes = 0;
  while (!s.stopped) {
    await Promise.all(conns.map(async (c) => {
      if (c.at >= c.text.length) {
        c.id++;
        c.text = lines(c.id, 1, "add", '{"x":1,"y":2}');
        c.at = 0;
        s.lines++;
      }
      if (await s.write(c.conn, c.text.subarray(c.at, c.at + 1))) {
        c.at++;
        bytes++;
      }
    }));
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  s.closeAll();
  await Promise.all(reads);
  return s.report(`${s.connected} conns`, `${bytes} bytes dripped`);
}

/** Every attack, by name, in the order they run. */
export const ATTACKS: Record<string, (ctx: AttackContext) => Promise<AttackReport>> = {
  pipeline,
  many,
  "pool-flood": poolFlood,
  batches,
  "non-reader": nonReader,
  messages,
  placement,
  idle,
  malformed,
  notifications,
  slowloris,
};

/**
 * `want` TCPClients spread over the server's I/O threads (`perThread` of
 * each, as `where` tells), from at most `tries` connections: the kernel
 * places connections by a hash, so this opens some and keeps a spread.
 */
export async function spreadClients(
  port: number,
  want: number,
  perThread: number,
  tries: number,
): Promise<TCPClient[]> {
  const kept: TCPClient[] = [];
  const extra: TCPClient[] = [];
  const count = new Map<string, number>();
  for (let i = 0; i < tries && kept.length < want; i++) {
    const client = new TCPClient({ host: "127.0.0.1", port, timeout: 5_000 });
    let thread: string;
    try {
      thread = (await client.execute("where") as { thread: string }).thread;
    } catch {
      // Not answering (yet): keep it as a last resort, the caller measures what it gets.
      extra.push(client);
      break;
    }
    const n = count.get(thread) ?? 0;
    if (n < perThread) {
      count.set(thread, n + 1);
      kept.push(client);
    } else extra.push(client);
  }
  // Too few threads to spread over: fill up with the others.
  while (kept.length < want && extra.length > 0) kept.push(extra.shift()!);
  while (kept.length < want) kept.push(new TCPClient({ host: "127.0.0.1", port, timeout: 5_000 }));
  await Promise.all(extra.map((c) => c.disconnect().catch(() => {})));
  return kept;
}

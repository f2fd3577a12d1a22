/**
 * The framework's own cost per call, without sockets: the tutorial's `add`
 * fed through tcpy's connection code (`threads: 0`: framing, parsing,
 * dispatch, the handler, the reply, the writer) and through the baseline's
 * loop (bench/baseline_server.ts), from the same in-memory connection that
 * hands out a read of N request lines again and again and swallows the
 * replies. Nothing else runs, so the ratio is steady to a few percent even
 * on a noisy machine, where socket figures move by ±20%: use it to judge a
 * change to the hot path, then confirm with `deno task bench`.
 *
 * Run: `deno task bench:hot [--lines 16] [--reads 30000] [--rounds 12] [--read-bytes N]`.
 * Each read returns `--lines` whole request lines, or, with `--read-bytes`,
 * the next N bytes of the same endless stream of lines (so reads end in
 * the middle of a line, as they do on a real socket now and then). Prints
 * ns per call of each, round by round, and the median ratio.
 *
 * @module
 */

import { parseArgs } from "node:util";
import assert from "node:assert/strict";
import { serve as baseline } from "./baseline_server.ts";
import { AdditionHandler } from "../examples/tutorial_server.ts";
import { SERVER_DEFAULTS } from "../server.ts";
import { connectionContext } from "../internal/acceptor.ts";
import { ServerConnection } from "../internal/connection.ts";
import { type CallFailure, logFailure } from "../internal/observe.ts";
import type { Executor } from "../internal/executor.ts";
import { SAMPLES } from "../internal/placement.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    lines: { type: "string", default: "16" },
    reads: { type: "string", default: "30000" },
    rounds: { type: "string", default: "12" },
    "read-bytes": { type: "string" },
  },
});
const LINES = Number(values.lines);
const READS = Number(values.reads);
const ROUNDS = Number(values.rounds);

let requests = "";
for (let i = 0; i < LINES; i++) {
  requests += `{"jsonrpc":"2.0","id":${1000 + i},"method":"add","params":{"x":1,"y":2}}\n`;
}
const chunk = new TextEncoder().encode(requests);
const READ_BYTES = Number(values["read-bytes"] ?? chunk.length);
// Every line has the same length (4-digit ids): calls = bytes / line length.
const LINE_BYTES = chunk.length / LINES;
const CALLS = Math.floor((READS * READ_BYTES) / LINE_BYTES);

/**
 * A connection in memory: READS reads of READ_BYTES from the endless
 * repetition of `chunk`, then end of input; keeps the first replies.
 */
class MemoryConn {
  #reads = 0;
  #at = 0;
  written = 0;
  first = "";
  readonly remoteAddr: Deno.NetAddr = { transport: "tcp", hostname: "127.0.0.1", port: 1 };
  readonly localAddr: Deno.NetAddr = { transport: "tcp", hostname: "127.0.0.1", port: 2 };

  read(buffer: Uint8Array): Promise<number | null> {
    if (this.#reads++ === READS) return Promise.resolve(null);
    const size = Math.min(READ_BYTES, buffer.length);
    for (let filled = 0; filled < size;) {
      const part = chunk.subarray(this.#at, this.#at + size - filled);
      buffer.set(part, filled);
      filled += part.length;
      this.#at = (this.#at + part.length) % chunk.length;
    }
    return Promise.resolve(size);
  }

  write(bytes: Uint8Array): Promise<number> {
    if (this.written === 0) this.first = new TextDecoder().decode(bytes);
    this.written += bytes.length;
    return Promise.resolve(bytes.length);
  }

  closeWrite(): Promise<void> {
    return Promise.resolve();
  }

  close(): void {}
}

const observer = {
  onCall: undefined,
  onError: (event: CallFailure) => logFailure(event),
  stats: undefined,
  exposeErrors: false,
  warned: new Set<string>(),
};
const commands = new Map([["add", AdditionHandler]]);
const alone = connectionContext(SERVER_DEFAULTS, commands, undefined, observer);
// The defaults' path on a serving thread: a pool exists, and `add` has been
// moved out of it by measured placement (so the pool is never called).
const unused: Executor = {
  inFlight: 0,
  run: () => {
    throw new Error("bench:hot: add should run inline");
  },
  close: () => Promise.resolve(),
};
const placed = connectionContext(SERVER_DEFAULTS, commands, unused, observer);
for (let i = 0; i < SAMPLES; i++) placed.placement!.pooled("add", 5);
assert.notEqual(placed.placement!.next("add"), "pool");

const contenders: [string, (conn: MemoryConn) => Promise<void>][] = [
  ["baseline", (conn) => baseline(conn)],
  ["threads: 0", (conn) => new ServerConnection(conn as unknown as Deno.Conn, alone).serve()],
  [
    "pool, add placed inline",
    (conn) => new ServerConnection(conn as unknown as Deno.Conn, placed).serve(),
  ],
];

const ratios: number[][] = contenders.slice(1).map(() => []);
for (let round = 1; round <= ROUNDS; round++) {
  const ns: number[] = [];
  const firsts: string[] = [];
  for (const [, run] of contenders) {
    const conn = new MemoryConn();
    const started = performance.now();
    await run(conn);
    ns.push((performance.now() - started) * 1e6 / CALLS);
    firsts.push(conn.first.slice(0, conn.first.indexOf("\n")));
  }
  // Same work: the same first reply, byte for byte.
  for (const first of firsts) assert.equal(first, firsts[0]);
  ns.slice(1).forEach((time, i) => ratios[i].push(time / ns[0]));
  console.log(
    `round ${round}: ` +
      contenders.map(([name], i) => `${name} ${ns[i].toFixed(0)} ns/call`).join(", "),
  );
}
const per = values["read-bytes"] ? `${READ_BYTES} bytes` : `${LINES} lines`;
contenders.slice(1).forEach(([name], i) => {
  const sorted = ratios[i].sort((a, b) => a - b);
  console.log(
    `median ratio to the baseline, JS work per call, ${per} per read: ` +
      `tcpy ${name} ${sorted[sorted.length >> 1].toFixed(2)}`,
  );
});

/**
 * Micro-benchmarks of the framing step (`LineSplitter`), the first thing
 * every byte read by the server goes through.
 *
 * Why: the load tests show the whole server; these isolate one stage, so a
 * change to `framing.ts` can be judged alone. The shapes mirror the load
 * tests: one request per read (1 connection), 16 per read (pipelined), a
 * request split across two reads, and a full 64 KiB read buffer.
 *
 * Run: `deno task bench:micro` (or `deno bench bench/framing_bench.ts`).
 *
 * @module
 */

import { LineSplitter } from "../framing.ts";

const encoder = new TextEncoder();
const request = (id: number) =>
  `{"jsonrpc":"2.0","id":${id},"method":"add","params":{"x":1,"y":2}}\n`;

const one = encoder.encode(request(1));
const sixteen = encoder.encode(Array.from({ length: 16 }, (_, i) => request(i)).join(""));
const full = (() => {
  const lines: string[] = [];
  let size = 0;
  for (let id = 0; size < 64 * 1024 - 80; id++) {
    const line = request(id);
    lines.push(line);
    size += line.length;
  }
  return encoder.encode(lines.join(""));
})();
const head = one.subarray(0, 30);
const tail = one.subarray(30);

let lines = 0;
const splitter = new LineSplitter({
  line: (bytes) => {
    lines += bytes.length > 0 ? 1 : 0;
  },
  oversize: () => {
    throw new Error("unexpected oversize");
  },
});

Deno.bench({
  name: "1 request per chunk",
  group: "one request",
  fn() {
    splitter.push(one);
  },
});

Deno.bench({
  name: "16 requests per chunk (pipelined), per chunk",
  group: "pipelined",
  fn() {
    splitter.push(sixteen);
  },
});

Deno.bench({
  name: "1 request split across 2 chunks",
  group: "one request",
  fn() {
    splitter.push(head);
    splitter.push(tail);
  },
});

Deno.bench({
  name: `64 KiB chunk (${full.length} bytes), per chunk`,
  group: "full buffer",
  fn() {
    splitter.push(full);
  },
});

Deno.bench({
  name: "raw indexOf scan of 16 requests (lower bound)",
  group: "pipelined",
  baseline: true,
  fn() {
    let start = 0;
    while (true) {
      const nl = sixteen.indexOf(0x0a, start);
      if (nl === -1) break;
      lines += nl > start ? 1 : 0;
      start = nl + 1;
    }
  },
});

/**
 * Micro-benchmarks of the codec (`decodeLine`, `parseIncoming`,
 * `resultText`): the per-request work between framing and the handler.
 *
 * Why: next to each tcpy step runs the bare built-in it wraps (a plain
 * `TextDecoder` + `JSON.parse`, a plain `JSON.stringify`), so the overhead
 * the codec adds per request is visible in isolation from sockets.
 *
 * Run: `deno task bench:micro` (or `deno bench bench/codec_bench.ts`).
 *
 * @module
 */

import { decodeLine, parseIncoming, resultText } from "../codec.ts";

const text = `{"jsonrpc":"2.0","id":12345,"method":"add","params":{"x":1,"y":2}}`;
const line = new TextEncoder().encode(text);
const replacementLine = new TextEncoder().encode(text.replace('"add"', '"add\uFFFD"'));
const parsed = JSON.parse(text);
const plainDecoder = new TextDecoder();
const result = { success: true, solution: 3 };
/** Where results go, so the work cannot be optimized away. */
export let sink: unknown;

Deno.bench({
  name: "TextDecoder + JSON.parse (built-ins only)",
  group: "decode",
  baseline: true,
  fn() {
    sink = JSON.parse(plainDecoder.decode(line));
  },
});

Deno.bench({
  name: "decodeLine (UTF-8 check + JSON.parse)",
  group: "decode",
  fn() {
    sink = decodeLine(line);
  },
});

Deno.bench({
  name: "decodeLine, text holding U+FFFD (strict re-check)",
  group: "decode",
  fn() {
    sink = decodeLine(replacementLine);
  },
});

Deno.bench({
  name: "decodeLine + parseIncoming",
  group: "decode",
  fn() {
    sink = parseIncoming(decodeLine(line));
  },
});

Deno.bench({
  name: "parseIncoming (already parsed)",
  group: "classify",
  fn() {
    sink = parseIncoming(parsed);
  },
});

Deno.bench({
  name: "JSON.stringify of the whole reply (built-in only)",
  group: "encode",
  baseline: true,
  fn() {
    sink = JSON.stringify({ jsonrpc: "2.0", id: 12345, result });
  },
});

Deno.bench({
  name: "resultText(id, JSON.stringify(result))",
  group: "encode",
  fn() {
    sink = resultText(12345, JSON.stringify(result));
  },
});

Deno.bench({
  name: "request to reply text: decodeLine + parseIncoming + resultText",
  group: "round trip",
  fn() {
    const message = parseIncoming(decodeLine(line));
    if (message.kind !== "call") throw new Error("not a call");
    const { x, y } = message.params as { x: number; y: number };
    sink = resultText(message.id, JSON.stringify({ success: true, solution: x + y }));
  },
});

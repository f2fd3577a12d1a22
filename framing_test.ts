import assert from "node:assert/strict";
import { LineDecoderStream, LineSplitter } from "./framing.ts";
import { MessageTooLargeError } from "./errors.ts";
import { asciiText } from "./codec.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

/** Runs `chunks` through a fresh splitter; returns lines and oversize reports in order. */
function split(chunks: Uint8Array[], maxMessageBytes?: number, end = true): string[] {
  const out: string[] = [];
  const splitter = new LineSplitter({
    line: (bytes) => out.push(dec.decode(bytes)),
    oversize: (limit) => out.push(`<oversize ${limit}>`),
  }, { maxMessageBytes });
  for (const chunk of chunks) splitter.push(chunk);
  if (end) splitter.end();
  return out;
}

/** Every way to cut `bytes`: byte by byte, at each single offset, every two offsets. */
function* splits(bytes: Uint8Array): Generator<Uint8Array[]> {
  yield [bytes];
  yield Array.from(bytes, (b) => Uint8Array.of(b));
  for (let i = 0; i <= bytes.length; i++) yield [bytes.subarray(0, i), bytes.subarray(i)];
  for (let i = 0; i <= bytes.length; i += 3) {
    for (let j = i; j <= bytes.length; j += 5) {
      yield [bytes.subarray(0, i), new Uint8Array(0), bytes.subarray(i, j), bytes.subarray(j)];
    }
  }
}

const INPUT = '{"id":1}\n\n{"id":"two"}\r\n  \n{"é":"ü→😀"}\n';
const EXPECTED = ['{"id":1}', '{"id":"two"}', "  ", '{"é":"ü→😀"}'];

Deno.test("LineSplitter finds the same lines however the bytes are split", () => {
  const bytes = enc.encode(INPUT);
  let count = 0;
  for (const chunks of splits(bytes)) {
    assert.deepEqual(split(chunks), EXPECTED);
    count++;
  }
  assert.ok(count > bytes.length * 2);
});

Deno.test("LineSplitter reads many messages from one chunk", () => {
  const lines = Array.from({ length: 1000 }, (_, i) => `{"id":${i}}`);
  assert.deepEqual(split([enc.encode(lines.join("\n") + "\n")]), lines);
});

Deno.test("LineSplitter delivers an unterminated last line at end of stream only", () => {
  assert.deepEqual(split([enc.encode('{"a":1}\n{"b"')], undefined, false), ['{"a":1}']);
  assert.deepEqual(split([enc.encode('{"a":1}\n{"b"'), enc.encode(":2}")]), [
    '{"a":1}',
    '{"b":2}',
  ]);
});

Deno.test("LineSplitter skips empty lines and strips one CR before LF", () => {
  assert.deepEqual(split([enc.encode("\n\r\n\n\rx\r\r\n")]), ["\rx\r"]);
});

Deno.test("LineSplitter accepts a line of exactly the limit and rejects one byte more", () => {
  for (const chunks of splits(enc.encode("12345\n123456\nabc\n"))) {
    assert.deepEqual(split(chunks, 5), ["12345", "<oversize 5>", "abc"]);
  }
  // The CR before LF does not count towards the limit.
  assert.deepEqual(split([enc.encode("12345\r\n")], 5), ["12345"]);
});

Deno.test("LineSplitter never buffers more than the limit of an endless line", () => {
  const reports: number[] = [];
  const lines: string[] = [];
  const splitter = new LineSplitter({
    line: (bytes) => lines.push(dec.decode(bytes)),
    oversize: (limit) => reports.push(limit),
  }, { maxMessageBytes: 1024 });
  const junk = new Uint8Array(4096).fill(0x61);
  for (let i = 0; i < 1000; i++) {
    splitter.push(junk);
    assert.ok(splitter.buffered <= 1025, `buffered ${splitter.buffered}`);
  }
  assert.deepEqual(reports, [1024]);
  splitter.push(enc.encode('tail\n{"ok":1}\n'));
  splitter.end();
  assert.deepEqual(lines, ['{"ok":1}']);
});

Deno.test("LineSplitter reports an oversized line that arrives in one chunk and goes on", () => {
  const big = "x".repeat(100);
  assert.deepEqual(split([enc.encode(`a\n${big}\nb\n`)], 10), ["a", "<oversize 10>", "b"]);
  assert.deepEqual(split([enc.encode(`${big}`)], 10), ["<oversize 10>"]);
});

Deno.test("LineSplitter copies what it keeps, so the caller may reuse its buffer", () => {
  const out: string[] = [];
  const splitter = new LineSplitter({ line: (b) => out.push(dec.decode(b)), oversize() {} });
  const buffer = new Uint8Array(8);
  buffer.set(enc.encode("abc"));
  splitter.push(buffer.subarray(0, 3));
  buffer.set(enc.encode("ZZZ"));
  buffer.set(enc.encode("def\n"));
  splitter.push(buffer.subarray(0, 4));
  assert.deepEqual(out, ["abcdef"]);
});

Deno.test("LineSplitter refuses a limit that is not a positive integer", () => {
  for (const bad of [0, -1, 1.5, NaN]) {
    assert.throws(
      () => new LineSplitter({ line() {}, oversize() {} }, { maxMessageBytes: bad }),
      RangeError,
    );
  }
});

Deno.test("LineDecoderStream yields lines and errors on an oversized one", async () => {
  const chunks = [enc.encode("one\nt"), enc.encode("wo\nthree")];
  const lines = await Array.fromAsync(
    ReadableStream.from(chunks).pipeThrough(new LineDecoderStream()),
  );
  assert.deepEqual(lines.map((l) => dec.decode(l)), ["one", "two", "three"]);

  const big = ReadableStream.from([enc.encode("ok\n" + "x".repeat(50) + "\n")]);
  await assert.rejects(
    Array.fromAsync(big.pipeThrough(new LineDecoderStream({ maxMessageBytes: 10 }))),
    MessageTooLargeError,
  );
});

/** Like {@linkcode split}, but chunks that are all ASCII are pushed with their text. */
function splitWithText(chunks: Uint8Array[], maxMessageBytes?: number): string[] {
  const out: string[] = [];
  const splitter = new LineSplitter({
    line: (bytes) => out.push(dec.decode(bytes)),
    text: (text) => out.push(text),
    oversize: (limit) => out.push(`<oversize ${limit}>`),
  }, { maxMessageBytes });
  for (const chunk of chunks) splitter.push(chunk, asciiText(chunk));
  splitter.end();
  return out;
}

Deno.test("LineSplitter gives the same lines and oversize reports with the text path as without", () => {
  // ASCII with CRs, empty lines, lines at, under and over the limit of 8;
  // then a non-ASCII line, whose chunks take the byte path.
  const input = "12345678\n123456789\r\n\r\n\n1234567\r\nabcdefghijklmnop\nx\n" +
    "1234\n" + "z".repeat(30) + '\ny\n{"é":1}\nlast';
  const bytes = enc.encode(input);
  let count = 0;
  for (const chunks of splits(bytes)) {
    assert.deepEqual(splitWithText(chunks, 8), split(chunks, 8));
    count++;
  }
  assert.ok(count > 100, `only ${count} splits tried`);
  // The text path did serve lines (not only the byte path).
  const seen: string[] = [];
  const splitter = new LineSplitter({
    line: () => seen.push("bytes"),
    text: () => seen.push("text"),
    oversize: () => seen.push("oversize"),
  }, { maxMessageBytes: 8 });
  const chunk = enc.encode("abc\n123456789\ndef\nunfin");
  splitter.push(chunk, dec.decode(chunk));
  // The held line ends in the next read; the lines after it take the text path again.
  const next = enc.encode('"}\n{"id":3}\n{"id":4}\n{"i');
  splitter.push(next, asciiText(next));
  assert.deepEqual(seen, ["text", "oversize", "text", "bytes", "text", "text"]);
});

Deno.test("LineSplitter takes the byte path when the text is not one character per byte", () => {
  const seen: string[] = [];
  const splitter = new LineSplitter({
    line: (bytes) => seen.push(`bytes ${dec.decode(bytes)}`),
    text: (text) => seen.push(`text ${text}`),
    oversize: () => seen.push("oversize"),
  });
  const chunk = enc.encode("é\n");
  splitter.push(chunk, "é\n"); // 2 characters for 3 bytes: not usable as text
  assert.deepEqual(seen, ["bytes é"]);
});

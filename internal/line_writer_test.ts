import assert from "node:assert/strict";
import { LineWriter } from "./line_writer.ts";

const dec = new TextDecoder();

/** A socket that takes at most `step` bytes per write and keeps a copy of each write. */
class Sink {
  readonly writes: Uint8Array[] = [];
  constructor(readonly step = Infinity) {}
  write(bytes: Uint8Array): Promise<number> {
    const taken = bytes.slice(0, Math.min(bytes.length, this.step));
    this.writes.push(taken);
    return Promise.resolve(taken.length);
  }
  get text(): string {
    return this.writes.map((w) => dec.decode(w)).join("");
  }
}

Deno.test("LineWriter writes the lines queued in one tick in one write, each ended by a newline", async () => {
  const sink = new Sink();
  const writer = new LineWriter(sink, (error) => assert.fail(error));
  writer.write("a");
  writer.write('{"b":2}');
  assert.equal(writer.pending, 10);
  await writer.drained();
  assert.equal(sink.text, 'a\n{"b":2}\n');
  assert.equal(sink.writes.length, 1);
  assert.equal(writer.writes, 1);
  assert.equal(writer.writing, false);
  assert.equal(writer.pending, 0);
});

Deno.test("LineWriter goes on after partial writes, from a copy that is not a shared buffer", async () => {
  const sink = new Sink(7);
  const writer = new LineWriter(sink, (error) => assert.fail(error));
  const line = "x".repeat(30);
  writer.write(line);
  await writer.drained();
  assert.equal(sink.text, line + "\n");
  assert.equal(writer.writes, 5); // 7 + 7 + 7 + 7 + 3 bytes
  // What the socket saw after the first partial write came from an exact copy.
  const seen: ArrayBufferLike[] = [];
  const spy = {
    write(bytes: Uint8Array) {
      seen.push(bytes.buffer);
      return sink.write(bytes);
    },
  };
  const second = new LineWriter(spy, (error) => assert.fail(error));
  second.write(line);
  await second.drained();
  assert.ok(seen[0].byteLength >= 16 * 1024, "the first write is from a spare buffer");
  assert.ok(seen.slice(1).every((b) => b.byteLength === 24), "later writes from a 24-byte copy");
});

Deno.test("LineWriter encodes long and non-ASCII flushes exactly", async () => {
  for (const line of ["é".repeat(10_000), "z".repeat(40_000), "😀".repeat(3_000) + "end"]) {
    const sink = new Sink(4096);
    const writer = new LineWriter(sink, (error) => assert.fail(error));
    writer.write(line);
    writer.write("after");
    await writer.drained();
    assert.equal(sink.text, `${line}\nafter\n`);
  }
});

Deno.test("LineWriter counts a write that never completes as writing, with no progress", async () => {
  const stuck = { write: () => new Promise<number>(() => {}) };
  const writer = new LineWriter(stuck, (error) => assert.fail(error));
  writer.write("hello");
  await Promise.resolve();
  await Promise.resolve();
  assert.equal(writer.writing, true);
  assert.equal(writer.writes, 0);
  assert.equal(writer.pending, 6);
});

Deno.test("LineWriter reports the first write error and drops what follows", async () => {
  const errors: Error[] = [];
  const broken = { write: () => Promise.reject(new Error("reset")) };
  const writer = new LineWriter(broken, (error) => errors.push(error));
  writer.write("one");
  await writer.drained();
  writer.write("two");
  await writer.drained();
  assert.deepEqual(errors.map((e) => e.message), ["reset"]);
  assert.equal(writer.writing, false);
  assert.equal(writer.pending, 0);
});

/** The message streams: bytes → JSON messages → bytes, and their failures. */
import assert from "node:assert/strict";
import { MessageDecoderStream, MessageEncoderStream } from "./streams.ts";
import { MessageTooLargeError, ParseError } from "./errors.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

function bytes(...chunks: string[]): ReadableStream<Uint8Array> {
  return ReadableStream.from(chunks.map((chunk) => enc.encode(chunk)));
}

Deno.test("MessageDecoderStream parses one message per line, across chunk borders", async () => {
  const messages = await Array.fromAsync(
    bytes('{"id":1}\r\n{"i', 'd":2}\n\n[1,2]', "\n", '"no newline at the end"')
      .pipeThrough(new MessageDecoderStream()),
  );
  assert.deepEqual(messages, [{ id: 1 }, { id: 2 }, [1, 2], "no newline at the end"]);
});

Deno.test("MessageDecoderStream errors with ParseError on a line that is not JSON", async () => {
  const stream = bytes('{"id":1}\n{oops}\n').pipeThrough(new MessageDecoderStream());
  await assert.rejects(Array.fromAsync(stream), ParseError);
  const latin1 = ReadableStream.from([new Uint8Array([0x22, 0xff, 0x22, 0x0a])]);
  await assert.rejects(
    Array.fromAsync(latin1.pipeThrough(new MessageDecoderStream())),
    /not valid UTF-8/,
  );
});

Deno.test("MessageDecoderStream errors with MessageTooLargeError over its limit", async () => {
  const stream = bytes(`"${"x".repeat(100)}"\n`).pipeThrough(
    new MessageDecoderStream({ maxMessageBytes: 16 }),
  );
  await assert.rejects(Array.fromAsync(stream), MessageTooLargeError);
  assert.throws(() => new MessageDecoderStream({ maxMessageBytes: 0 }), RangeError);
});

Deno.test("MessageEncoderStream writes JSON lines and refuses undefined", async () => {
  const out = await Array.fromAsync(
    ReadableStream.from<unknown>([{ a: 1 }, "two", null]).pipeThrough(new MessageEncoderStream()),
  );
  assert.equal(out.map((chunk) => dec.decode(chunk)).join(""), '{"a":1}\n"two"\nnull\n');
  await assert.rejects(
    Array.fromAsync(ReadableStream.from([undefined]).pipeThrough(new MessageEncoderStream())),
    new TypeError("Cannot encode undefined as a JSON message"),
  );
});

Deno.test("MessageEncoderStream and MessageDecoderStream round-trip", async () => {
  const messages = [{ jsonrpc: "2.0", id: 1, method: "add", params: { x: 1, y: 2 } }, [], "ü"];
  const back = await Array.fromAsync(
    ReadableStream.from<unknown>(messages)
      .pipeThrough(new MessageEncoderStream())
      .pipeThrough(new MessageDecoderStream()),
  );
  assert.deepEqual(back, messages);
});

/**
 * Web Streams for the wire format: bytes to JSON messages and back. For
 * users who want to speak tcpy's protocol over any byte stream (a
 * `Deno.Conn`'s `readable`/`writable`, a file, a test fixture). The server's
 * own hot path drives the same framing without stream stages, which cost
 * more per message (ARCHITECTURE.md).
 *
 * @module
 */

import { decodeLine } from "./codec.ts";
import { MessageTooLargeError } from "./errors.ts";
import { type FramingOptions, LineSplitter } from "./framing.ts";

/**
 * A `TransformStream` from bytes to parsed JSON messages, one per line.
 * The stream errors with {@linkcode ParseError} on a line that is not UTF-8
 * JSON and with {@linkcode MessageTooLargeError} on one over the limit.
 *
 * @example Decoding replies
 * ```ts
 * import assert from "node:assert/strict";
 * import { MessageDecoderStream } from "./streams.ts";
 * const bytes = ReadableStream.from([new TextEncoder().encode('{"id":1}\n{"id":2}\n')]);
 * const messages = await Array.fromAsync(bytes.pipeThrough(new MessageDecoderStream()));
 * assert.deepEqual(messages, [{ id: 1 }, { id: 2 }]);
 * ```
 */
export class MessageDecoderStream extends TransformStream<Uint8Array, unknown> {
  /**
   * Creates the stream.
   *
   * @param options The size limit.
   * @throws {RangeError} If `maxMessageBytes` is not a positive integer.
   */
  constructor(options: FramingOptions = {}) {
    let splitter: LineSplitter;
    super({
      start(controller) {
        splitter = new LineSplitter({
          line(bytes) {
            try {
              controller.enqueue(decodeLine(bytes));
            } catch (error) {
              controller.error(error);
            }
          },
          oversize: (limit) =>
            controller.error(new MessageTooLargeError(`Message is larger than ${limit} bytes`)),
        }, options);
      },
      transform(chunk) {
        splitter.push(chunk);
      },
      flush() {
        splitter.end();
      },
    });
  }
}

const encoder = new TextEncoder();

/**
 * A `TransformStream` from messages to bytes: `JSON.stringify` plus `\n`.
 *
 * @example Encoding a request
 * ```ts
 * import assert from "node:assert/strict";
 * import { MessageEncoderStream } from "./streams.ts";
 * const out = ReadableStream.from([{ jsonrpc: "2.0", id: 1, method: "add", params: { x: 1, y: 2 } }])
 *   .pipeThrough(new MessageEncoderStream());
 * const [bytes] = await Array.fromAsync(out);
 * assert.equal(
 *   new TextDecoder().decode(bytes),
 *   '{"jsonrpc":"2.0","id":1,"method":"add","params":{"x":1,"y":2}}\n',
 * );
 * ```
 */
export class MessageEncoderStream extends TransformStream<unknown, Uint8Array> {
  /**
   * Creates the stream.
   *
   * @throws {TypeError} From a chunk that `JSON.stringify` cannot encode.
   */
  constructor() {
    super({
      transform(message, controller) {
        const text = JSON.stringify(message);
        if (text === undefined) throw new TypeError("Cannot encode undefined as a JSON message");
        controller.enqueue(encoder.encode(text + "\n"));
      },
    });
  }
}

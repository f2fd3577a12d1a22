/**
 * Line framing: bytes in, one message per `\n`-terminated line out. Pure: no
 * sockets, no timers, no `Deno.*`. The server drives {@linkcode LineSplitter}
 * straight from its `conn.read` loop (the fast path, see ARCHITECTURE.md); users who
 * prefer Web Streams pipe through {@linkcode LineDecoderStream}.
 *
 * @module
 */

import { MessageTooLargeError } from "./errors.ts";

/**
 * 1 MiB: the default largest message, not counting its `\n`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { DEFAULT_MAX_MESSAGE_BYTES } from "./framing.ts";
 * assert.equal(DEFAULT_MAX_MESSAGE_BYTES, 1_048_576);
 * ```
 */
export const DEFAULT_MAX_MESSAGE_BYTES = 1024 * 1024;

const LF = 0x0a;
const CR = 0x0d;

/**
 * Where a {@linkcode LineSplitter} delivers what it finds.
 *
 * @example Collecting lines as text, counting oversized ones
 * ```ts
 * import assert from "node:assert/strict";
 * import { type LineSink, LineSplitter } from "./framing.ts";
 * const lines: string[] = [];
 * let tooLong = 0;
 * const sink: LineSink = {
 *   line: (bytes) => lines.push(new TextDecoder().decode(bytes)),
 *   oversize: () => tooLong++,
 * };
 * const splitter = new LineSplitter(sink, { maxMessageBytes: 4 });
 * splitter.push(new TextEncoder().encode("ok\r\ntoo long\nfine\n"));
 * assert.deepEqual(lines, ["ok", "fine"]);
 * assert.equal(tooLong, 1);
 * ```
 */
export interface LineSink {
  /**
   * Called once per non-empty line, without its `\n` (and without a `\r`
   * before it). The bytes may be a view into the chunk given to `push`, so
   * they are only valid until the call returns: decode or copy them there.
   *
   * @param bytes The line.
   */
  line(bytes: Uint8Array): void;
  /**
   * Called once per line longer than the limit. The splitter never buffers
   * more than the limit: the rest of that line is skipped up to its `\n`.
   *
   * @param limit The limit the line exceeded, in bytes.
   */
  oversize(limit: number): void;
  /**
   * If set, called instead of `line` for a line that lies whole in a chunk
   * pushed with its text (see {@linkcode LineSplitter.push}): the line as
   * text, without `\n` or `\r`, and with no copy or view of the bytes made.
   *
   * @param text The line.
   */
  text?(text: string): void;
}

/**
 * Options of {@linkcode LineSplitter} and the streams built on it.
 *
 * @example A smaller limit for a stream of short messages
 * ```ts
 * import { type FramingOptions, LineDecoderStream } from "./framing.ts";
 * const options: FramingOptions = { maxMessageBytes: 64 * 1024 };
 * const lines = new LineDecoderStream(options);
 * ```
 */
export interface FramingOptions {
  /**
   * Largest line accepted, in bytes, not counting `\n`.
   *
   * @default {1048576}
   */
  maxMessageBytes?: number;
}

function checkLimit(value: number | undefined): number {
  const limit = value ?? DEFAULT_MAX_MESSAGE_BYTES;
  if (!Number.isSafeInteger(limit) || limit < 1) {
    throw new RangeError(
      `Cannot frame messages: maxMessageBytes must be a positive integer, got ${value}`,
    );
  }
  return limit;
}

const EMPTY = new Uint8Array(0);
/** Largest line buffer kept between lines. */
const KEEP_BYTES = 16 * 1024;

/**
 * A push parser that splits a byte stream into lines. Feed it chunks of any
 * size, split anywhere; it calls `sink.line` for every complete line.
 *
 * @example Splitting two messages that arrive in three chunks
 * ```ts
 * import assert from "node:assert/strict";
 * import { LineSplitter } from "./framing.ts";
 * const lines: string[] = [];
 * const splitter = new LineSplitter({
 *   line: (bytes) => lines.push(new TextDecoder().decode(bytes)),
 *   oversize: () => {},
 * });
 * const bytes = new TextEncoder().encode('{"a":1}\n{"b":2}\n');
 * splitter.push(bytes.subarray(0, 3));
 * splitter.push(bytes.subarray(3, 10));
 * splitter.push(bytes.subarray(10));
 * assert.deepEqual(lines, ['{"a":1}', '{"b":2}']);
 * ```
 */
export class LineSplitter {
  readonly #sink: LineSink;
  #limit: number;
  // An unfinished line, copied into one buffer that grows by doubling: one
  // slice per read cost hundreds of bytes of overhead per byte held when a
  // client dripped a line one byte per segment.
  #held: Uint8Array = EMPTY;
  #buffered = 0;
  #skipping = false;

  /**
   * Creates a splitter.
   *
   * @param sink Receives lines and oversize reports.
   * @param options The size limit.
   * @throws {RangeError} If `maxMessageBytes` is not a positive integer.
   */
  constructor(sink: LineSink, options: FramingOptions = {}) {
    this.#sink = sink;
    this.#limit = checkLimit(options.maxMessageBytes);
  }

  /** The largest line accepted, in bytes; may be changed between pushes. */
  get maxMessageBytes(): number {
    return this.#limit;
  }

  /**
   * Changes the limit for the lines still to come.
   *
   * @param value The new limit, in bytes.
   * @throws {RangeError} If it is not a positive integer.
   */
  set maxMessageBytes(value: number) {
    this.#limit = checkLimit(value);
  }

  /** Bytes held for an unfinished line (never more than the limit). */
  get buffered(): number {
    return this.#buffered;
  }

  /**
   * Feeds a chunk. The splitter copies what it keeps, so the caller may
   * reuse the chunk's memory once `push` returns.
   *
   * @param chunk The next bytes of the stream.
   * @param text The chunk decoded, only if every byte of it is ASCII (make
   *   it with `asciiText` from `codec.ts`): lines that need no held bytes
   *   then go to the sink's `text` as slices of it, with no view of the
   *   bytes made per line. The splitter checks only its length, so a text
   *   with U+FFFD in place of an invalid byte would pass: never give one.
   */
  push(chunk: Uint8Array, text?: string): void {
    let start = 0;
    const end = chunk.length;
    const asText = text !== undefined && this.#sink.text !== undefined && text.length === end;
    while (start < end) {
      // Between held lines, the text path takes every line it can.
      if (asText && this.#buffered === 0 && !this.#skipping) {
        start = this.#pushText(chunk, text, start);
        if (start === end) return;
      }
      const nl = chunk.indexOf(LF, start);
      if (nl === -1) {
        this.#keep(chunk.subarray(start));
        return;
      }
      if (this.#skipping) {
        this.#skipping = false;
      } else if (this.#buffered === 0) {
        this.#emit(chunk.subarray(start, nl));
      } else {
        const tail = chunk.subarray(start, nl);
        if (this.#buffered + tail.length > this.#limit + 1) {
          this.#drop();
          this.#sink.oversize(this.#limit);
        } else {
          this.#append(tail);
          const line = this.#held.subarray(0, this.#buffered);
          this.#buffered = 0;
          this.#emit(line);
          this.#shrink();
        }
      }
      start = nl + 1;
    }
  }

  /**
   * The complete lines of an ASCII chunk from `start` on, as slices of its
   * text (nothing is held, nothing skipped); returns where the unfinished
   * last line begins, or the chunk's end.
   */
  #pushText(chunk: Uint8Array, text: string, start: number): number {
    const sink = this.#sink;
    while (true) {
      const nl = text.indexOf("\n", start);
      if (nl === -1) return start;
      let stop = nl;
      if (stop > start && chunk[stop - 1] === CR) stop--;
      if (stop > start) {
        if (stop - start > this.#limit) sink.oversize(this.#limit);
        else sink.text!(text.slice(start, stop));
      }
      start = nl + 1;
    }
  }

  /**
   * Ends the stream: a last line without `\n` is delivered as a line, so a
   * person typing into `nc` and pressing Ctrl-D is still answered.
   */
  end(): void {
    if (this.#buffered > 0 && !this.#skipping) {
      const line = this.#held.subarray(0, this.#buffered);
      this.#buffered = 0;
      this.#emit(line);
    }
    this.#drop();
    this.#skipping = false;
  }

  #keep(rest: Uint8Array): void {
    if (this.#skipping || rest.length === 0) return;
    // One byte of slack: a trailing `\r` is not part of the message.
    if (this.#buffered + rest.length > this.#limit + 1) {
      this.#drop();
      this.#skipping = true;
      this.#sink.oversize(this.#limit);
      return;
    }
    this.#append(rest);
  }

  #append(bytes: Uint8Array): void {
    const need = this.#buffered + bytes.length;
    if (need > this.#held.length) {
      const grown = new Uint8Array(
        Math.min(Math.max(need, this.#held.length * 2, 256), this.#limit + 1),
      );
      grown.set(this.#held.subarray(0, this.#buffered));
      this.#held = grown;
    }
    this.#held.set(bytes, this.#buffered);
    this.#buffered = need;
  }

  /** Lets go of a large buffer once its line is done, so idle connections stay small. */
  #shrink(): void {
    if (this.#held.length > KEEP_BYTES) this.#held = EMPTY;
  }

  #drop(): void {
    this.#buffered = 0;
    this.#shrink();
  }

  #emit(line: Uint8Array): void {
    let length = line.length;
    if (length > 0 && line[length - 1] === CR) length--;
    if (length === 0) return;
    if (length > this.#limit) {
      this.#sink.oversize(this.#limit);
      return;
    }
    this.#sink.line(length === line.length ? line : line.subarray(0, length));
  }
}

/**
 * A `TransformStream` from bytes to lines (each a fresh `Uint8Array` without
 * its `\n`). A line over the limit errors the stream with
 * {@linkcode MessageTooLargeError}.
 *
 * @example Reading lines from a byte stream
 * ```ts
 * import assert from "node:assert/strict";
 * import { LineDecoderStream } from "./framing.ts";
 * const bytes = ReadableStream.from([new TextEncoder().encode("one\ntw"), new TextEncoder().encode("o\n")]);
 * const lines = await Array.fromAsync(bytes.pipeThrough(new LineDecoderStream()));
 * assert.deepEqual(lines.map((l) => new TextDecoder().decode(l)), ["one", "two"]);
 * ```
 */
export class LineDecoderStream extends TransformStream<Uint8Array, Uint8Array> {
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
          line: (bytes) => controller.enqueue(bytes.slice()),
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

/**
 * Writes lines to a socket, coalescing every line queued in the same tick
 * into one `write` (replies to a pipelined read go out together). It counts
 * what is not yet written, so the connection can stop reading from a client
 * that does not read its replies, and the writes it completed, so the
 * server can tell a stuck client (no write completes) from a slow one.
 *
 * @module
 */

const encoder = new TextEncoder();

/**
 * Output buffers, shared by every writer of the thread: a flush of up to
 * 16 KiB encodes into one (`encodeInto`, no allocation) and gives it back as
 * soon as the socket took every byte, so an idle connection holds none. A
 * write the socket takes only in part goes on from an exact copy of the
 * rest, so a client that stops reading pins its own bytes, not a spare (a
 * flush whose very first write waits holds its spare until then: one per
 * connection at most). Bigger flushes get an exact buffer from `encode()`.
 */
const SPARE_BYTES = 16 * 1024;
const MAX_SPARES = 64;
const spares: Uint8Array[] = [];

/**
 * `text` as UTF-8, and the spare buffer it was encoded into (to give back
 * once written), or `undefined` if it got a buffer of its own.
 */
function encode(text: string): [Uint8Array, Uint8Array | undefined] {
  if (text.length <= SPARE_BYTES) {
    const spare = spares.pop() ?? new Uint8Array(SPARE_BYTES);
    const { read, written } = encoder.encodeInto(text, spare);
    if (read === text.length) return [spare.subarray(0, written), spare];
    giveBack(spare); // Non-ASCII text longer in bytes than a spare.
  }
  return [encoder.encode(text), undefined];
}

function giveBack(spare: Uint8Array): void {
  if (spares.length < MAX_SPARES) spares.push(spare);
}

/** The part of `Deno.Conn` a writer needs. */
export interface ByteWriter {
  write(bytes: Uint8Array): Promise<number>;
}

/** Queues lines and writes them in batches; reports the first write error. */
export class LineWriter {
  readonly #out: ByteWriter;
  readonly #onError: (error: Error) => void;
  #pending: string[] = [];
  #queued = 0;
  #writing = 0;
  #busy = false;
  #failed = false;
  #writes = 0;
  #drained: PromiseWithResolvers<void> | undefined;
  #below: { limit: number; wait: PromiseWithResolvers<void> } | undefined;

  constructor(out: ByteWriter, onError: (error: Error) => void) {
    this.#out = out;
    this.#onError = onError;
  }

  /** Bytes (about: UTF-16 units for queued text) accepted and not yet written. */
  get pending(): number {
    return this.#queued + this.#writing;
  }

  /** Whether a write to the socket is in progress (its bytes not all taken). */
  get writing(): boolean {
    return this.#writing > 0;
  }

  /**
   * Socket writes completed so far. Whoever watches for a stuck client
   * compares it between two looks while {@linkcode writing}: the writer
   * itself reads no clock (a clock read costs 50-120 ns here, more than a
   * line's share of the write).
   */
  get writes(): number {
    return this.#writes;
  }

  /** Queues one line (without `\n`). Lines after a failed write are dropped. */
  write(line: string): void {
    if (this.#failed) return;
    this.#pending.push(line);
    this.#queued += line.length + 1;
    if (!this.#busy) {
      this.#busy = true;
      queueMicrotask(() => this.#flush());
    }
  }

  /** Resolves once everything queued so far is written (or writing failed). */
  drained(): Promise<void> {
    if (!this.#busy) return Promise.resolve();
    this.#drained ??= Promise.withResolvers();
    return this.#drained.promise;
  }

  /** Resolves once fewer than `limit` bytes are pending (or writing failed). */
  below(limit: number): Promise<void> {
    if (this.pending < limit || this.#failed) return Promise.resolve();
    this.#below ??= { limit, wait: Promise.withResolvers() };
    return this.#below.wait.promise;
  }

  #release(): void {
    if (this.#below && (this.pending < this.#below.limit || this.#failed)) {
      this.#below.wait.resolve();
      this.#below = undefined;
    }
  }

  async #flush(): Promise<void> {
    try {
      while (this.#pending.length > 0) {
        const lines = this.#pending;
        this.#pending = [];
        this.#queued = 0;
        const text = lines.length === 1 ? lines[0] + "\n" : lines.join("\n") + "\n";
        let [bytes, spare] = encode(text);
        try {
          this.#writing = bytes.length;
          let written = 0;
          while (written < bytes.length) {
            if (written > 0 && spare) {
              // The client lags: go on from a copy of the rest, free the spare.
              bytes = bytes.slice(written);
              giveBack(spare);
              spare = undefined;
              written = 0;
            }
            written += await this.#out.write(written === 0 ? bytes : bytes.subarray(written));
            this.#writing = bytes.length - written;
            this.#writes++;
            this.#release();
          }
        } finally {
          if (spare) giveBack(spare);
        }
      }
    } catch (error) {
      this.#failed = true;
      this.#pending = [];
      this.#queued = 0;
      this.#onError(error instanceof Error ? error : new Error(String(error)));
    } finally {
      this.#writing = 0;
      this.#busy = false;
      this.#release();
      this.#drained?.resolve();
      this.#drained = undefined;
    }
  }
}

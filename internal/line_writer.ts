/**
 * Writes lines to a socket, coalescing every line queued in the same tick
 * into one `write` (replies to a pipelined read go out together). It counts
 * what is not yet written, so the connection can stop reading from a client
 * that does not read its replies, and it remembers since when a write has
 * been stuck, so the server can cut a client that stopped reading.
 *
 * @module
 */

const encoder = new TextEncoder();

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
  #since = 0;
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

  /** When the write now in progress started (ms since epoch), or 0 if none is. */
  get writingSince(): number {
    return this.#since;
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
        const bytes = encoder.encode(
          lines.length === 1 ? lines[0] + "\n" : lines.join("\n") + "\n",
        );
        this.#writing = bytes.length;
        this.#since = Date.now();
        let written = 0;
        while (written < bytes.length) {
          written += await this.#out.write(bytes.subarray(written));
          this.#writing = bytes.length - written;
          this.#since = Date.now();
          this.#release();
        }
        this.#since = 0;
      }
    } catch (error) {
      this.#failed = true;
      this.#pending = [];
      this.#queued = 0;
      this.#onError(error instanceof Error ? error : new Error(String(error)));
    } finally {
      this.#writing = 0;
      this.#since = 0;
      this.#busy = false;
      this.#release();
      this.#drained?.resolve();
      this.#drained = undefined;
    }
  }
}

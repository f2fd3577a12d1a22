/**
 * Writes lines to a socket, coalescing every line queued in the same tick
 * into one `write` (replies to a pipelined read go out together).
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
  #pendingChars = 0;
  #busy = false;
  #failed = false;
  #drained: PromiseWithResolvers<void> | undefined;

  constructor(out: ByteWriter, onError: (error: Error) => void) {
    this.#out = out;
    this.#onError = onError;
  }

  /** Characters queued and not yet written (a cheap stand-in for bytes). */
  get pending(): number {
    return this.#pendingChars;
  }

  /** Queues one line (without `\n`). Lines after a failed write are dropped. */
  write(line: string): void {
    if (this.#failed) return;
    this.#pending.push(line);
    this.#pendingChars += line.length + 1;
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

  async #flush(): Promise<void> {
    try {
      while (this.#pending.length > 0) {
        const lines = this.#pending;
        this.#pending = [];
        this.#pendingChars = 0;
        const bytes = encoder.encode(
          lines.length === 1 ? lines[0] + "\n" : lines.join("\n") + "\n",
        );
        let written = 0;
        while (written < bytes.length) written += await this.#out.write(bytes.subarray(written));
      }
    } catch (error) {
      this.#failed = true;
      this.#pending = [];
      this.#pendingChars = 0;
      this.#onError(error instanceof Error ? error : new Error(String(error)));
    } finally {
      this.#busy = false;
      this.#drained?.resolve();
      this.#drained = undefined;
    }
  }
}

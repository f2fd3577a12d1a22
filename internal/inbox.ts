/**
 * A queue of conversation messages with waiting readers: what one side of a
 * call sent and the other side has not yet `recv()`-ed. Bounded: a sender
 * that floods a call whose handler does not read must not grow it forever.
 *
 * @module
 */

/** How much an {@linkcode Inbox} may hold unread. */
export interface InboxLimits {
  /** Most messages held unread. */
  readonly messages: number;
  /** Most bytes held unread (as the sender measured them). */
  readonly bytes: number;
}

/** A FIFO that `recv()` waits on; `close(error)` fails the waiting readers. */
export class Inbox<T = unknown> {
  #items: T[] = [];
  #sizes: number[] = [];
  #bytes = 0;
  #waiting: PromiseWithResolvers<T>[] = [];
  #closed: Error | undefined;
  readonly #limits: InboxLimits | undefined;

  /** @param limits What may be held unread; unbounded if left out. */
  constructor(limits?: InboxLimits) {
    this.#limits = limits;
  }

  /**
   * Delivers an item to the oldest waiting reader, or queues it.
   *
   * @returns `false` if queueing it would pass the limits (it is not queued).
   */
  push(item: T, bytes = 0): boolean {
    if (this.#closed) return true;
    const reader = this.#waiting.shift();
    if (reader) {
      reader.resolve(item);
      return true;
    }
    const limits = this.#limits;
    if (limits && (this.#items.length >= limits.messages || this.#bytes + bytes > limits.bytes)) {
      return false;
    }
    this.#items.push(item);
    this.#sizes.push(bytes);
    this.#bytes += bytes;
    return true;
  }

  /** The next item, waiting for one if none is queued. */
  recv(signal?: AbortSignal): Promise<T> {
    if (this.#items.length > 0) {
      this.#bytes -= this.#sizes.shift()!;
      return Promise.resolve(this.#items.shift() as T);
    }
    if (this.#closed) return Promise.reject(this.#closed);
    if (signal?.aborted) return Promise.reject(signal.reason);
    const reader = Promise.withResolvers<T>();
    this.#waiting.push(reader);
    if (signal) {
      // A reader that gives up leaves the queue, so it cannot take (and lose)
      // the next message.
      const onAbort = () => {
        const at = this.#waiting.indexOf(reader);
        if (at !== -1) this.#waiting.splice(at, 1);
        reader.reject(signal.reason);
      };
      signal.addEventListener("abort", onAbort, { once: true });
      reader.promise.then(
        () => signal.removeEventListener("abort", onAbort),
        () => signal.removeEventListener("abort", onAbort),
      );
    }
    return reader.promise;
  }

  /** Fails current and future readers once the queue is empty. */
  close(error: Error): void {
    if (this.#closed) return;
    this.#closed = error;
    for (const reader of this.#waiting.splice(0)) reader.reject(error);
  }
}

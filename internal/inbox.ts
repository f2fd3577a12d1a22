/**
 * A queue of conversation messages with waiting readers: what one side of a
 * call sent and the other side has not yet `recv()`-ed.
 *
 * @module
 */

/** A FIFO that `recv()` waits on; `close(error)` fails the waiting readers. */
export class Inbox<T = unknown> {
  #items: T[] = [];
  #waiting: PromiseWithResolvers<T>[] = [];
  #closed: Error | undefined;

  /** Delivers an item to the oldest waiting reader, or queues it. */
  push(item: T): void {
    if (this.#closed) return;
    const reader = this.#waiting.shift();
    if (reader) reader.resolve(item);
    else this.#items.push(item);
  }

  /** The next item, waiting for one if none is queued. */
  recv(): Promise<T> {
    if (this.#items.length > 0) return Promise.resolve(this.#items.shift() as T);
    if (this.#closed) return Promise.reject(this.#closed);
    const reader = Promise.withResolvers<T>();
    this.#waiting.push(reader);
    return reader.promise;
  }

  /** Fails current and future readers once the queue is empty. */
  close(error: Error): void {
    if (this.#closed) return;
    this.#closed = error;
    for (const reader of this.#waiting.splice(0)) reader.reject(error);
  }
}

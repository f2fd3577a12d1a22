/**
 * An I/O thread's way to the worker pool: an {@linkcode Executor} whose
 * calls are carried to the main thread, which runs them in its pool.
 *
 * @module
 */

import type { Executor, Invocation, Task } from "./executor.ts";
import type { FromShard, ToShard } from "./shard_messages.ts";

/** Runs calls in the main thread's pool, batching messages per tick. */
export class RemoteExecutor implements Executor {
  readonly #post: (batch: FromShard[]) => void;
  readonly #calls = new Map<number, Invocation>();
  #next = 1;
  #outbox: FromShard[] = [];

  /** @param post Sends a batch to the main thread. */
  constructor(post: (batch: FromShard[]) => void) {
    this.#post = post;
  }

  /** Calls sent and not yet finished. */
  get inFlight(): number {
    return this.#calls.size;
  }

  /** Sends `call` to the pool. */
  run(call: Invocation): Task {
    const job = this.#next++;
    this.#calls.set(job, call);
    this.queue({
      type: "run",
      job,
      command: call.command,
      params: call.params,
      talk: call.conversational,
      owner: call.owner,
      group: call.group,
    });
    return {
      deliver: (data, bytes) => {
        if (this.#calls.has(job)) this.queue({ type: "msg", job, data, bytes });
      },
      cancel: (reason, drop) => {
        if (this.#calls.has(job)) {
          this.queue({ type: "cancel", job, message: reason.message, drop });
        }
      },
      abandon: (reason) => {
        if (this.#calls.delete(job)) this.queue({ type: "abandon", job, message: reason.message });
      },
    };
  }

  /** Queues a message for the main thread; one `postMessage` per tick. */
  queue(message: FromShard): void {
    if (this.#outbox.length === 0) queueMicrotask(() => this.#flush());
    this.#outbox.push(message);
  }

  #flush(): void {
    const batch = this.#outbox;
    this.#outbox = [];
    this.#post(batch);
  }

  /** Handles what the main thread sends back. */
  receive(message: ToShard): void {
    if (message.type === "send") {
      this.#calls.get(message.job)?.send(message.json);
    } else if (message.type === "done") {
      const call = this.#calls.get(message.job);
      if (!call) return;
      this.#calls.delete(message.job);
      call.finish(message.outcome, message.cost, message.async);
    }
  }

  /** Nothing to release: the pool belongs to the main thread. */
  close(): Promise<void> {
    return Promise.resolve();
  }
}

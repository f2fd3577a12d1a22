/**
 * The dispatch → handler step: where a call's handler runs. Two
 * implementations share this interface: {@linkcode InlineExecutor} (the main
 * event loop) and `WorkerPool` (Web Workers, in `pool.ts`).
 *
 * @module
 */

import { ConnectionClosedError, ErrorCode, ServerBusyError } from "../errors.ts";
import type { HandlerClass } from "../handler.ts";
import { Cancellation, type Channel } from "./channel.ts";
import { Inbox, type InboxLimits } from "./inbox.ts";
import { encodeSent } from "./json_text.ts";
import { type Outcome, runHandler } from "./run_handler.ts";

/**
 * One call of a handler, as the connection hands it to an executor (not the
 * client's public `Call`). The pool numbers each one it sends to a worker: its
 * "job".
 */
export interface Invocation {
  /** The command name the client asked for. */
  readonly command: string;
  /** The handler class mapped to it. */
  readonly handler: HandlerClass;
  /** The client's params, as parsed. */
  readonly params: unknown;
  /** Whether the call has an id, so the handler may send and recv. */
  readonly conversational: boolean;
  /**
   * The connection it came on, and the client's address: calls waiting for a
   * worker take turns by address, then by connection (`fair_queue.ts`).
   */
  readonly owner?: string;
  readonly group?: string;
  /**
   * Delivers conversation data (already JSON) from the handler to the
   * client. Returns a promise while the connection has too much output
   * waiting: the handler's `send()` waits for it (backpressure).
   */
  send(dataJson: string): Promise<void> | undefined;
  /**
   * Delivers the call's outcome. Called exactly once; `cost` is the µs the
   * handler's synchronous part took in a worker, when known, and `async`
   * whether it returned a promise (`cost` is then its first slice).
   */
  finish(outcome: Outcome, cost?: number, async?: boolean): void;
}

/** A running invocation, as the connection sees it: how to talk to it and stop it. */
export interface Task {
  /** Delivers conversation data from the client to the handler; `bytes` is its size on the wire. */
  deliver(data: unknown, bytes: number): void;
  /**
   * Tells the handler its client is gone: pending and future `recv()`
   * reject. With `drop` (the connection was cut, nothing can be answered),
   * a call that has not started yet never does.
   */
  cancel(reason: Error, drop?: boolean): void;
  /**
   * Gives up on a call that ran past the handler timeout (its caller has
   * been answered already): its result will be ignored, and a worker that
   * no longer responds is written off and replaced.
   */
  abandon(reason: Error): void;
}

/** Somewhere handlers run. */
export interface Executor {
  /** Calls started and not yet finished (0 where nothing queues). */
  readonly inFlight: number;
  /** Starts `call`'s handler. */
  run(call: Invocation): Task;
  /** Stops taking calls and releases what the executor holds. */
  close(): Promise<void>;
}

/** What one call may hold or produce, the same on the main thread and in a worker. */
export interface CallLimits {
  /** What a call's inbox may hold unread. */
  readonly unread: InboxLimits;
  /** Largest conversation message a handler may send, in bytes. */
  readonly maxSendBytes: number;
}

/** Limits for executors built without a server (tests, the testing helpers). */
export const NO_CALL_LIMITS: CallLimits = {
  unread: { messages: Infinity, bytes: Infinity },
  maxSendBytes: Infinity,
};

/**
 * `outcome`, or an error in its place if its result alone is longer than
 * any reply may be. A worker checks before it posts: a result the
 * connection would refuse anyway must not be copied to the main thread
 * (a batch of big results would be copied all at once).
 */
export function refuseOversized(outcome: Outcome, maxBytes: number): Outcome {
  if (!("json" in outcome) || outcome.json.length <= maxBytes) return outcome;
  return {
    error: {
      code: ErrorCode.INTERNAL_ERROR,
      message: `Reply too large: the result would be ${outcome.json.length} bytes or more, ` +
        `the limit is ${maxBytes} (maxReplyBytes)`,
    },
  };
}

/** The error a call gets when its client sends more than its handler reads. */
export function unreadOverflow(limits: InboxLimits): ServerBusyError {
  return new ServerBusyError(
    `Server busy: the handler left more than ${limits.messages} messages or ` +
      `${limits.bytes} bytes unread (maxUnreadMessages / maxUnreadBytes); the call was ended`,
  );
}

/** Runs handlers on the main event loop: no hop, no copy. */
export class InlineExecutor implements Executor {
  /** Always 0: inline calls run at once and are bounded per connection. */
  readonly inFlight = 0;
  readonly #limits: CallLimits;

  /** @param limits What each call may hold unread and send. */
  constructor(limits: CallLimits = NO_CALL_LIMITS) {
    this.#limits = limits;
  }

  /** Runs the handler now; sync handlers finish before `run` returns. */
  run(call: Invocation): Task {
    const task = new InlineTask(call, this.#limits);
    const outcome = runHandler(
      call.handler,
      call.params,
      call.conversational ? task : undefined,
      task,
    );
    if (outcome instanceof Promise) outcome.then((o) => task.finish(o));
    else task.finish(outcome);
    return task;
  }

  /** Nothing to release. */
  close(): Promise<void> {
    return Promise.resolve();
  }
}

/**
 * One inline call: its task (what the connection drives), its channel (what
 * the handler's send/recv use) and its cancellation, in one object, so a call
 * costs one allocation here, not a handful of closures.
 *
 * A handler on the main thread cannot be stopped: cancelling or abandoning
 * it only fails its pending recv() and aborts its signal; its late result is
 * dropped by the connection.
 */
class InlineTask extends Cancellation implements Task, Channel {
  readonly #call: Invocation;
  readonly #limits: CallLimits;
  #inbox: Inbox | undefined;
  #ended = false;

  constructor(call: Invocation, limits: CallLimits) {
    super();
    this.#call = call;
    this.#limits = limits;
  }

  #mailbox(): Inbox {
    if (!this.#inbox) {
      this.#inbox = new Inbox(this.#limits.unread);
      if (this.#ended) this.#inbox.close(callEnded());
    }
    return this.#inbox;
  }

  /** The call's outcome: a recv() after it (a detached loop) fails instead of hanging. */
  finish(outcome: Outcome): void {
    this.#ended = true;
    this.#inbox?.close(callEnded());
    this.#call.finish(outcome);
  }

  /** Channel: a send() after the call ended fails, as a recv() does. */
  send(data: unknown): Promise<void> {
    try {
      if (this.#ended) return Promise.reject(callEnded());
      const wait = this.#call.send(encodeSent(data, this.#limits.maxSendBytes));
      return wait ?? Promise.resolve();
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** Channel: the client's next data. */
  recv(signal?: AbortSignal): Promise<unknown> {
    return this.#mailbox().recv(signal);
  }

  /** Task: data from the client; too much unread ends the call. */
  deliver(data: unknown, bytes: number): void {
    if (this.#ended || this.#mailbox().push(data, bytes)) return;
    const error = unreadOverflow(this.#limits.unread);
    this.#call.finish({ error: error.toWire() });
    this.cancel(error);
  }

  /** Task: the client is gone. */
  cancel(reason: Error): void {
    this.#mailbox().close(reason);
    this.stop(reason);
  }

  /** Task: the call ran past the handler timeout. */
  abandon(reason: Error): void {
    this.cancel(reason);
  }
}

/** The error a `recv()` sees after its call has ended. */
export function callEnded(): Error {
  return new ConnectionClosedError("The call has ended");
}

/** The error a handler's `recv()` sees when its client has gone. */
export function clientGone(): Error {
  return new ConnectionClosedError("The client closed the connection before the call finished");
}

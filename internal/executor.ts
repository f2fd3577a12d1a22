/**
 * The dispatch → handler step: where a call's handler runs. Two
 * implementations share this interface: {@linkcode InlineExecutor} (the main
 * event loop) and `WorkerPool` (Web Workers, in `pool.ts`).
 *
 * @module
 */

import { ConnectionClosedError } from "../errors.ts";
import { toJson } from "../codec.ts";
import type { HandlerClass } from "../handler.ts";
import { Inbox } from "./inbox.ts";
import { type Outcome, runHandler } from "./run_handler.ts";

/** One call, as the connection hands it to an executor. */
export interface Call {
  /** The command name the client asked for. */
  readonly command: string;
  /** The handler class mapped to it. */
  readonly handler: HandlerClass;
  /** The client's params, as parsed. */
  readonly params: unknown;
  /** Whether the call has an id, so the handler may send and recv. */
  readonly conversational: boolean;
  /** Delivers conversation data (already JSON) from the handler to the client. */
  send(dataJson: string): void;
  /** Delivers the call's outcome. Called exactly once. */
  finish(outcome: Outcome): void;
}

/** A running call, as the connection sees it. */
export interface Task {
  /** Delivers conversation data from the client to the handler. */
  deliver(data: unknown): void;
  /** Tells the handler its client is gone: pending and future `recv()` reject. */
  cancel(reason: Error): void;
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
  run(call: Call): Task;
  /** Stops taking calls and releases what the executor holds. */
  close(): Promise<void>;
}

/** Encodes conversation data, refusing what JSON cannot carry. */
export function encodeSent(data: unknown): string {
  const json = toJson(data);
  if (json instanceof Error) {
    throw new TypeError(`Cannot send(): data is not JSON-serializable: ${json.message}`);
  }
  return json;
}

/**
 * A channel's `send`: encodes the data as JSON and hands the text to
 * `deliver`, rejecting (not throwing) what JSON cannot carry.
 */
export function jsonSender(deliver: (json: string) => void): (data: unknown) => Promise<void> {
  return (data) => {
    try {
      deliver(encodeSent(data));
      return Promise.resolve();
    } catch (error) {
      return Promise.reject(error);
    }
  };
}

/** Runs handlers on the main event loop: no hop, no copy. */
export class InlineExecutor implements Executor {
  /** Always 0: inline calls run at once and are bounded per connection. */
  readonly inFlight = 0;

  /** Runs the handler now; sync handlers finish before `run` returns. */
  run(call: Call): Task {
    let inbox: Inbox | undefined;
    let ended = false;
    const mailbox = () => {
      if (!inbox) {
        inbox = new Inbox();
        if (ended) inbox.close(callEnded());
      }
      return inbox;
    };
    const channel = call.conversational
      ? {
        send: jsonSender((json) => call.send(json)),
        recv: () => mailbox().recv(),
      }
      : undefined;
    const finish = (o: Outcome) => {
      // A recv() after the call ended (a detached loop) fails instead of hanging.
      ended = true;
      inbox?.close(callEnded());
      call.finish(o);
    };
    const outcome = runHandler(call.handler, call.params, channel);
    if (outcome instanceof Promise) outcome.then(finish);
    else finish(outcome);
    // A handler on the main thread cannot be stopped: abandoning it only
    // fails its pending recv(); its late result is dropped by the connection.
    return {
      deliver: (data) => mailbox().push(data),
      cancel: (reason) => mailbox().close(reason),
      abandon: (reason) => mailbox().close(reason),
    };
  }

  /** Nothing to release. */
  close(): Promise<void> {
    return Promise.resolve();
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

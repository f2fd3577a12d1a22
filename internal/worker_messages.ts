/**
 * The messages between the pool (main thread) and a worker, as unions
 * tagged by `t`. Both sides batch: each `postMessage` carries an array.
 *
 * @module
 */

import type { CallLimits } from "./executor.ts";
import type { Outcome } from "./run_handler.ts";

/** The first message a worker receives. */
export interface InitMessage {
  t: "init";
  /** URL of the module that defines the handler classes. */
  module: string;
  /** Command name → handler class name. */
  commands: Record<string, string>;
  /** What each call may hold unread and send. */
  limits: CallLimits;
}

/** Pool → worker, after init (always inside an array). */
export type ToWorker =
  | { t: "run"; job: number; command: string; params: unknown; talk: boolean }
  | { t: "msg"; job: number; data: unknown; bytes: number }
  | { t: "cancel"; job: number; message: string }
  /** The connection took `bytes` of the job's sent data: the handler may send more. */
  | { t: "sent"; job: number; bytes: number }
  | { t: "ping"; n: number };

/** Worker → pool (always inside an array). */
export type FromWorker =
  | { t: "ready" }
  | { t: "failed"; message: string }
  /** `cost`: µs the handler took if it returned synchronously, else -1. */
  | { t: "done"; job: number; outcome: Outcome; cost: number }
  | { t: "send"; job: number; json: string }
  /** The client sent more than the job's handler read: the call is ended. */
  | { t: "overflow"; job: number; message: string }
  | { t: "pong"; n: number }
  /** The worker is ending itself; `job` is the call running when it did, if known. */
  | { t: "exit"; job?: number };

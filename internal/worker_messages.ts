/**
 * The messages between the pool (main thread) and a worker, as unions
 * tagged by `t`. Both sides batch: each `postMessage` carries an array.
 *
 * @module
 */

import type { Outcome } from "./run_handler.ts";

/** The first message a worker receives. */
export interface InitMessage {
  t: "init";
  /** URL of the module that defines the handler classes. */
  module: string;
  /** Command name → handler class name. */
  commands: Record<string, string>;
}

/** Pool → worker, after init (always inside an array). */
export type ToWorker =
  | { t: "run"; job: number; command: string; params: unknown; talk: boolean }
  | { t: "msg"; job: number; data: unknown }
  | { t: "cancel"; job: number; message: string }
  | { t: "ping"; n: number };

/** Worker → pool (always inside an array). */
export type FromWorker =
  | { t: "ready" }
  | { t: "failed"; message: string }
  | { t: "done"; job: number; outcome: Outcome }
  | { t: "send"; job: number; json: string }
  | { t: "pong"; n: number }
  | { t: "exit" };

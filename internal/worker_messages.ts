/**
 * The messages between the pool (main thread) and a worker, as unions
 * tagged by `type`, and the two ends they travel between. Both sides batch:
 * each `postMessage` after `init` carries an array.
 *
 * @module
 */

import type { CallLimits } from "./executor.ts";
import type { Outcome } from "./run_handler.ts";

/** The first message a worker receives. */
export interface InitMessage {
  type: "init";
  /** URL of the module that defines the handler classes. */
  module: string;
  /** Command name → handler class name. */
  commands: Record<string, string>;
  /** What each call may hold unread and send. */
  limits: CallLimits;
}

/** Pool → worker, after init (always inside an array). */
export type ToWorker =
  | { type: "run"; job: number; command: string; params: unknown; conversational: boolean }
  /** Conversation data from the client, `bytes` long on the wire. */
  | { type: "msg"; job: number; data: unknown; bytes: number }
  | { type: "cancel"; job: number; message: string }
  /** The connection took `bytes` of the job's sent data: the handler may send more. */
  | { type: "sent"; job: number; bytes: number }
  /** Are you still there? Answered by a `pong` with the same number. */
  | { type: "ping"; ping: number };

/** Worker → pool (always inside an array). */
export type FromWorker =
  | { type: "ready" }
  | { type: "failed"; message: string }
  /** `cost`: µs the handler took if it returned synchronously, else -1. */
  | { type: "done"; job: number; outcome: Outcome; cost: number }
  /** An async handler's synchronous slice is over after `cost` µs: the worker has room again. */
  | { type: "began"; job: number; cost: number }
  | { type: "send"; job: number; json: string }
  /** The client sent more than the job's handler read: the call is ended. */
  | { type: "overflow"; job: number; message: string }
  | { type: "pong"; ping: number }
  /** The worker is ending itself; `job` is the call running when it did, if known. */
  | { type: "exit"; job?: number };

/**
 * The pool's end of one worker: what a `Worker` offers, cut down to what the
 * pool uses (after comlink's `Endpoint`), so tests can hand the pool an
 * in-memory fake that plays the worker.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { FromWorker, WorkerEndpoint } from "./worker_messages.ts";
 * // A worker that answers init with ready and ignores the rest.
 * const endpoint: WorkerEndpoint = {
 *   onmessage: null,
 *   onerror: null,
 *   onmessageerror: null,
 *   postMessage(message) {
 *     if (!Array.isArray(message)) {
 *       const data: FromWorker[] = [{ type: "ready" }];
 *       endpoint.onmessage?.(new MessageEvent("message", { data }));
 *     }
 *   },
 *   terminate() {},
 * };
 * const seen: FromWorker[][] = [];
 * endpoint.onmessage = (event) => seen.push(event.data);
 * endpoint.postMessage({ type: "init", module: "file:///app.ts", commands: {}, limits: {
 *   unread: { messages: 1, bytes: 1 },
 *   maxSendBytes: 1,
 * } });
 * assert.deepEqual(seen, [[{ type: "ready" }]]);
 * ```
 */
export interface WorkerEndpoint {
  /** Sends `init` first, then batches. */
  postMessage(message: InitMessage | ToWorker[]): void;
  /** Receives the worker's batches. */
  onmessage: ((event: MessageEvent<FromWorker[]>) => void) | null;
  /** An uncaught error in the worker; the pool must call `preventDefault()`. */
  onerror: ((event: ErrorEvent) => void) | null;
  /** A message from the worker could not be deserialized. */
  onmessageerror: ((event: MessageEvent) => void) | null;
  /** Ends the worker (it cannot stop one stuck in a CPU loop). */
  terminate(): void;
}

/**
 * The worker's end: its global scope, cut down to what `serveWorker` uses.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { FromWorker, WorkerScope } from "./worker_messages.ts";
 * const posted: FromWorker[][] = [];
 * const scope: WorkerScope = {
 *   onmessage: null,
 *   postMessage: (batch) => posted.push(batch),
 *   close() {},
 * };
 * scope.postMessage([{ type: "ready" }]);
 * assert.deepEqual(posted, [[{ type: "ready" }]]);
 * ```
 */
export interface WorkerScope {
  /** Sends a batch to the pool. */
  postMessage(batch: FromWorker[]): void;
  /** Receives `init`, then the pool's batches. */
  onmessage: ((event: MessageEvent<InitMessage | ToWorker[]>) => void) | null;
  /** Ends the worker. */
  close(): void;
}

/**
 * The messages between the main thread and an I/O thread ("shard"), as
 * unions tagged by `t`. Batches are arrays, as with the pool.
 *
 * @module
 */

import type { CallFailure, CallRecord, CommandCounters } from "./observe.ts";
import type { ResolvedServerOptions } from "./options.ts";
import type { Outcome } from "./run_handler.ts";

/** What a shard needs to serve: the server's options, minus functions. */
export type ShardOptions = Omit<ResolvedServerOptions, "onListen" | "onError" | "onCall">;

/** The first message a shard receives. */
export interface ShardInit {
  type: "init";
  /** URL of the module that defines the handler classes. */
  module: string;
  /** Command name → handler class name, every command. */
  commands: Record<string, string>;
  options: ShardOptions;
  /** The port to listen on (with SO_REUSEPORT); 0 for the first shard. */
  port: number;
  /** Whether the main thread has a worker pool for pooled calls. */
  pooled: boolean;
  /** How many shards share the pool. */
  shards: number;
  /** Whether the main thread wants every call record (it has `onCall`). */
  calls: boolean;
}

/** Main → shard (inside an array). */
export type ToShard =
  | { type: "send"; job: number; json: string }
  | { type: "done"; job: number; outcome: Outcome; cost?: number; async?: boolean }
  | { type: "close"; grace: number }
  /** Asks for the shard's per-command counters. */
  | { type: "stats"; request: number };

/** Shard → main: a lifecycle message alone, or an array of the rest. */
export type ShardStatus =
  | { type: "listening"; port: number }
  /** `name`: the error's class name, so `listen()` can throw the same class (AddrInUse...). */
  | { type: "failed"; message: string; name: string }
  | { type: "closed" };

/** Shard → main (inside an array). */
export type FromShard =
  | {
    type: "run";
    job: number;
    command: string;
    params: unknown;
    talk: boolean;
    owner?: string;
    group?: string;
  }
  | { type: "msg"; job: number; data: unknown; bytes: number }
  | { type: "cancel"; job: number; message: string; drop?: boolean }
  | { type: "abandon"; job: number; message: string }
  | { type: "stats"; connections: number; inFlight: number }
  | { type: "call"; record: CallRecord }
  | { type: "failure"; event: CallFailure }
  | { type: "counters"; request: number; rows: [string, CommandCounters][] };

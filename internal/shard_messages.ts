/**
 * The messages between the main thread and an I/O thread ("shard"), as
 * unions tagged by `t`. Batches are arrays, as with the pool.
 *
 * @module
 */

import type { ResolvedServerOptions } from "../server.ts";
import type { CallFailure, CallRecord, CommandCounters } from "./observe.ts";
import type { Outcome } from "./run_handler.ts";

/** What a shard needs to serve: the server's options, minus functions. */
export type ShardOptions = Omit<ResolvedServerOptions, "onListen" | "onError" | "onCall">;

/** The first message a shard receives. */
export interface ShardInit {
  t: "init";
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
  | { t: "send"; job: number; json: string }
  | { t: "done"; job: number; outcome: Outcome; cost?: number }
  | { t: "close"; grace: number }
  /** Asks for the shard's per-command counters. */
  | { t: "stats"; request: number };

/** Shard → main: a lifecycle message alone, or an array of the rest. */
export type ShardStatus =
  | { t: "listening"; port: number }
  | { t: "failed"; message: string }
  | { t: "closed" };

/** Shard → main (inside an array). */
export type FromShard =
  | { t: "run"; job: number; command: string; params: unknown; talk: boolean }
  | { t: "msg"; job: number; data: unknown; bytes: number }
  | { t: "cancel"; job: number; message: string }
  | { t: "abandon"; job: number; message: string }
  | { t: "stats"; connections: number; inFlight: number }
  | { t: "call"; record: CallRecord }
  | { t: "failure"; event: CallFailure }
  | { t: "counters"; request: number; rows: [string, CommandCounters][] };

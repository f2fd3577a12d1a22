/**
 * What the server tells its operator about calls: one record per finished
 * call for `onCall`, one event per failure for `onError` (logged by
 * default), and per-command counters for `server.stats()`. Pure data and
 * arithmetic; the connection feeds it.
 *
 * @module
 */

import type { JsonRpcId } from "../codec.ts";

/**
 * One finished call, as `onCall` receives it.
 *
 * @example Counting calls per command
 * ```ts
 * import type { CallRecord } from "./observe.ts";
 * const counts = new Map<string, number>();
 * const onCall = (call: CallRecord) => counts.set(call.command, (counts.get(call.command) ?? 0) + 1);
 * ```
 */
export interface CallRecord {
  /** The command called. */
  command: string;
  /**
   * The call's id, or `undefined` for a notification. A numeric id above
   * 2^53 is given as its exact digits in a string.
   */
  id: JsonRpcId | undefined;
  /** Whether it succeeded: a result, not an error (a handler's `error()` reply counts as an error). */
  ok: boolean;
  /** The JSON-RPC error code when it did not succeed. */
  code?: number;
  /** From the call's arrival to its outcome, in milliseconds. */
  durationMs: number;
  /** A number for the connection, unique within the server's thread. */
  connection: number;
  /** The client's address, if known. */
  remote?: { hostname: string; port: number };
}

/**
 * A call that failed on the server's side: the handler threw, crashed its
 * worker, or ran past the handler timeout. `onError` receives it; the
 * default logs it on stderr.
 */
export interface CallFailure extends CallRecord {
  /** What went wrong: the error's name, message and stack where known. */
  error: { name: string; message: string; stack?: string };
  /** Size of the call's params as received, in bytes. */
  paramsBytes: number;
  /**
   * A short random reference: in the log line, and in the client's error
   * message when `exposeErrors` is false, so the two can be matched.
   */
  reference: string;
}

/** Codes that mean the server failed the call (logged), not the client or the handler's `error()`. */
export const FAILURE_CODES: ReadonlySet<number> = new Set([-32603, -32004, -32002]);

/**
 * Latency buckets, log-linear (as in HdrHistogram), over durations in
 * microseconds: below 32 µs one bucket per microsecond; from 32 µs on, each
 * power-of-two range [2^k, 2^(k+1)) is split into 32 buckets of equal width
 * 2^(k-5). So a bucket is never wider than 1/32 of the durations in it, and
 * its middle is within 1/64 (1.6%) of any of them. Durations from 2^37 µs
 * (38 hours) on all go in the last bucket.
 */
const SUB_BUCKETS = 32;
const SUB_BITS = 5;
/** Powers of two above the linear part: up to 2^37 µs. */
const RANGES = 32;
/** How many buckets there are. */
export const BUCKETS: number = SUB_BUCKETS * (RANGES + 1);

/**
 * The bucket of a duration of `us` microseconds.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { bucketBounds, bucketOf } from "./observe.ts";
 * const [lo, hi] = bucketBounds(bucketOf(11_475_000));
 * assert.ok(lo <= 11_475_000 && 11_475_000 < hi && (hi - lo) / lo <= 1 / 32);
 * ```
 */
export function bucketOf(us: number): number {
  if (!(us >= SUB_BUCKETS)) return us > 0 ? Math.floor(us) : 0;
  if (!(us < 2 ** (RANGES + SUB_BITS))) return BUCKETS - 1;
  let k = Math.floor(Math.log2(us));
  // log2 of a float may land on the wrong side of a power of two.
  if (2 ** k > us) k--;
  else if (2 ** (k + 1) <= us) k++;
  const shift = k - SUB_BITS;
  const index = shift * SUB_BUCKETS + Math.floor(us / 2 ** shift);
  return Math.min(BUCKETS - 1, index);
}

/** The durations bucket `index` holds, in microseconds: [low, high). */
export function bucketBounds(index: number): [number, number] {
  const shift = Math.max(0, Math.floor(index / SUB_BUCKETS) - 1);
  const sub = index - shift * SUB_BUCKETS;
  return [sub * 2 ** shift, (sub + 1) * 2 ** shift];
}

/** Calls, errors and a latency histogram of one command. */
export interface CommandCounters {
  calls: number;
  errors: number;
  failures: number;
  totalMs: number;
  /** The shortest and longest call, ms: a percentile is never reported outside them. */
  minMs: number;
  maxMs: number;
  buckets: number[];
}

/**
 * Per-command figures, as `server.stats()` returns them.
 *
 * @example
 * ```ts
 * import type { CommandStats } from "./observe.ts";
 * const row: CommandStats = { calls: 10, errors: 1, failures: 0, meanMs: 0.1, p50Ms: 0.05, p99Ms: 0.5 };
 * ```
 */
export interface CommandStats {
  /** Calls finished. */
  calls: number;
  /** Calls that ended in an error of any kind (including the handler's `error()` replies). */
  errors: number;
  /** Calls the server failed: handler threw, worker crashed, timed out. */
  failures: number;
  /** Mean duration, ms. */
  meanMs: number;
  /**
   * Median duration, ms: the middle of its histogram bucket, so within 1/64
   * (1.6%) of the true median, or 0.5 µs below 32 µs; never outside the
   * shortest and longest call.
   */
  p50Ms: number;
  /** 99th percentile duration, ms (nearest rank), with the same precision as `p50Ms`. */
  p99Ms: number;
}

/** Per-command counters of one thread; mergeable across threads. */
export class StatsTable {
  readonly counters = new Map<string, CommandCounters>();

  /** Counts one finished call. */
  add(command: string, ok: boolean, failed: boolean, durationMs: number): void {
    let row = this.counters.get(command);
    if (!row) {
      row = {
        calls: 0,
        errors: 0,
        failures: 0,
        totalMs: 0,
        minMs: Infinity,
        maxMs: 0,
        buckets: new Array(BUCKETS).fill(0),
      };
      this.counters.set(command, row);
    }
    row.calls++;
    if (!ok) row.errors++;
    if (failed) row.failures++;
    row.totalMs += durationMs;
    if (durationMs < row.minMs) row.minMs = durationMs;
    if (durationMs > row.maxMs) row.maxMs = durationMs;
    row.buckets[bucketOf(durationMs * 1000)]++;
  }

  /** Adds another thread's counters into this table. */
  merge(other: Iterable<[string, CommandCounters]>): void {
    for (const [command, row] of other) {
      const mine = this.counters.get(command);
      if (!mine) {
        this.counters.set(command, { ...row, buckets: [...row.buckets] });
        continue;
      }
      mine.calls += row.calls;
      mine.errors += row.errors;
      mine.failures += row.failures;
      mine.totalMs += row.totalMs;
      mine.minMs = Math.min(mine.minMs, row.minMs);
      mine.maxMs = Math.max(mine.maxMs, row.maxMs);
      row.buckets.forEach((n, i) => mine.buckets[i] += n);
    }
  }

  /** The figures per command. */
  snapshot(): Record<string, CommandStats> {
    const out: Record<string, CommandStats> = {};
    for (const [command, row] of [...this.counters].sort(([a], [b]) => a < b ? -1 : 1)) {
      out[command] = {
        calls: row.calls,
        errors: row.errors,
        failures: row.failures,
        meanMs: row.calls ? row.totalMs / row.calls : 0,
        p50Ms: quantile(row, 0.5),
        p99Ms: quantile(row, 0.99),
      };
    }
    return out;
  }
}

/**
 * The `q` quantile (nearest rank) of a command's durations, ms: the middle
 * of the bucket that holds it, kept within the shortest and longest call.
 */
function quantile(row: CommandCounters, q: number): number {
  if (row.calls === 0) return 0;
  const rank = Math.max(1, Math.ceil(row.calls * q));
  let seen = 0;
  let index = row.buckets.length - 1;
  for (let i = 0; i < row.buckets.length; i++) {
    seen += row.buckets[i];
    if (seen >= rank) {
      index = i;
      break;
    }
  }
  const [low, high] = bucketBounds(index);
  const ms = (low + high) / 2 / 1000;
  return Math.min(row.maxMs, Math.max(row.minMs, ms));
}

/** A short random reference for a failure. */
export function failureReference(): string {
  return crypto.randomUUID().slice(0, 8);
}

/** Most failures the default `onError` logs per second; the rest are counted. */
export const LOG_PER_SECOND = 10;

let window = 0;
let logged = 0;
let skipped = 0;

/**
 * The default `onError`: one line on stderr per failure, with the stack if
 * there is one; at most {@linkcode LOG_PER_SECOND} a second, so a client
 * calling a failing command in a loop cannot make the server spend its time
 * writing logs (the lines left out are counted in the next one).
 */
export function logFailure(event: CallFailure, now: number = Date.now()): void {
  const second = Math.floor(now / 1000);
  if (second !== window) {
    window = second;
    logged = 0;
  }
  if (++logged > LOG_PER_SECOND) {
    skipped++;
    return;
  }
  const where = event.id === undefined ? "notification" : `call ${JSON.stringify(event.id)}`;
  const detail = event.error.stack ?? `${event.error.name}: ${event.error.message}`;
  const more = skipped > 0 ? ` (${skipped} more failures not logged before this one)` : "";
  skipped = 0;
  console.error(
    `tcpy: ${where} to "${event.command}" failed (${event.code}, ` +
      `${event.durationMs.toFixed(1)} ms, ref ${event.reference})${more}: ${detail}`,
  );
}

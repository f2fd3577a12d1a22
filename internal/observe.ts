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

/** Latency buckets: bucket i counts calls that took less than 2^i µs (the last, the rest). */
const BUCKETS = 32;

/** Calls, errors and a latency histogram of one command. */
export interface CommandCounters {
  calls: number;
  errors: number;
  failures: number;
  totalMs: number;
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
  /** Median duration (upper bound of its power-of-two bucket), ms. */
  p50Ms: number;
  /** 99th percentile duration (same precision), ms. */
  p99Ms: number;
}

/** Per-command counters of one thread; mergeable across threads. */
export class StatsTable {
  readonly counters = new Map<string, CommandCounters>();

  /** Counts one finished call. */
  add(command: string, ok: boolean, failed: boolean, durationMs: number): void {
    let row = this.counters.get(command);
    if (!row) {
      row = { calls: 0, errors: 0, failures: 0, totalMs: 0, buckets: new Array(BUCKETS).fill(0) };
      this.counters.set(command, row);
    }
    row.calls++;
    if (!ok) row.errors++;
    if (failed) row.failures++;
    row.totalMs += durationMs;
    const us = durationMs * 1000;
    const bucket = us < 1 ? 0 : Math.min(BUCKETS - 1, Math.ceil(Math.log2(us + 1)));
    row.buckets[bucket]++;
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
        p50Ms: quantile(row.buckets, row.calls, 0.5),
        p99Ms: quantile(row.buckets, row.calls, 0.99),
      };
    }
    return out;
  }
}

function quantile(buckets: number[], total: number, q: number): number {
  if (total === 0) return 0;
  const rank = Math.ceil(total * q);
  let seen = 0;
  for (let i = 0; i < buckets.length; i++) {
    seen += buckets[i];
    if (seen >= rank) return 2 ** i / 1000;
  }
  return 2 ** (buckets.length - 1) / 1000;
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

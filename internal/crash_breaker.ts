/**
 * The pool's circuit breaker: a command that keeps crashing workers is
 * refused for a while, so one bad command cannot keep every worker
 * restarting. Pure bookkeeping over times the caller passes in.
 *
 * @module
 */

import { ErrorCode, type WireError } from "../errors.ts";

/** A command that crashes this many workers within {@linkcode STRIKE_WINDOW_MS}... */
export const STRIKES = 3;
/** ...in ms... */
export const STRIKE_WINDOW_MS = 10_000;
/** ...is refused for this long, in ms (doubling while it keeps doing it, up to a minute). */
export const COOL_DOWN_MS = 5_000;
/** The longest refusal, in ms. */
export const MAX_COOL_DOWN_MS = 60_000;

interface Record {
  /** When it crashed a worker, within the window. */
  times: number[];
  /** Refused until then (ms since epoch); 0 if never. */
  until: number;
  /** The last refusal's length. */
  coolDown: number;
}

/**
 * Crashes per command, and which commands are refused.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { CrashBreaker, STRIKES } from "./crash_breaker.ts";
 * const breaker = new CrashBreaker();
 * for (let i = 0; i < STRIKES; i++) breaker.strike("boom", 1_000 + i);
 * assert.match(breaker.refusal("boom", 2_000)!.message, /^Command "boom" is refused for 5 s/);
 * assert.equal(breaker.refusal("add", 2_000), undefined);
 * ```
 */
export class CrashBreaker {
  readonly #records = new Map<string, Record>();

  /** Whether any command ever crashed a worker (else nothing can be refused). */
  get armed(): boolean {
    return this.#records.size > 0;
  }

  /** Counts a crash of a worker running `command` at `now` (ms). */
  strike(command: string, now: number): void {
    let record = this.#records.get(command);
    if (!record) this.#records.set(command, record = { times: [], until: 0, coolDown: 0 });
    record.times = record.times.filter((t) => now - t < STRIKE_WINDOW_MS);
    record.times.push(now);
    if (record.times.length < STRIKES) return;
    // Tripping again soon after a refusal ended doubles the next one.
    record.coolDown = record.until > 0 && now - record.until < STRIKE_WINDOW_MS
      ? Math.min(MAX_COOL_DOWN_MS, record.coolDown * 2)
      : COOL_DOWN_MS;
    record.until = now + record.coolDown;
    record.times = [];
  }

  /** The error for a call to `command` at `now` while it is refused, else `undefined`. */
  refusal(command: string, now: number): WireError | undefined {
    const record = this.#records.get(command);
    if (!record || record.until === 0) return undefined;
    const left = record.until - now;
    if (left <= 0) return undefined;
    return {
      code: ErrorCode.WORKER_CRASHED,
      message: `Command "${command}" is refused for ${Math.ceil(left / 1000)} s: ` +
        `it crashed ${STRIKES} workers within ${STRIKE_WINDOW_MS / 1000} s`,
    };
  }
}

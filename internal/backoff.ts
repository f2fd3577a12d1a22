/**
 * Exponential backoff with full jitter: the delay before retry `attempt`
 * (0-based) is a random time up to `min(max, base * 2^attempt)`, so many
 * clients that lost the same server do not come back in step.
 *
 * @module
 */

/**
 * How a reconnecting client waits between attempts.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { BackoffOptions } from "./backoff.ts";
 * const backoff: BackoffOptions = { retries: 10, baseDelay: 50, maxDelay: 2_000 };
 * assert.equal(backoff.retries, 10);
 * ```
 */
export interface BackoffOptions {
  /**
   * Attempts after the first failure before giving up.
   *
   * @default {5}
   */
  retries?: number;
  /**
   * Upper bound of the first delay, in milliseconds.
   *
   * @default {100}
   */
  baseDelay?: number;
  /**
   * Upper bound of any delay, in milliseconds.
   *
   * @default {5000}
   */
  maxDelay?: number;
}

/** The delay before retry `attempt`, in milliseconds. */
export function backoffDelay(
  attempt: number,
  options: BackoffOptions = {},
  random: () => number = Math.random,
): number {
  const base = options.baseDelay ?? 100;
  const max = options.maxDelay ?? 5000;
  return Math.floor(random() * Math.min(max, base * 2 ** attempt));
}

/** Resolves after `ms`, or rejects with the signal's reason when it aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

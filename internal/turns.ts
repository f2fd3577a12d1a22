/**
 * How long one connection may dispatch before it gives way to the others
 * of its thread. A read of a socket that already holds data completes
 * without turning the event loop, so a client that keeps its socket full
 * would otherwise hold the thread: it must pause on something that only
 * the loop's next poll can complete ({@linkcode yieldTurn}). A pause costs
 * ~30 µs, so the turn adapts: short while others run during the pauses,
 * doubling while nobody does (a client alone keeps its throughput).
 *
 * @module
 */

/** Shortest turn, in µs of dispatch: what another connection may wait behind one flooder. */
export const TURN_MIN_US = 500;
/** Longest turn, in µs, reached while a connection is alone. */
export const TURN_MAX_US = 16_000;

/**
 * The next turn after a pause: back to the shortest if another connection
 * ran during it, else twice as long (at most {@linkcode TURN_MAX_US}).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { TURN_MAX_US, TURN_MIN_US, turnAfterYield } from "./turns.ts";
 * assert.equal(turnAfterYield(TURN_MIN_US, false), 2 * TURN_MIN_US);
 * assert.equal(turnAfterYield(TURN_MAX_US, false), TURN_MAX_US);
 * assert.equal(turnAfterYield(TURN_MAX_US, true), TURN_MIN_US);
 * ```
 */
export function turnAfterYield(turn: number, othersRan: boolean): number {
  return othersRan ? TURN_MIN_US : Math.min(turn * 2, TURN_MAX_US);
}

const ONE_BYTE = new Uint8Array(1);

/**
 * Resolves after the event loop has polled its sockets. What it waits for
 * is a digest of one byte, which Deno computes on another thread: an
 * operation that cannot complete before the next poll, and takes ~30 µs.
 * Measured against the alternatives (a flood on one connection, a
 * bystander on another, one thread): a `setTimeout(0)` also lets the
 * bystander through but costs 1-2 ms each (a lone flood kept 60% of its
 * rate with a 2 ms turn); `setImmediate` and a `MessageChannel` message
 * run before the poll and let it through no better than no pause at all.
 */
export function yieldTurn(): Promise<void> {
  return crypto.subtle.digest("SHA-1", ONE_BYTE).then(() => {});
}

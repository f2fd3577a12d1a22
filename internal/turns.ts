/**
 * How long one connection may dispatch before it gives way to the others
 * of its thread. A read of a socket that already holds data completes
 * without turning the event loop, so a client that keeps its socket full
 * would otherwise hold the thread; only a macrotask (a timer) lets the loop
 * poll the other sockets, and a timer costs about a millisecond when nobody
 * else is waiting. So the turn adapts: short while others run during the
 * pauses, doubling while nobody does (a client alone keeps its throughput).
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

/** Resolves after the event loop has polled its sockets and run its due timers. */
export function yieldTurn(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

/**
 * Which worker gets the next call: pure rules over the workers' loads,
 * table-tested. The pool keeps the state (loads, the rotating start, the
 * worker calls of this tick stick to).
 *
 * @module
 */

/** What the balancer knows of a worker. */
export interface WorkerLoad {
  /** Calls running or queued there, including abandoned ones still running. */
  readonly load: number;
  /** Whether it has loaded the handlers. */
  readonly ready: boolean;
  /** Whether it is gone (crashed, written off, closed). */
  readonly dead: boolean;
}

/** Most calls of one tick sent to the same worker before spreading to the next. */
export const STICKY_BATCH = 16;

/**
 * The least busy worker that has loaded; else any live one (its calls wait
 * for it); `undefined` when all are dead. The search starts at `start`
 * (modulo the count) and a tie keeps the first found, so a caller that
 * advances `start` on every pick rotates ties: calls one at a time visit
 * every worker (module state differs per worker, and tests should see that).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { pick } from "./balancer.ts";
 * const idle = { load: 0, ready: true, dead: false };
 * const busy = { load: 3, ready: true, dead: false };
 * assert.equal(pick([busy, idle, idle], 0), 1);
 * assert.equal(pick([busy, idle, idle], 2), 2);
 * assert.equal(pick([{ ...idle, dead: true }], 0), undefined);
 * ```
 */
export function pick(workers: readonly WorkerLoad[], start: number): number | undefined {
  let best: number | undefined;
  const n = workers.length;
  const from = start % n;
  for (let i = 0; i < n; i++) {
    const index = (from + i) % n;
    const worker = workers[index];
    if (worker.dead) continue;
    if (best === undefined) best = index;
    else {
      const other = workers[best];
      if (worker.ready && (!other.ready || worker.load < other.load)) best = index;
    }
  }
  return best;
}

/**
 * Whether a call may go to `sticky`, the worker this tick's calls went to,
 * rather than to a fresh {@linkcode pick}: calls queued in the same tick stick
 * to one worker (fewer, bigger `postMessage` batches) while it is up, holds
 * fewer than {@linkcode STICKY_BATCH} of them, and is not that much busier
 * than the least busy worker.
 *
 * @param queued Calls and messages queued for `sticky` in this tick.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { STICKY_BATCH, sticks } from "./balancer.ts";
 * const idle = { load: 0, ready: true, dead: false };
 * const loaded = { load: STICKY_BATCH + 1, ready: true, dead: false };
 * assert.equal(sticks(idle, 3, [idle, idle]), true);
 * assert.equal(sticks(idle, STICKY_BATCH, [idle, idle]), false);
 * assert.equal(sticks(loaded, 0, [loaded, idle]), false);
 * ```
 */
export function sticks(
  sticky: WorkerLoad,
  queued: number,
  workers: readonly WorkerLoad[],
): boolean {
  if (sticky.dead || !sticky.ready || queued >= STICKY_BATCH) return false;
  return sticky.load <= leastLoad(workers) + STICKY_BATCH;
}

/** The load of the least busy ready worker (Infinity if none is). */
function leastLoad(workers: readonly WorkerLoad[]): number {
  let least = Infinity;
  for (const worker of workers) {
    if (!worker.dead && worker.ready) least = Math.min(least, worker.load);
  }
  return least;
}

/**
 * Which worker gets the next call, and whether any may take it now: pure
 * rules over what each worker has been given and not yet started,
 * table-tested. The pool keeps the state; calls no worker has room for
 * wait in the pool's fair queue (`fair_queue.ts`), not in a worker.
 *
 * A worker's window is counted in expected microseconds of work, from the
 * costs the workers report per command: a worker may hold many cheap calls
 * (one `postMessage` carries them all) but only one call that is expensive
 * or not yet measured. So a burst of heavy calls spreads over the workers at
 * once, and a call never sits behind another in a busy worker while some
 * other worker is idle.
 *
 * @module
 */

/** What the balancer knows of a worker. */
export interface WorkerLoad {
  /** Calls given to it whose synchronous part has not finished. */
  readonly queued: number;
  /** Their expected cost, in µs. */
  readonly queuedUs: number;
  /** Calls it holds in all (running async ones and conversations too). */
  readonly load: number;
  /** Whether it has loaded the handlers. */
  readonly ready: boolean;
  /** Whether it is gone (crashed, written off, closed). */
  readonly dead: boolean;
}

/**
 * Expected µs of not-yet-finished synchronous work a worker may hold (the
 * first call always fits): a call of up to half of it may wait behind one
 * running, which hides the round trip between two calls; a longer one
 * waits in the pool's queue for a worker with nothing to do.
 */
export const WINDOW_US = 5_000;
/** Most not-yet-started calls a worker may hold, however cheap. */
export const WINDOW_CALLS = 32;
/** Calls of one tick stay on one worker (one `postMessage`) while its queue is this cheap, in µs. */
export const STICKY_US = 250;
/** The cost assumed for a command before any run of it was measured: one per worker. */
export const UNKNOWN_COST_US = WINDOW_US;

/**
 * Whether `worker` may be given a call expected to cost `cost` µs now: a
 * worker with nothing queued takes any call; otherwise the call must fit
 * its window.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { hasRoom, WINDOW_US } from "./balancer.ts";
 * const idle = { queued: 0, queuedUs: 0, load: 0, ready: true, dead: false };
 * assert.equal(hasRoom(idle, 10 * WINDOW_US), true);
 * assert.equal(hasRoom({ ...idle, queued: 1, queuedUs: WINDOW_US }, 5), false);
 * assert.equal(hasRoom({ ...idle, queued: 1, queuedUs: 10 }, 5), true);
 * ```
 */
export function hasRoom(worker: WorkerLoad, cost: number): boolean {
  if (worker.dead || !worker.ready) return false;
  if (worker.queued === 0) return true;
  return worker.queued < WINDOW_CALLS && worker.queuedUs + cost <= WINDOW_US;
}

/**
 * The worker with room for a call of `cost` µs that has the least queued
 * work (then the fewest calls); `undefined` if none has room. The search
 * starts at `start` (modulo the count) and a tie keeps the first found, so
 * a caller that advances `start` on every pick rotates ties: calls one at a
 * time visit every worker (module state differs per worker, and tests
 * should see that).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { pick, WINDOW_US } from "./balancer.ts";
 * const idle = { queued: 0, queuedUs: 0, load: 0, ready: true, dead: false };
 * const busy = { queued: 1, queuedUs: WINDOW_US, load: 1, ready: true, dead: false };
 * assert.equal(pick([busy, idle, idle], 0, WINDOW_US), 1);
 * assert.equal(pick([busy, idle, idle], 2, WINDOW_US), 2);
 * assert.equal(pick([busy, busy], 0, WINDOW_US), undefined);
 * ```
 */
export function pick(
  workers: readonly WorkerLoad[],
  start: number,
  cost: number,
): number | undefined {
  let best: number | undefined;
  const n = workers.length;
  const from = n === 0 ? 0 : start % n;
  for (let i = 0; i < n; i++) {
    const index = (from + i) % n;
    const worker = workers[index];
    if (!hasRoom(worker, cost)) continue;
    if (best === undefined) best = index;
    else {
      const other = workers[best];
      if (
        worker.queuedUs < other.queuedUs ||
        (worker.queuedUs === other.queuedUs && worker.load < other.load)
      ) best = index;
    }
  }
  return best;
}

/**
 * Whether a call of `cost` µs may go to `sticky`, the worker this tick's
 * calls went to, rather than to a fresh {@linkcode pick}: cheap calls of one
 * tick share one `postMessage` while that worker's queue stays cheap.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { sticks, STICKY_US } from "./balancer.ts";
 * const cheap = { queued: 3, queuedUs: 30, load: 3, ready: true, dead: false };
 * assert.equal(sticks(cheap, 10), true);
 * assert.equal(sticks(cheap, STICKY_US), false);
 * ```
 */
export function sticks(sticky: WorkerLoad, cost: number): boolean {
  return hasRoom(sticky, cost) && sticky.queuedUs + cost <= STICKY_US;
}

/** Whether every worker is dead (none will ever take a call until replaced). */
export function allDead(workers: readonly WorkerLoad[]): boolean {
  return workers.every((worker) => worker.dead);
}

/**
 * The next expected cost of a command after a run that cost `sample` µs:
 * up at once, down slowly. A command whose cost depends on its params is
 * taken at its recent worst, so cheap runs do not open a window that one
 * expensive run then blocks.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { nextCost } from "./balancer.ts";
 * assert.equal(nextCost(10, 500), 500);
 * assert.equal(nextCost(500, 10), 500 - (500 - 10) / 8);
 * ```
 */
export function nextCost(expected: number, sample: number): number {
  return sample >= expected ? sample : expected - (expected - sample) / 8;
}

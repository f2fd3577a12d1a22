import assert from "node:assert/strict";
import { pick, sticks, STICKY_BATCH, type WorkerLoad } from "./balancer.ts";

/** A worker: `3` is a ready worker with 3 calls, `"3s"` one still starting, `"x"` a dead one. */
function w(spec: number | string): WorkerLoad {
  if (spec === "x") return { load: 0, ready: false, dead: true };
  if (typeof spec === "string") return { load: parseInt(spec), ready: false, dead: false };
  return { load: spec, ready: true, dead: false };
}

Deno.test("pick takes the least loaded ready worker, the first found on a tie, searching from start", () => {
  const table: [workers: (number | string)[], start: number, picked: number | undefined][] = [
    [[0, 0, 0], 0, 0],
    [[0, 0, 0], 1, 1],
    [[0, 0, 0], 2, 2],
    [[0, 0, 0], 3, 0], // start wraps around
    [[0, 0, 0], 7, 1],
    [[2, 1, 3], 0, 1],
    [[2, 1, 3], 2, 1],
    [[1, 1, 0], 0, 2],
    [[1, 0, 0], 0, 1],
    [[1, 0, 0], 2, 2],
    [["0s", 5], 0, 1], // a ready worker beats an idle one that is still starting
    [[5, "0s"], 1, 0],
    [["x", 4], 0, 1], // dead workers are skipped
    [[0, "x", 3], 1, 0],
    [["3s", "1s"], 0, 0], // none ready: any live one (its calls wait for it)
    [["3s", "1s"], 1, 1],
    [["x", "2s"], 0, 1],
    [["x", "x"], 0, undefined],
    [[], 0, undefined],
  ];
  for (const [workers, start, picked] of table) {
    assert.equal(pick(workers.map(w), start), picked, `pick(${JSON.stringify(workers)}, ${start})`);
  }
});

Deno.test("sticks keeps a tick's calls on one up worker until it holds STICKY_BATCH or runs far ahead", () => {
  const S = STICKY_BATCH;
  const table: [
    sticky: number | string,
    queued: number,
    others: (number | string)[],
    kept: boolean,
  ][] = [
    [0, 0, [0], true],
    [0, S - 1, [0], true],
    [0, S, [0], false], // a full batch: spread to the next
    [S, 0, [0], true], // not much busier than the least busy
    [S + 1, 0, [0], false],
    [S + 1, 0, [1], true],
    [S + 1, 0, ["0s", "x"], true], // only ready workers count as least busy
    ["0s", 0, [0], false], // no longer up
    ["x", 0, [0], false],
  ];
  for (const [sticky, queued, others, kept] of table) {
    const worker = w(sticky);
    assert.equal(
      sticks(worker, queued, [worker, ...others.map(w)]),
      kept,
      `sticks(${sticky}, ${queued}, ${JSON.stringify(others)})`,
    );
  }
});

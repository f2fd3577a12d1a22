import assert from "node:assert/strict";
import {
  hasRoom,
  nextCost,
  pick,
  sticks,
  STICKY_US,
  WINDOW_CALLS,
  WINDOW_US,
  type WorkerLoad,
} from "./balancer.ts";

/**
 * A worker: `[queued, queuedUs]` a ready worker with that much not yet started
 * (load = queued), `"s"` one still starting, `"x"` a dead one.
 */
function w(spec: [number, number] | string, load?: number): WorkerLoad {
  if (spec === "x") return { queued: 0, queuedUs: 0, load: 0, ready: false, dead: true };
  if (typeof spec === "string") {
    return { queued: 0, queuedUs: 0, load: 0, ready: false, dead: false };
  }
  return { queued: spec[0], queuedUs: spec[1], load: load ?? spec[0], ready: true, dead: false };
}

Deno.test("hasRoom: an idle worker takes any call, a busy one only what fits its window", () => {
  const table: [WorkerLoad, number, boolean][] = [
    [w([0, 0]), 1e9, true],
    [w([1, WINDOW_US]), 1, false], // one expensive call fills it
    [w([1, 10]), WINDOW_US - 10, true],
    [w([1, 10]), WINDOW_US - 9, false],
    [w([WINDOW_CALLS, WINDOW_CALLS]), 1, false], // cheap calls: capped by count
    [w([WINDOW_CALLS - 1, WINDOW_CALLS - 1]), 1, true],
    [w("s"), 1, false], // not loaded yet: calls wait in the pool's queue
    [w("x"), 1, false],
  ];
  for (const [worker, cost, room] of table) {
    assert.equal(hasRoom(worker, cost), room, `hasRoom(${JSON.stringify(worker)}, ${cost})`);
  }
});

Deno.test("pick takes the worker with the least queued work, then fewest calls, rotating ties", () => {
  const idle = w([0, 0]);
  const table: [WorkerLoad[], number, number, number | undefined][] = [
    [[idle, idle, idle], 0, 5, 0],
    [[idle, idle, idle], 1, 5, 1],
    [[idle, idle, idle], 5, 5, 2], // start wraps around
    [[w([1, 300]), w([1, 100]), w([1, 200])], 0, 5, 1],
    [[w([0, 0], 3), w([0, 0], 1), w([0, 0], 2)], 0, 5, 1], // same queue: fewest calls
    [[w([1, WINDOW_US]), idle], 0, WINDOW_US, 1], // a heavy call goes to the idle worker
    [[w([1, WINDOW_US]), w([1, WINDOW_US])], 0, WINDOW_US, undefined], // none has room: wait
    [[w("s"), w([1, 5])], 0, 5, 1],
    [[w("x"), w("s")], 0, 5, undefined],
    [[], 0, 5, undefined],
  ];
  for (const [workers, start, cost, picked] of table) {
    assert.equal(
      pick(workers, start, cost),
      picked,
      `pick(${JSON.stringify(workers)}, ${start}, ${cost})`,
    );
  }
});

Deno.test("a burst of expensive calls spreads one per worker; cheap calls share a worker", () => {
  // Simulates the pool's placing of four unmeasured calls, then 16 cheap ones.
  const workers = [0, 1, 2, 3].map(() => ({
    queued: 0,
    queuedUs: 0,
    load: 0,
    ready: true,
    dead: false,
  }));
  const given: number[] = [];
  for (let i = 0; i < 6; i++) {
    const index = pick(workers, i, WINDOW_US);
    if (index === undefined) {
      given.push(-1);
      continue;
    }
    workers[index].queued++;
    workers[index].queuedUs += WINDOW_US;
    given.push(index);
  }
  assert.deepEqual(given, [0, 1, 2, 3, -1, -1]);
  const cheap = { queued: 0, queuedUs: 0, load: 0, ready: true, dead: false };
  let stuck = 0;
  while (sticks(cheap, 5)) {
    cheap.queued++;
    cheap.queuedUs += 5;
    stuck++;
  }
  assert.equal(stuck, Math.min(WINDOW_CALLS, STICKY_US / 5));
});

Deno.test("nextCost rises at once and falls slowly", () => {
  assert.equal(nextCost(0, 40), 40);
  assert.equal(nextCost(40, 400_000), 400_000);
  let cost = 400_000;
  for (let i = 0; i < 8; i++) cost = nextCost(cost, 10);
  assert.ok(cost > 400_000 / 4, `fell to ${cost} after 8 cheap runs`);
  for (let i = 0; i < 200; i++) cost = nextCost(cost, 10);
  assert.ok(cost < 20, `still ${cost} after 208 cheap runs`);
});

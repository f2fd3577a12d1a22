import assert from "node:assert/strict";
import {
  CHEAP_US,
  DEMOTE_US,
  OUTLIERS,
  Placement,
  SAMPLES,
  SLOW_RUNS,
  TIME_EVERY,
  TIME_WATCHFUL_EVERY,
} from "./placement.ts";

Deno.test("Placement moves a command inline after SAMPLES cheap synchronous pool runs", () => {
  const placement = new Placement();
  for (let i = 0; i < SAMPLES - 1; i++) placement.pooled("add", 3);
  assert.equal(placement.inline("add"), false);
  placement.pooled("add", CHEAP_US);
  assert.equal(placement.inline("add"), true);
  assert.equal(placement.inline("other"), false);
});

Deno.test("Placement keeps async or slow commands in the pool", () => {
  const placement = new Placement();
  for (let i = 0; i < SAMPLES * 4; i++) {
    placement.pooled("fetch", -1);
    placement.pooled("cpu", i % 4 === 0 ? CHEAP_US + 1 : 1);
  }
  assert.equal(placement.inline("fetch"), false);
  assert.equal(placement.inline("cpu"), false);
});

Deno.test("Placement tolerates a few slow samples (a pre-empted thread)", () => {
  const placement = new Placement();
  for (let i = 0; i < SAMPLES; i++) placement.pooled("add", i < OUTLIERS ? 5_000 : 2);
  assert.equal(placement.inline("add"), true);
});

Deno.test("Placement sends back a command whose inline runs are often slow, not one that hiccups", () => {
  const placement = new Placement();
  for (let i = 0; i < SAMPLES; i++) placement.pooled("get", 1);
  for (let i = 0; i < SLOW_RUNS; i++) placement.ran("get", DEMOTE_US * 10);
  assert.equal(placement.inline("get"), true, "a few pauses are tolerated");
  placement.ran("get", DEMOTE_US + 1);
  assert.equal(placement.inline("get"), false);
});

Deno.test("Placement sends a command back on a slow or async inline run, and waits longer next time", () => {
  const placement = new Placement();
  for (let i = 0; i < SAMPLES; i++) placement.pooled("get", 1);
  placement.ran("get", 5);
  assert.equal(placement.inline("get"), true);
  placement.ran("get", -1);
  assert.equal(placement.inline("get"), false);
  for (let i = 0; i < SAMPLES; i++) placement.pooled("get", 1);
  assert.equal(placement.inline("get"), false, "a demoted command needs twice the samples");
  for (let i = 0; i < SAMPLES; i++) placement.pooled("get", 1);
  assert.equal(placement.inline("get"), true);
  placement.ran("get", -1);
  assert.equal(placement.inline("get"), false);
});

/** A placement whose `command` has just moved inline. */
function promoted(command: string, random?: () => number): Placement {
  const placement = new Placement(random);
  for (let i = 0; i < SAMPLES; i++) placement.pooled(command, 5);
  assert.equal(placement.inline(command), true);
  return placement;
}

Deno.test("Placement.next: watchful timing after a move and after a slow run, sparse when calm", () => {
  assert.equal(new Placement().next("get"), "pool", "a command it never saw runs in the pool");
  /** Indexes of the timed runs among `count`, each timed run noted with `cost`. */
  const timedRuns = (placement: Placement, count: number, cost = 5) =>
    Array.from({ length: count }, (_, i) => {
      const where = placement.next("get");
      assert.notEqual(where, "pool", "an inline command stays here between timings");
      if (where === "timed") placement.ran("get", cost);
      return where === "timed" ? i : -1;
    }).filter((i) => i >= 0);
  // The shortest gaps (random 0): every run is timed.
  assert.equal(timedRuns(promoted("get", () => 0), 10).length, 10);
  // The longest gaps: 2 * every - 2 untimed runs between timed ones. Watchful
  // for SAMPLES timed runs after the move (the first run timed), then calm.
  const sparse = promoted("get", () => 0.9999);
  const watchful = 2 * TIME_WATCHFUL_EVERY - 1;
  const runs = timedRuns(sparse, SAMPLES * watchful + 2 * (2 * TIME_EVERY - 1));
  assert.deepEqual(runs.slice(0, 3), [0, watchful, 2 * watchful]);
  const calm = runs.slice(SAMPLES);
  assert.deepEqual(calm.map((i) => i - calm[0]), [0, 2 * TIME_EVERY - 1]);
  // A timed run over CHEAP_US makes it watchful again.
  sparse.ran("get", CHEAP_US + 1);
  const after = timedRuns(sparse, 3 * watchful);
  assert.equal(after[1] - after[0], watchful);
  // With Math.random: SAMPLES watchful timings, then one in TIME_EVERY
  // (16,000 runs: ~527 timed expected, sd ~13).
  const placement = promoted("get");
  const timed = timedRuns(placement, 16_000).length;
  assert.ok(timed > 427 && timed < 627, `${timed} of 16000 timed`);
  // Each command keeps its own count.
  const two = promoted("a", () => 0.9999);
  for (let i = 0; i < SAMPLES; i++) two.pooled("b", 5);
  assert.equal(two.next("a"), "timed");
  assert.equal(two.next("b"), "timed");
  assert.equal(two.next("a"), "here");
});

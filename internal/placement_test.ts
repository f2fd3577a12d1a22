import assert from "node:assert/strict";
import {
  CHEAP_US,
  DEMOTE_US,
  OUTLIERS,
  Placement,
  SAMPLES,
  SLOW_RUNS,
  TIME_EVERY,
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

Deno.test("Placement times the first inline run, then one in TIME_EVERY at random gaps", () => {
  assert.equal(new Placement().timeNext("get"), false, "a command it never saw is not timed");
  // The shortest gaps (random 0): every run; the longest: 2 * TIME_EVERY - 2 untimed between.
  const always = promoted("get", () => 0);
  assert.deepEqual(Array.from({ length: 4 }, () => always.timeNext("get")), [
    true,
    true,
    true,
    true,
  ]);
  const sparse = promoted("get", () => 0.9999);
  const runs = Array.from({ length: 2 * (2 * TIME_EVERY - 1) }, () => sparse.timeNext("get"));
  assert.deepEqual(
    runs.flatMap((timed, i) => timed ? [i] : []),
    [0, 2 * TIME_EVERY - 1],
  );
  // With Math.random: one in TIME_EVERY on average (16,000 runs: 2,000 expected, sd ~25).
  const placement = promoted("get");
  let timed = 0;
  for (let i = 0; i < 16_000; i++) if (placement.timeNext("get")) timed++;
  assert.ok(timed > 1_700 && timed < 2_300, `${timed} of 16000 timed`);
  // Each command keeps its own count.
  const two = promoted("a", () => 0.9999);
  for (let i = 0; i < SAMPLES; i++) two.pooled("b", 5);
  assert.equal(two.timeNext("a"), true);
  assert.equal(two.timeNext("b"), true);
  assert.equal(two.timeNext("a"), false);
});

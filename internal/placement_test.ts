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

Deno.test("Placement times one inline run in TIME_EVERY", () => {
  const placement = new Placement();
  const timed = Array.from({ length: TIME_EVERY * 4 }, () => placement.timeNext());
  assert.equal(timed.filter(Boolean).length, 4);
  assert.deepEqual(timed.slice(0, TIME_EVERY), [...Array(TIME_EVERY - 1).fill(false), true]);
});

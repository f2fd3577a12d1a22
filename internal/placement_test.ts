import assert from "node:assert/strict";
import {
  BAN_US,
  CHEAP_US,
  DEMOTE_US,
  MAX_DEMOTIONS,
  Placement,
  SAMPLES,
  TIME_EVERY,
  TIME_WATCHFUL_EVERY,
} from "./placement.ts";

/** Whether calls to `command` run where they arrive now. */
function inline(placement: Placement, command: string): boolean {
  return placement.next(command) !== "pool";
}

/** Feeds `n` cheap pool runs of `command`. */
function warm(placement: Placement, command: string, n = SAMPLES, cost = 3): void {
  for (let i = 0; i < n; i++) placement.pooled(command, cost);
}

Deno.test("Placement moves a command inline after SAMPLES cheap pool runs, async ones too", () => {
  const placement = new Placement();
  warm(placement, "add", SAMPLES - 1);
  assert.equal(inline(placement, "add"), false);
  placement.pooled("add", CHEAP_US);
  assert.equal(inline(placement, "add"), true);
  assert.equal(inline(placement, "other"), false);
  // An async handler is judged by its synchronous slice: one that awaits I/O moves too.
  warm(placement, "fetch", SAMPLES, 8);
  assert.equal(inline(placement, "fetch"), true);
});

Deno.test("Placement keeps commands that are often slow in the pool, and tolerates a hiccup", () => {
  const placement = new Placement();
  for (let i = 0; i < SAMPLES * 4; i++) placement.pooled("cpu", i % 4 === 0 ? CHEAP_US + 1 : 1);
  assert.equal(inline(placement, "cpu"), false);
  for (let i = 0; i < SAMPLES; i++) placement.pooled("add", i < SAMPLES / 8 ? 5_000 : 2);
  assert.equal(inline(placement, "add"), true);
});

Deno.test("Placement sends a command back on its first slow timed run, and doubles the samples", () => {
  const placement = new Placement();
  warm(placement, "get");
  placement.ran("get", DEMOTE_US); // not over
  assert.equal(inline(placement, "get"), true);
  placement.ran("get", DEMOTE_US + 1);
  assert.equal(inline(placement, "get"), false);
  warm(placement, "get", 2 * SAMPLES - 1);
  assert.equal(inline(placement, "get"), false, "moved back before twice the samples");
  warm(placement, "get", 1);
  assert.equal(inline(placement, "get"), true);
});

Deno.test("Placement: a command never returns inline after MAX_DEMOTIONS, or after one run of BAN_US", () => {
  const placement = new Placement();
  for (let i = 0; i < MAX_DEMOTIONS; i++) {
    warm(placement, "flaky", SAMPLES * 2 ** i);
    assert.equal(inline(placement, "flaky"), true, `not moved after demotion ${i}`);
    placement.ran("flaky", DEMOTE_US * 2);
  }
  warm(placement, "flaky", SAMPLES * 2 ** 12);
  assert.equal(inline(placement, "flaky"), false);
  warm(placement, "vary");
  placement.ran("vary", BAN_US);
  warm(placement, "vary", SAMPLES * 2 ** 12);
  assert.equal(inline(placement, "vary"), false);
});

Deno.test("Placement.slowRead: the command alone in a slow read is banned; several are only sent back", () => {
  const placement = new Placement();
  warm(placement, "vary");
  warm(placement, "add");
  // One read ran vary (heavy) and add: both back to the pool, neither banned.
  placement.slowRead(["add", "vary", "add"], 400_000);
  assert.equal(inline(placement, "vary"), false);
  assert.equal(inline(placement, "add"), false);
  warm(placement, "vary", 2 * SAMPLES);
  warm(placement, "add", 2 * SAMPLES);
  assert.equal(inline(placement, "vary"), true);
  assert.equal(inline(placement, "add"), true);
  // vary alone in a 400 ms read: for good.
  placement.slowRead(["vary", "vary"], 400_000);
  warm(placement, "vary", SAMPLES * 2 ** 12);
  assert.equal(inline(placement, "vary"), false);
  // A short slow read (a hiccup) only sends back.
  placement.slowRead(["add"], DEMOTE_US * 2);
  warm(placement, "add", 4 * SAMPLES);
  assert.equal(inline(placement, "add"), true);
});

Deno.test("Placement times one inline run in TIME_EVERY when calm, more while watchful", () => {
  let draws = 0;
  const placement = new Placement(() => (draws++ % 2) * 0.999);
  warm(placement, "add");
  const count = (runs: number) => {
    let timed = 0;
    for (let i = 0; i < runs; i++) {
      if (placement.next("add") === "timed") {
        timed++;
        placement.ran("add", 1);
      }
    }
    return timed;
  };
  // Watchful for SAMPLES timed runs after the move: about one in TIME_WATCHFUL_EVERY.
  const watchful = count(SAMPLES * TIME_WATCHFUL_EVERY);
  assert.ok(Math.abs(watchful - SAMPLES) <= 2, `${watchful} timed while watchful`);
  const calm = count(TIME_EVERY * 64);
  assert.ok(Math.abs(calm - 64) <= 4, `${calm} timed while calm`);
  // A timed run over CHEAP_US (not slow enough to send back) makes it watchful again.
  placement.ran("add", CHEAP_US + 1);
  assert.equal(inline(placement, "add"), true);
  const again = count(SAMPLES * TIME_WATCHFUL_EVERY);
  assert.ok(again >= SAMPLES - 2, `${again} timed after a slowish run`);
});

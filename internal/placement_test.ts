import assert from "node:assert/strict";
import {
  CHEAP_US,
  DEMOTE_US,
  HEAVY_US,
  Placement,
  SAMPLES,
  SUSPECT_RUNS,
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

Deno.test("Placement: a first slow run makes a command suspect, a second sends it back", () => {
  const placement = new Placement();
  warm(placement, "get");
  placement.ran("get", DEMOTE_US); // not over
  assert.notEqual(placement.next("get"), "pool");
  placement.ran("get", DEMOTE_US + 1); // strike one: every run is timed now
  for (let i = 0; i < SUSPECT_RUNS; i++) assert.equal(placement.next("get"), "timed");
  placement.ran("get", DEMOTE_US + 1); // strike two
  assert.equal(inline(placement, "get"), false);
  warm(placement, "get", 2 * SAMPLES - 1);
  assert.equal(inline(placement, "get"), false, "moved back before twice the samples");
  warm(placement, "get", 1);
  assert.equal(inline(placement, "get"), true);
});

Deno.test("Placement: a pre-empted run is forgiven after SUSPECT_RUNS cheap timed runs", () => {
  const placement = new Placement();
  warm(placement, "add");
  placement.slowRead(["add"], 5_000); // the OS took the thread away once
  for (let i = 0; i < SUSPECT_RUNS; i++) {
    assert.equal(placement.next("add"), "timed");
    placement.ran("add", 2);
  }
  assert.notEqual(placement.next("add"), "pool");
  placement.slowRead(["add"], 5_000); // a strike, but the first again
  assert.equal(inline(placement, "add"), true);
});

Deno.test("Placement: a heavy strike (HEAVY_US) needs 16 times the runs to move again, and returns grow", () => {
  const placement = new Placement();
  warm(placement, "vary");
  placement.slowRead(["vary", "vary"], HEAVY_US);
  placement.ran("vary", HEAVY_US);
  assert.equal(inline(placement, "vary"), false);
  warm(placement, "vary", 16 * SAMPLES - 1);
  assert.equal(inline(placement, "vary"), false);
  warm(placement, "vary", 1);
  assert.equal(inline(placement, "vary"), true);
  // Params that are sometimes heavy keep it in the pool: 1 run in 6 slow.
  placement.slowRead(["vary"], 2 * HEAVY_US);
  placement.ran("vary", 2 * HEAVY_US);
  for (let i = 0; i < 1000 * SAMPLES; i++) placement.pooled("vary", i % 6 === 0 ? 400_000 : 3);
  assert.equal(inline(placement, "vary"), false);
});

Deno.test("Placement.slowRead: every command of the dispatch gets a strike", () => {
  const placement = new Placement();
  warm(placement, "vary");
  warm(placement, "add");
  placement.slowRead(["add", "vary", "add"], 400_000);
  assert.equal(placement.next("add"), "timed");
  assert.equal(placement.next("vary"), "timed");
  placement.slowRead(["vary"], 400_000);
  assert.equal(inline(placement, "vary"), false);
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

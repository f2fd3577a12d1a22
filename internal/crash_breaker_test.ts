import assert from "node:assert/strict";
import {
  COOL_DOWN_MS,
  CrashBreaker,
  MAX_COOL_DOWN_MS,
  STRIKE_WINDOW_MS,
  STRIKES,
} from "./crash_breaker.ts";

/** Seconds `command` is refused for at `now` (`undefined`: it is not). */
function refusedFor(breaker: CrashBreaker, command: string, now: number): number | undefined {
  const error = breaker.refusal(command, now);
  if (!error) return undefined;
  assert.equal(error.code, -32004);
  return Number(error.message.match(/is refused for (\d+) s/)![1]);
}

Deno.test("CrashBreaker refuses a command after STRIKES crashes within the window, for COOL_DOWN_MS", () => {
  const breaker = new CrashBreaker();
  assert.equal(breaker.armed, false);
  for (let i = 0; i < STRIKES - 1; i++) breaker.strike("boom", 1_000 * i);
  assert.equal(breaker.armed, true);
  assert.equal(refusedFor(breaker, "boom", 2_000), undefined);
  breaker.strike("boom", 2_000);
  assert.equal(refusedFor(breaker, "boom", 2_000), COOL_DOWN_MS / 1000);
  assert.match(
    breaker.refusal("boom", 2_000)!.message,
    /^Command "boom" is refused for 5 s: it crashed 3 workers within 10 s$/,
  );
  assert.equal(refusedFor(breaker, "boom", 2_000 + COOL_DOWN_MS - 1), 1);
  assert.equal(refusedFor(breaker, "boom", 2_000 + COOL_DOWN_MS), undefined);
  assert.equal(refusedFor(breaker, "other", 2_000), undefined);
});

Deno.test("CrashBreaker forgets crashes older than the window", () => {
  const breaker = new CrashBreaker();
  const times = [0, STRIKE_WINDOW_MS / 2, STRIKE_WINDOW_MS];
  for (const t of times) breaker.strike("boom", t);
  assert.equal(
    refusedFor(breaker, "boom", STRIKE_WINDOW_MS),
    undefined,
    "the first fell out of the window",
  );
  breaker.strike("boom", STRIKE_WINDOW_MS + 1);
  assert.equal(refusedFor(breaker, "boom", STRIKE_WINDOW_MS + 1), COOL_DOWN_MS / 1000);
});

Deno.test("CrashBreaker doubles the refusal while a command keeps tripping it, up to MAX_COOL_DOWN_MS", () => {
  const breaker = new CrashBreaker();
  let now = 0;
  const refusals: number[] = [];
  for (let round = 0; round < 7; round++) {
    for (let i = 0; i < STRIKES; i++) breaker.strike("boom", now);
    refusals.push(refusedFor(breaker, "boom", now) ?? 0);
    // Back soon after the refusal ends, and crashing again.
    now += refusals.at(-1)! * 1000 + 1;
  }
  assert.deepEqual(refusals, [5, 10, 20, 40, 60, 60, 60]);
  assert.equal(MAX_COOL_DOWN_MS, 60_000);
  // A command that behaves for a window after its refusal starts again from COOL_DOWN_MS.
  now += STRIKE_WINDOW_MS;
  for (let i = 0; i < STRIKES; i++) breaker.strike("boom", now);
  assert.equal(refusedFor(breaker, "boom", now), COOL_DOWN_MS / 1000);
});

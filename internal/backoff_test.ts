/** Backoff delays and the abortable sleep. */
import assert from "node:assert/strict";
import { backoffDelay, sleep } from "./backoff.ts";

Deno.test("backoffDelay doubles its bound per attempt up to maxDelay, with full jitter", () => {
  const top = () => 0.999999;
  assert.equal(backoffDelay(0, {}, top), 99);
  assert.equal(backoffDelay(3, {}, top), 799);
  assert.equal(backoffDelay(20, {}, top), 4999);
  assert.equal(backoffDelay(2, { baseDelay: 10, maxDelay: 25 }, top), 24);
  assert.equal(backoffDelay(5, {}, () => 0), 0);
  for (let i = 0; i < 100; i++) {
    const delay = backoffDelay(4);
    assert.ok(delay >= 0 && delay < 1600, String(delay));
  }
});

Deno.test("sleep resolves after its time", async () => {
  const started = performance.now();
  await sleep(20);
  assert.ok(performance.now() - started >= 15);
  await sleep(1, new AbortController().signal);
});

Deno.test("sleep rejects with the signal's reason, at once or when it aborts", async () => {
  await assert.rejects(sleep(1000, AbortSignal.abort(new Error("already"))), /already/);
  const controller = new AbortController();
  const waiting = sleep(10_000, controller.signal);
  controller.abort(new Error("stop"));
  await assert.rejects(waiting, /stop/);
});

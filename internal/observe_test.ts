import assert from "node:assert/strict";
import { type CallFailure, LOG_PER_SECOND, logFailure, StatsTable } from "./observe.ts";

Deno.test("StatsTable counts calls, errors and failures, and merges threads", () => {
  const a = new StatsTable();
  for (let i = 0; i < 98; i++) a.add("add", true, false, 0.01);
  a.add("add", false, false, 0.01);
  a.add("add", false, true, 100);
  const b = new StatsTable();
  b.add("get", true, false, 1);
  b.add("add", true, false, 0.01);
  a.merge(b.counters);
  const stats = a.snapshot();
  assert.deepEqual(Object.keys(stats), ["add", "get"]);
  assert.equal(stats.add.calls, 101);
  assert.equal(stats.add.errors, 2);
  assert.equal(stats.add.failures, 1);
  assert.ok(stats.add.p50Ms <= 0.016, `p50 ${stats.add.p50Ms}`);
  assert.ok(stats.add.p99Ms <= 0.016, `p99 ${stats.add.p99Ms}: one slow call of 101 is above it`);
  assert.ok(Math.abs(stats.add.meanMs - (100 + 100 * 0.01) / 101) < 1e-9);
  assert.equal(stats.get.calls, 1);
  assert.ok(stats.get.p50Ms >= 1 && stats.get.p50Ms <= 2.048);
});

Deno.test("logFailure logs at most LOG_PER_SECOND lines a second and counts the rest", () => {
  const lines: string[] = [];
  const original = console.error;
  console.error = (line: string) => lines.push(line);
  try {
    const event: CallFailure = {
      command: "boom",
      id: 1,
      ok: false,
      code: -32603,
      durationMs: 1,
      connection: 1,
      error: { name: "Error", message: "kaboom" },
      paramsBytes: 2,
      reference: "abcdef01",
    };
    const second = 1_000_000_000_000;
    for (let i = 0; i < 100; i++) logFailure(event, second + i);
    assert.equal(lines.length, LOG_PER_SECOND);
    logFailure(event, second + 1000);
    assert.equal(lines.length, LOG_PER_SECOND + 1);
    assert.match(lines.at(-1)!, /\(90 more failures not logged before this one\): Error: kaboom$/);
  } finally {
    console.error = original;
  }
});

import assert from "node:assert/strict";
import {
  bucketBounds,
  bucketOf,
  BUCKETS,
  type CallFailure,
  LOG_PER_SECOND,
  logFailure,
  StatsTable,
} from "./observe.ts";

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

/** The nearest-rank `q` quantile of `values`. */
function exactQuantile(values: number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.max(1, Math.ceil(sorted.length * q)) - 1];
}

/** Durations in ms, made reproducibly from a seed. */
function spread(n: number, from: number, to: number, seed = 1): number[] {
  let x = seed;
  const next = () => (x = (x * 48271) % 2147483647) / 2147483647;
  return Array.from({ length: n }, () => from * (to / from) ** next());
}

Deno.test("stats percentiles are within 1/64 of the true value (or 0.5 µs), table", () => {
  const table: [string, number[]][] = [
    ["one call of 11,475 ms", [11_475]],
    ["one call of 0.2 ms", [0.2]],
    ["1..100 ms", Array.from({ length: 100 }, (_, i) => i + 1)],
    ["990 of 0.2 ms and 10 of 250 ms", [...Array(990).fill(0.2), ...Array(10).fill(250)]],
    ["985 of 0.2 ms and 15 of 250 ms", [...Array(985).fill(0.2), ...Array(15).fill(250)]],
    ["powers of two in µs", [0.001, 0.002, 0.032, 0.064, 1.024, 1048.576, 2 ** 30 / 1000]],
    ["just below powers of two", [0.0319999, 0.0639999, 1.0239999, 1048.5759999]],
    ["under a microsecond", [0.0001, 0.0004, 0.0009, 0.0002]],
    ["10,000 spread from 1 µs to 10 s", spread(10_000, 0.001, 10_000)],
    ["1,000 spread from 5 ms to 6 ms", spread(1_000, 5, 6, 7)],
    ["3 calls of about 30 h", [108e6, 108e6, 110e6]],
  ];
  for (const [name, values] of table) {
    const stats = new StatsTable();
    for (const ms of values) stats.add("c", true, false, ms);
    const row = stats.snapshot().c;
    for (const [q, got] of [[0.5, row.p50Ms], [0.99, row.p99Ms]] as const) {
      const want = exactQuantile(values, q);
      const bound = Math.max(want / 64, 0.0005) + 1e-12;
      assert.ok(
        Math.abs(got - want) <= bound,
        `${name}: p${q * 100} is ${got} ms, true ${want} ms, allowed error ${bound}`,
      );
    }
  }
});

Deno.test("stats buckets: every duration falls in its bucket, buckets are at most 1/32 wide", () => {
  assert.equal(bucketOf(0), 0);
  assert.equal(bucketOf(-1), 0);
  assert.equal(bucketOf(NaN), 0);
  assert.equal(bucketOf(Infinity), BUCKETS - 1);
  for (let i = 0; i < BUCKETS - 1; i++) {
    const [lo, hi] = bucketBounds(i);
    const [next] = bucketBounds(i + 1);
    assert.equal(hi, next, `bucket ${i} ends where ${i + 1} starts`);
    assert.equal(bucketOf(lo), i, `low edge of ${i}`);
    assert.equal(bucketOf(hi - (hi - lo) / 1024), i, `just below the high edge of ${i}`);
    if (lo >= 32) assert.ok((hi - lo) / lo <= 1 / 32, `bucket ${i} is ${lo}..${hi}`);
    else assert.equal(hi - lo, 1);
  }
});

Deno.test("stats percentiles merged across threads equal those of one table", () => {
  const values = spread(2_000, 0.01, 500, 3);
  const one = new StatsTable();
  const a = new StatsTable();
  const b = new StatsTable();
  values.forEach((ms, i) => {
    one.add("c", true, false, ms);
    (i % 3 ? a : b).add("c", true, false, ms);
  });
  a.merge(b.counters);
  const merged = a.snapshot().c;
  const single = one.snapshot().c;
  assert.equal(merged.p50Ms, single.p50Ms);
  assert.equal(merged.p99Ms, single.p99Ms);
  assert.ok(Math.abs(merged.meanMs - single.meanMs) < 1e-9);
});

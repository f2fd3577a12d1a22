import assert from "node:assert/strict";
import { admitPooled } from "./admission.ts";

Deno.test("admitPooled: table of decisions", () => {
  const table: [inFlight: number, max: number, mine: number, holders: number, admit: boolean][] = [
    [0, 100, 0, 0, true], // empty pool
    [49, 100, 49, 1, true], // below half: anything goes
    [50, 100, 50, 1, false], // one hog past half: over its share (50 / 1 = 50)
    [50, 100, 0, 1, true], // a newcomer always gets in
    [99, 100, 0, 20, true], // ... even when the pool is nearly full
    [100, 100, 0, 20, false], // a full pool refuses everyone
    [80, 100, 10, 8, false], // 8 holders: share 50 / 8 = 6
    [80, 100, 5, 8, true],
  ];
  for (const [inFlight, max, mine, holders, admit] of table) {
    assert.equal(
      admitPooled(inFlight, max, mine, holders),
      admit,
      `${inFlight},${max},${mine},${holders}`,
    );
  }
});

Deno.test("admitPooled: hogs that always ask can never fill the pool", () => {
  // Simulate 16 hostile connections each asking for calls that never end,
  // then check a newcomer is still admitted.
  const max = 16_384;
  const mine = new Array(16).fill(0);
  let inFlight = 0;
  let holders = 0;
  for (let round = 0; round < 2_000; round++) {
    for (let c = 0; c < mine.length; c++) {
      if (admitPooled(inFlight, max, mine[c], holders)) {
        if (mine[c]++ === 0) holders++;
        inFlight++;
      }
    }
  }
  assert.ok(inFlight < max, `the hogs took ${inFlight} of ${max}`);
  assert.ok(admitPooled(inFlight, max, 0, holders), "a newcomer was refused");
});

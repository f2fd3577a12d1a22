import assert from "node:assert/strict";
import { FairQueue } from "./fair_queue.ts";

Deno.test("FairQueue takes turns by group, then by member, first in first out within a member", () => {
  const queue = new FairQueue<string>();
  for (let i = 1; i <= 4; i++) queue.push("A", "a1", `a1-${i}`);
  for (let i = 1; i <= 2; i++) queue.push("A", "a2", `a2-${i}`);
  queue.push("B", "b1", "b1-1");
  assert.equal(queue.size, 7);
  const order: string[] = [];
  for (let item = queue.shift(); item !== undefined; item = queue.shift()) order.push(item);
  // A and B alternate; within A, a1 and a2 alternate.
  assert.deepEqual(order, ["a1-1", "b1-1", "a2-1", "a1-2", "a2-2", "a1-3", "a1-4"]);
  assert.equal(queue.size, 0);
  assert.equal(queue.peek(), undefined);
});

Deno.test("FairQueue: a newcomer waits behind one item of each other member, not behind all", () => {
  const queue = new FairQueue<string>();
  for (let i = 0; i < 1000; i++) queue.push("10.0.0.1", `flood-${i % 64}`, `f${i}`);
  queue.push("10.0.0.2", "bystander", "mine");
  // One of the flooding address's calls, then the bystander's.
  assert.equal(queue.shift(), "f0");
  assert.equal(queue.shift(), "mine");
  assert.equal(queue.size, 999);
});

Deno.test("FairQueue: peek shows what shift takes; drain empties it", () => {
  const queue = new FairQueue<number>();
  queue.push("g", "m", 1);
  queue.push("h", "n", 2);
  queue.push("g", "m", 3);
  assert.equal(queue.peek(), 1);
  assert.equal(queue.shift(), 1);
  assert.equal(queue.peek(), 2);
  assert.deepEqual(queue.drain(), [2, 3]);
  assert.equal(queue.size, 0);
  queue.push("g", "m", 4); // usable again after it emptied
  assert.equal(queue.shift(), 4);
});

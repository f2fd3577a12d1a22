/**
 * Who waits behind whom: a queue served round-robin over groups (remote
 * addresses), and within a group over members (connections), each member
 * first in, first out. A client that queues a thousand calls makes another
 * client's one call wait behind one of them, not behind all; a client that
 * opens many connections from one address gets one address's turn.
 *
 * Pure bookkeeping with no I/O, table-tested in `fair_queue_test.ts`.
 *
 * @module
 */

/** One member's items, first in first out, with a moving head (no `shift()` copies). */
class Lane<T> {
  items: T[] = [];
  head = 0;

  get size(): number {
    return this.items.length - this.head;
  }

  take(): T {
    const item = this.items[this.head];
    this.items[this.head++] = undefined as T;
    if (this.head === this.items.length) {
      this.items = [];
      this.head = 0;
    }
    return item;
  }
}

/**
 * Round-robin over groups, then over the members of a group.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { FairQueue } from "./fair_queue.ts";
 * const queue = new FairQueue<string>();
 * for (let i = 1; i <= 3; i++) queue.push("10.0.0.1", "flood", `f${i}`);
 * queue.push("10.0.0.2", "bystander", "b1");
 * assert.deepEqual([queue.shift(), queue.shift(), queue.shift()], ["f1", "b1", "f2"]);
 * assert.equal(queue.size, 1);
 * ```
 */
export class FairQueue<T> {
  /** Group → member → lane; a `Map` keeps insertion order, so delete + set rotates. */
  readonly #groups = new Map<string, Map<string, Lane<T>>>();
  #size = 0;

  /** Items queued. */
  get size(): number {
    return this.#size;
  }

  /** Queues `item` behind `member`'s earlier items. */
  push(group: string, member: string, item: T): void {
    let members = this.#groups.get(group);
    if (!members) {
      members = new Map();
      this.#groups.set(group, members);
    }
    let lane = members.get(member);
    if (!lane) {
      lane = new Lane();
      members.set(member, lane);
    }
    lane.items.push(item);
    this.#size++;
  }

  /** The item {@linkcode shift} would return, left in place. */
  peek(): T | undefined {
    for (const members of this.#groups.values()) {
      for (const lane of members.values()) return lane.items[lane.head];
    }
    return undefined;
  }

  /**
   * Takes the next item: the first member of the first group gives its
   * oldest item, then goes to the back of its group, and its group to the
   * back of the groups.
   */
  shift(): T | undefined {
    for (const [group, members] of this.#groups) {
      for (const [member, lane] of members) {
        const item = lane.take();
        this.#size--;
        members.delete(member);
        if (lane.size > 0) members.set(member, lane);
        this.#groups.delete(group);
        if (members.size > 0) this.#groups.set(group, members);
        return item;
      }
    }
    return undefined;
  }

  /** Removes and returns every item, oldest turn first (for a shutdown). */
  drain(): T[] {
    const all: T[] = [];
    for (let item = this.shift(); item !== undefined; item = this.shift()) all.push(item);
    return all;
  }
}

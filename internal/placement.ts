/**
 * Where a call to a command without an explicit `static inline` runs: in
 * the worker pool until the pool has seen that its synchronous part is
 * cheap, then where the call arrived (a worker round trip costs far more
 * than such a handler). Async handlers qualify by their synchronous slice:
 * one that awaits I/O costs the thread little, and a hop would cost it a lot.
 *
 * Deno cannot pre-empt a handler, so a command whose cost depends on its
 * params could stall the thread it runs on. The rules that keep that rare:
 * the connection times every dispatch (two clock reads per read, not per
 * call) and reports a slow one with the measured commands that ran inline
 * in it. A first strike makes a command suspect: its next runs are timed
 * one by one, and a second strike sends it back to the pool, where it must
 * prove cheap over twice the runs (16 times after a strike of
 * {@linkcode HEAVY_US}), and the runs it takes in the pool with
 * parameters that are sometimes heavy count as slow. So a command stalls a
 * thread about twice per move, and moves ever more rarely. A pure
 * bookkeeping of costs, table-tested.
 *
 * @module
 */

/** Pool runs of a command observed before it may move. */
export const SAMPLES = 32;
/** Synchronous run time (or async slice), in µs, that counts as cheap in the pool. */
export const CHEAP_US = 50;
/**
 * One inline run in this many is timed, on average, at random intervals (a
 * fixed stride could keep missing a handler that is slow every Nth call),
 * while a command looks calm. A clock read costs 50-120 ns on a virtual
 * machine; each read's dispatch is timed anyway (see the module doc).
 */
export const TIME_EVERY = 32;
/**
 * One run in this many is timed while a command is watched closely: for
 * {@linkcode SAMPLES} timed runs after it moved here (the first one timed)
 * and after any timed run over {@linkcode CHEAP_US}.
 */
export const TIME_WATCHFUL_EVERY = 4;
/** An inline run (or a read's dispatch, beyond its allowance) slower than this (µs) is a strike. */
export const DEMOTE_US = 1_000;
/**
 * After a first strike, this many of the command's next runs are timed one
 * by one; a second strike among them sends it back to the pool. Two, not
 * one: a thread pre-empted by the OS (two cores shared by the load, the I/O
 * threads and the workers) makes any dispatch look slow now and then, and
 * a command sent back for that would stay in the pool for ever longer.
 */
export const SUSPECT_RUNS = 8;
/** A strike this slow (µs) sends the command back for 16 times the runs, not twice. */
export const HEAVY_US = 20_000;
/** Most times the runs needed to move doubles: past it, 32 × 2^20 runs. */
export const MAX_DEMOTIONS = 20;

/** One command's placement. */
interface CommandPlacement {
  /** Pool runs seen in the current window, and how many of them were slow. */
  seen: number;
  slow: number;
  /** Whether calls now run where they arrive. */
  inline: boolean;
  /** Runs still to be timed one by one after a strike (0: no strike pending). */
  suspect: number;
  /** Times the command was sent back to the pool: each doubles the samples needed. */
  demotions: number;
  /** Inline runs still to go before the next timed one. */
  untimed: number;
  /** Timed runs still to go at the watchful rate. */
  watchful: number;
}

/**
 * Per-command placement for one serving thread. Costs are in µs.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Placement, SAMPLES } from "./placement.ts";
 * const placement = new Placement(() => 0);
 * for (let i = 0; i < SAMPLES; i++) placement.pooled("add", 3);
 * assert.notEqual(placement.next("add"), "pool");
 * placement.slowRead(["add"], 30_000); // a 30 ms dispatch: suspect
 * assert.equal(placement.next("add"), "timed");
 * placement.ran("add", 30_000); // caught again: back to the pool
 * assert.equal(placement.next("add"), "pool");
 * ```
 */
export class Placement {
  readonly #records = new Map<string, CommandPlacement>();
  readonly #random: () => number;

  /** @param random Where the random intervals between timed runs come from (tests fix it). */
  constructor(random: () => number = Math.random) {
    this.#random = random;
  }

  /**
   * Where the next call to `command` runs, in one lookup: `"pool"`, or
   * where it arrived: `"timed"` for one run in {@linkcode TIME_EVERY} on
   * average ({@linkcode TIME_WATCHFUL_EVERY} while watchful; the gaps drawn
   * at random) and `"here"` for the others.
   */
  next(command: string): "pool" | "here" | "timed" {
    const record = this.#records.get(command);
    if (!record?.inline) return "pool";
    if (record.suspect > 0) return "timed";
    if (record.untimed-- > 0) return "here";
    // A gap of 0 to 2 * every - 2 untimed runs: one run in `every` on average.
    const every = record.watchful > 0 ? TIME_WATCHFUL_EVERY : TIME_EVERY;
    record.untimed = Math.floor(this.#random() * (2 * every - 1));
    return "timed";
  }

  /**
   * Notes the cost of a run of `command` in the pool: its synchronous time,
   * or for an `async` one its first synchronous slice.
   */
  pooled(command: string, cost: number): void {
    let record = this.#records.get(command);
    if (!record) {
      record = {
        seen: 0,
        slow: 0,
        inline: false,
        suspect: 0,
        demotions: 0,
        untimed: 0,
        watchful: 0,
      };
      this.#records.set(command, record);
    }
    if (record.inline) return;
    const window = SAMPLES * 2 ** record.demotions;
    if (cost < 0 || (cost > CHEAP_US && ++record.slow > window / 8)) {
      // Too often slow: start over.
      record.seen = record.slow = 0;
      return;
    }
    if (++record.seen >= window) {
      record.inline = true;
      record.untimed = 0;
      record.watchful = SAMPLES;
    }
  }

  /** Notes the cost of a timed inline run of `command`; a slow one is a strike. */
  ran(command: string, cost: number): void {
    const record = this.#records.get(command);
    if (!record?.inline) return;
    if (cost > CHEAP_US) record.watchful = SAMPLES;
    else if (record.watchful > 0) record.watchful--;
    if (cost > DEMOTE_US) this.#strike(record, cost);
    else if (record.suspect > 0) record.suspect--;
  }

  /**
   * A dispatch whose time went `us` past its allowance, with the measured
   * commands that ran inline in it: a strike for each.
   */
  slowRead(commands: readonly string[], us: number): void {
    for (const command of new Set(commands)) {
      const record = this.#records.get(command);
      if (record?.inline) this.#strike(record, us);
    }
  }

  /** The first strike makes a command suspect; a second while suspect sends it back. */
  #strike(record: CommandPlacement, cost: number): void {
    if (record.suspect === 0) {
      record.suspect = SUSPECT_RUNS;
      return;
    }
    record.inline = false;
    record.suspect = 0;
    record.seen = record.slow = 0;
    const step = cost >= HEAVY_US ? 4 : 1;
    record.demotions = Math.min(record.demotions + step, MAX_DEMOTIONS);
  }
}

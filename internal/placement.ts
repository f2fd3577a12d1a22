/**
 * Where a call to a command without an explicit `static inline` runs: in
 * the worker pool until the pool has seen that its synchronous part is
 * cheap, then where the call arrived (a worker round trip costs far more
 * than such a handler). Async handlers qualify by their synchronous slice:
 * one that awaits I/O costs the thread little, and a hop would cost it a lot.
 *
 * Deno cannot pre-empt a handler, so a command whose cost depends on its
 * params could stall the thread it runs on. The rules that keep that to
 * once: the connection times every read's dispatch (two clock reads per
 * read, not per call) and reports a slow one with the measured commands
 * that ran in it; a command caught slow goes back to the pool at once, and
 * is never moved again after {@linkcode MAX_DEMOTIONS} returns or one run
 * (or read it ran alone in) of {@linkcode BAN_US} or more. A pure
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
/** An inline run (or a read's dispatch, beyond its allowance) slower than this (µs) sends it back. */
export const DEMOTE_US = 1_000;
/** A run this slow (µs) is no hiccup: its command never runs inline again. */
export const BAN_US = 20_000;
/** Returns to the pool after which a command stays there for good. */
export const MAX_DEMOTIONS = 3;

/** One command's placement. */
interface CommandPlacement {
  /** Pool runs seen in the current window, and how many of them were slow. */
  seen: number;
  slow: number;
  /** Whether calls now run where they arrive. */
  inline: boolean;
  /** Never again inline. */
  banned: boolean;
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
 * placement.slowRead(["add"], 30_000); // ran alone in a 30 ms read
 * assert.equal(placement.next("add"), "pool");
 * for (let i = 0; i < 100 * SAMPLES; i++) placement.pooled("add", 3);
 * assert.equal(placement.next("add"), "pool"); // for good
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
        banned: false,
        demotions: 0,
        untimed: 0,
        watchful: 0,
      };
      this.#records.set(command, record);
    }
    if (record.inline || record.banned) return;
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

  /** Notes the cost of a timed inline run of `command`; a slow one sends it back. */
  ran(command: string, cost: number): void {
    const record = this.#records.get(command);
    if (!record?.inline) return;
    if (cost > CHEAP_US) record.watchful = SAMPLES;
    else if (record.watchful > 0) record.watchful--;
    if (cost > DEMOTE_US) this.#demote(record, cost >= BAN_US);
  }

  /**
   * A read whose dispatch took `us` beyond its allowance, with the measured
   * commands that ran inline in it: each goes back to the pool. One that ran
   * alone in a read of {@linkcode BAN_US} or more stays there.
   */
  slowRead(commands: readonly string[], us: number): void {
    const alone = commands.every((command) => command === commands[0]);
    for (const command of new Set(commands)) {
      const record = this.#records.get(command);
      if (record?.inline) this.#demote(record, alone && us >= BAN_US);
    }
  }

  #demote(record: CommandPlacement, ban: boolean): void {
    record.inline = false;
    record.seen = record.slow = 0;
    record.demotions++;
    if (ban || record.demotions >= MAX_DEMOTIONS) record.banned = true;
  }
}

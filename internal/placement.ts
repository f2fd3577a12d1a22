/**
 * Where a call to a command without an explicit `static inline` runs: in
 * the worker pool until the pool has seen it is cheap and synchronous, then
 * where the call arrived (a worker round trip costs far more than such a
 * handler). A pure bookkeeping of costs, table-tested.
 *
 * @module
 */

/** Pool runs of a command observed before it may move. */
export const SAMPLES = 32;
/** Synchronous run time, in µs, that counts as cheap. */
export const CHEAP_US = 50;
/**
 * Runs of a window allowed over {@linkcode CHEAP_US}: a busy machine
 * pre-empts threads, so one slow sample proves nothing.
 */
export const OUTLIERS = SAMPLES / 8;
/**
 * One inline run in this many is timed, on average, at random intervals (a
 * fixed stride could keep missing a handler that is slow every Nth call),
 * while a command looks calm. A clock read costs 50-120 ns on a virtual
 * machine: timing one run in 8 added ~65 ns per call to the tutorial's
 * `add` (`deno task bench:hot`). A run that goes async is noticed on every
 * call all the same, without a clock.
 */
export const TIME_EVERY = 32;
/**
 * One run in this many is timed while a command is watched closely: for
 * {@linkcode SAMPLES} timed runs after it moved here (the first one timed)
 * and after any timed run over {@linkcode CHEAP_US}.
 */
export const TIME_WATCHFUL_EVERY = 4;
/** An inline run slower than this (µs) counts as slow. */
export const DEMOTE_US = 1_000;
/**
 * More than this many slow inline runs among {@linkcode SAMPLES} send the
 * command back (one run that went async does at once). Not one: a GC pause
 * or a pre-empted thread makes any run look slow now and then.
 */
export const SLOW_RUNS = SAMPLES / 4;

interface Record {
  /** Pool runs seen in the current window, and how many of them were slow. */
  seen: number;
  slow: number;
  /** Whether calls now run where they arrive. */
  inline: boolean;
  /** Inline runs in the current window, and how many were slow. */
  runs: number;
  slowRuns: number;
  /** Times the command was sent back to the pool: each doubles the samples needed. */
  demotions: number;
  /** Inline runs still to go before the next timed one. */
  untimed: number;
  /** Timed runs still to go at the watchful rate. */
  watchful: number;
}

/**
 * Per-command placement. `cost` is a run's duration in µs when `execute()`
 * returned synchronously, or -1 when it returned a promise.
 */
export class Placement {
  readonly #records = new Map<string, Record>();
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

  /** Whether calls to `command` should run where they arrive. */
  inline(command: string): boolean {
    return this.#records.get(command)?.inline ?? false;
  }

  /** Notes the cost of a run of `command` in the pool. */
  pooled(command: string, cost: number): void {
    let record = this.#records.get(command);
    if (!record) {
      record = {
        seen: 0,
        slow: 0,
        inline: false,
        runs: 0,
        slowRuns: 0,
        demotions: 0,
        untimed: 0,
        watchful: 0,
      };
      this.#records.set(command, record);
    }
    if (record.inline) return;
    const window = SAMPLES * 2 ** record.demotions;
    if (cost < 0 || (cost > CHEAP_US && ++record.slow > window / 8)) {
      // Async, or too often slow: start over.
      record.seen = record.slow = 0;
      return;
    }
    if (++record.seen >= window) {
      record.inline = true;
      record.runs = record.slowRuns = record.untimed = 0;
      record.watchful = SAMPLES;
    }
  }

  /**
   * Notes the cost of an inline run of `command` (a timed one, or -1 for any
   * that went async); a slow or async one sends it back.
   */
  ran(command: string, cost: number): void {
    const record = this.#records.get(command);
    if (!record?.inline) return;
    if (cost > CHEAP_US) record.watchful = SAMPLES;
    else if (record.watchful > 0) record.watchful--;
    if (++record.runs > SAMPLES) record.runs = record.slowRuns = 0;
    if (cost >= 0 && (cost <= DEMOTE_US || ++record.slowRuns <= SLOW_RUNS)) return;
    record.inline = false;
    record.seen = record.slow = 0;
    record.demotions = Math.min(record.demotions + 1, 10);
  }
}

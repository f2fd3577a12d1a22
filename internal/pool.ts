/**
 * The worker pool: runs handlers in Deno Web Workers. Calls queued in the
 * same tick go to a worker in one `postMessage` (a round trip costs ~150 µs
 * at low load, ARCHITECTURE.md), and each worker answers in batches too.
 *
 * Faults stay contained: a worker's uncaught error is caught here (otherwise
 * it kills the process), only that worker's calls fail, and a replacement
 * takes its place, with backoff if replacements keep failing to start. A
 * command that keeps crashing workers is refused for a while
 * (crash_breaker.ts); which worker gets a call is balancer.ts's rule.
 *
 * Threads stay behind `spawn` (a {@linkcode WorkerEndpoint}) and time behind
 * `clock`, so pool_test.ts drives the pool with in-memory fakes.
 *
 * @module
 */

import { ErrorCode, type WireError } from "../errors.ts";
import type { HandlerClass } from "../handler.ts";
import { backoffDelay } from "./backoff.ts";
import {
  allDead,
  hasRoom,
  nextCost,
  pick,
  sticks,
  UNKNOWN_COST_US,
  type WorkerLoad,
} from "./balancer.ts";
import { FairQueue } from "./fair_queue.ts";
import { CrashBreaker } from "./crash_breaker.ts";
import {
  type CallLimits,
  type Executor,
  type Invocation,
  NO_CALL_LIMITS,
  type Task,
  unreadOverflow,
} from "./executor.ts";
import type { FromWorker, InitMessage, ToWorker, WorkerEndpoint } from "./worker_messages.ts";

/** The time and timers the pool runs on; tests pass a manual clock. */
export interface PoolClock {
  /** Milliseconds since the epoch. */
  now(): number;
  /** Calls `fn` after `ms`; returns a function that cancels that (a no-op once it ran). */
  after(ms: number, fn: () => void): () => void;
}

/** How the pool is built. */
export interface PoolOptions {
  /** Number of workers. */
  size: number;
  /**
   * Start one more worker, the home thread, that runs every call of the
   * commands marked `static shared` and nothing else.
   */
  home?: boolean;
  /** URL of the module that defines the handler classes. */
  module: string;
  /** The command map to rebuild in each worker. */
  commands: Map<string, HandlerClass>;
  /** How long a worker may take to load the module, in ms. */
  startTimeout?: number;
  /**
   * How long a worker whose call timed out may take to answer a ping before
   * it is taken for stuck (a CPU-bound loop) and written off, in ms.
   */
  stuckAfter?: number;
  /** What each call may hold unread and send. */
  limits?: CallLimits;
  /**
   * Starts a worker named `name` (default: a Web Worker on `worker.ts`);
   * tests pass in-memory fakes that play the worker.
   */
  spawn?: (name: string) => WorkerEndpoint;
  /** Time and timers (default: the real ones). */
  clock?: PoolClock;
  /** Where worker crashes are reported (default: stderr). */
  log?: (line: string) => void;
}

const WORKER_URL = new URL("./worker.ts", import.meta.url);
// Never called: a static reference that makes `deno compile` embed the
// worker entry, which it cannot see inside `new Worker(url)`.
export const embedWorker = (): Promise<unknown> => import("./worker.ts");

/** Starts a Web Worker on the worker entry. */
function spawnWorker(name: string): WorkerEndpoint {
  return new Worker(WORKER_URL, { type: "module", name });
}

const realClock: PoolClock = {
  now: () => Date.now(),
  after(ms, fn) {
    const timer = setTimeout(fn, ms);
    return () => clearTimeout(timer);
  },
};

/** Restart delays while a worker keeps failing to start, in ms (doubling). */
const RESTART_DELAY = { baseDelay: 100, maxDelay: 5_000 };
/** A worker that dies sooner than this (ms) after it started counts as a failed start. */
const QUICK_CRASH_MS = 2_000;

/** One call, from `run()` until it is answered or given up. */
class Job {
  /** The worker it was given to; `undefined` while it waits in the pool's queue. */
  slot: Slot | undefined = undefined;
  /** Its synchronous part has finished in the worker (it no longer fills the window). */
  started = false;
  /** Answered already (timed out) but maybe still running: its result is dropped. */
  abandoned = false;
  /** Dropped while waiting: never given to a worker. */
  gone = false;
  /** µs the synchronous slice of an async run took, as the worker reported. */
  slice = 0;
  /** Why its client went away while it waited (told to its handler when it starts). */
  cancelled: string | undefined = undefined;
  /** Conversation messages that arrived while it waited. */
  early: { data: unknown; bytes: number }[] | undefined = undefined;
  earlyBytes = 0;

  constructor(readonly id: number, readonly call: Invocation, readonly cost: number) {}
}

/** One worker, as the pool sees it. */
class Slot implements WorkerLoad {
  readonly jobs = new Map<number, Job>();
  outbox: ToWorker[] = [];
  ready = false;
  dead = false;
  /** Jobs given to it whose synchronous part has not finished, and their expected µs. */
  queued = 0;
  queuedUs = 0;
  readonly started = Promise.withResolvers<void>();
  /** When the worker became ready (ms since epoch), 0 until it is. */
  readyAt = 0;
  /** Cancels the start timeout. */
  cancelStart: (() => void) | undefined;
  /** Outstanding liveness pings: number → cancels the timer that writes the worker off. */
  readonly pings = new Map<number, () => void>();

  constructor(
    readonly endpoint: WorkerEndpoint,
    readonly index: number,
    readonly failures: number,
    /** The home thread (shared commands only). */
    readonly home: boolean,
  ) {}

  /** Calls running or queued there, including abandoned ones still running. */
  get load(): number {
    return this.jobs.size;
  }
}

const REFUSED: Task = { deliver() {}, cancel() {}, abandon() {} };

/**
 * An {@linkcode Executor} backed by `size` workers.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { WorkerPool } from "./pool.ts";
 * import type { FromWorker, WorkerEndpoint } from "./worker_messages.ts";
 *
 * // A fake worker in memory: ready at once, answers every call with its command name.
 * function spawn(): WorkerEndpoint {
 *   const endpoint: WorkerEndpoint = {
 *     onmessage: null,
 *     onerror: null,
 *     onmessageerror: null,
 *     postMessage(message) {
 *       const data: FromWorker[] = [];
 *       if (!Array.isArray(message)) data.push({ type: "ready" });
 *       else {
 *         for (const m of message) {
 *           const json = JSON.stringify(m.type === "run" ? m.command : null);
 *           if (m.type === "run") data.push({ type: "done", job: m.job, outcome: { json }, cost: 1 });
 *         }
 *       }
 *       queueMicrotask(() => endpoint.onmessage?.(new MessageEvent("message", { data })));
 *     },
 *     terminate() {},
 *   };
 *   return endpoint;
 * }
 * const pool = new WorkerPool({ size: 2, module: "file:///app.ts", commands: new Map(), spawn });
 * await pool.start();
 * const { promise, resolve } = Promise.withResolvers<unknown>();
 * pool.run({
 *   command: "add",
 *   handler: class {} as never,
 *   params: {},
 *   conversational: false,
 *   send: () => undefined,
 *   finish: resolve,
 * });
 * assert.deepEqual(await promise, { json: '"add"' });
 * await pool.close();
 * ```
 */
export class WorkerPool implements Executor {
  readonly #options: PoolOptions;
  readonly #init: InitMessage;
  readonly #spawnEndpoint: (name: string) => WorkerEndpoint;
  readonly #clock: PoolClock;
  readonly #slots: Slot[] = [];
  /** The home thread, for commands marked `static shared`. */
  #home: Slot | undefined;
  /** Calls no worker has room for yet, served round-robin by address and connection. */
  readonly #waiting = new FairQueue<Job>();
  /** The same for the home thread. */
  readonly #homeWaiting = new FairQueue<Job>();
  /** Expected µs of a run, per command, from the costs the workers report. */
  readonly #costs = new Map<string, number>();
  #nextJob = 1;
  #nextPing = 1;
  #inFlight = 0;
  #scheduled = false;
  /** The worker this tick's calls went to, if any. */
  #sticky: Slot | undefined;
  /** Where the next search for an idle worker starts, so ties rotate. */
  #cursor = 0;
  readonly #breaker = new CrashBreaker();
  #closed = false;
  #starting = true;
  /** Cancel the pending respawns. */
  readonly #respawns = new Set<() => void>();

  constructor(options: PoolOptions) {
    this.#options = options;
    this.#spawnEndpoint = options.spawn ?? spawnWorker;
    this.#clock = options.clock ?? realClock;
    this.#init = {
      type: "init",
      module: options.module,
      commands: Object.fromEntries([...options.commands].map(([name, cls]) => [name, cls.name])),
      limits: options.limits ?? NO_CALL_LIMITS,
    };
  }

  /** Number of calls running or queued, in the workers or waiting for one. */
  get inFlight(): number {
    return this.#inFlight;
  }

  /** Calls waiting for a worker to have room. */
  get waiting(): number {
    return this.#waiting.size + this.#homeWaiting.size;
  }

  /** Every worker, the home thread last. */
  #all(): Slot[] {
    return this.#home ? [...this.#slots, this.#home] : this.#slots;
  }

  /**
   * Starts every worker and waits until each has loaded the handlers.
   *
   * @throws {Error} If a worker cannot load them (all workers are stopped).
   */
  async start(): Promise<void> {
    for (let i = 0; i < this.#options.size; i++) this.#slots.push(this.#spawn(i, 0));
    if (this.#options.home) this.#home = this.#spawn(this.#options.size, 0, true);
    try {
      await Promise.all(this.#all().map((slot) => slot.started.promise));
    } catch (error) {
      await this.close();
      throw error;
    }
    this.#starting = false;
  }

  /**
   * Gives `call` to a worker with room for it, or queues it until one has:
   * waiting calls are taken round-robin by `call.group` (the client's
   * address) and `call.owner` (its connection).
   */
  run(call: Invocation): Task {
    if (this.#breaker.armed) {
      const refused = this.#breaker.refusal(call.command, this.#clock.now());
      if (refused) {
        call.finish({ error: refused });
        return REFUSED;
      }
    }
    const shared = call.handler.shared === true && this.#home !== undefined;
    if (shared ? this.#home!.dead : this.#slots.length === 0 || allDead(this.#slots)) {
      call.finish({
        error: {
          code: ErrorCode.WORKER_CRASHED,
          message: "No worker is running: all are restarting",
        },
      });
      return REFUSED;
    }
    const job = new Job(
      this.#nextJob++,
      call,
      this.#costs.get(call.command) ?? UNKNOWN_COST_US,
    );
    this.#inFlight++;
    const waiting = shared ? this.#homeWaiting : this.#waiting;
    if (waiting.size > 0 || !this.#place(job, shared)) {
      waiting.push(call.group ?? "", call.owner ?? "", job);
    }
    return {
      deliver: (data, bytes) => this.#deliver(job, data, bytes),
      cancel: (reason, drop) => {
        if (job.slot) {
          if (!job.abandoned && job.slot.jobs.has(job.id)) {
            this.#queue(job.slot, { type: "cancel", job: job.id, message: reason.message });
          }
        } else if (job.gone) {
          // Nothing to tell.
        } else if (drop) {
          // Its connection was cut before any worker took it: it never runs.
          this.#drop(job);
          call.finish({ error: { code: ErrorCode.CONNECTION_CLOSED, message: reason.message } });
        } else {
          // Its client only stopped sending: it still runs, and learns at once.
          job.cancelled = reason.message;
        }
      },
      abandon: (reason) => {
        const slot = job.slot;
        if (!slot) {
          if (!job.gone) this.#drop(job);
          return;
        }
        if (job.abandoned || !slot.jobs.has(job.id)) return;
        job.abandoned = true;
        this.#inFlight--;
        this.#queue(slot, { type: "cancel", job: job.id, message: reason.message });
        this.#probe(slot, call.command);
      },
    };
  }

  /** Takes a waiting job out of the count; the queue skips it when its turn comes. */
  #drop(job: Job): void {
    job.gone = true;
    job.early = undefined;
    this.#inFlight--;
  }

  /** Conversation data for a job: to its worker, or held (within the unread limits) while it waits. */
  #deliver(job: Job, data: unknown, bytes: number): void {
    if (job.slot) {
      if (!job.abandoned && job.slot.jobs.has(job.id)) {
        this.#queue(job.slot, { type: "msg", job: job.id, data, bytes });
      }
      return;
    }
    if (job.gone) return;
    const { unread } = this.#options.limits ?? NO_CALL_LIMITS;
    job.early ??= [];
    job.early.push({ data, bytes });
    job.earlyBytes += bytes;
    if (job.early.length > unread.messages || job.earlyBytes > unread.bytes) {
      this.#drop(job);
      job.call.finish({
        error: { code: ErrorCode.SERVER_BUSY, message: unreadOverflow(unread).message },
      });
    }
  }

  /**
   * Gives `job` to the home thread (`shared`), or to the sticky worker or the
   * best one with room; false if none has room.
   */
  #place(job: Job, shared: boolean): boolean {
    let slot: Slot;
    if (shared) {
      slot = this.#home!;
      if (!hasRoom(slot, job.cost)) return false;
    } else if (this.#sticky && sticks(this.#sticky, job.cost)) {
      slot = this.#sticky;
    } else {
      const index = pick(this.#slots, this.#cursor++, job.cost);
      if (index === undefined) return false;
      slot = this.#slots[index];
      this.#sticky = slot;
    }
    job.slot = slot;
    slot.jobs.set(job.id, job);
    slot.queued++;
    slot.queuedUs += job.cost;
    const { call } = job;
    this.#queue(slot, {
      type: "run",
      job: job.id,
      command: call.command,
      params: call.params,
      conversational: call.conversational,
    });
    if (job.early) {
      for (const { data, bytes } of job.early) {
        this.#queue(slot, { type: "msg", job: job.id, data, bytes });
      }
      job.early = undefined;
    }
    if (job.cancelled !== undefined) {
      this.#queue(slot, { type: "cancel", job: job.id, message: job.cancelled });
    }
    return true;
  }

  /** Gives waiting jobs, in their fair order, to workers that have room. */
  #pump(): void {
    this.#pumpQueue(this.#waiting, false);
    if (this.#home) this.#pumpQueue(this.#homeWaiting, true);
  }

  #pumpQueue(waiting: FairQueue<Job>, shared: boolean): void {
    while (waiting.size > 0) {
      const job = waiting.peek()!;
      if (job.gone) waiting.shift();
      else if (this.#place(job, shared)) waiting.shift();
      else return;
    }
  }

  /** Notes that `job`'s synchronous part is over: it no longer fills its worker's window. */
  #began(slot: Slot, job: Job): void {
    if (job.started) return;
    job.started = true;
    slot.queued--;
    slot.queuedUs -= job.cost;
  }

  #learn(command: string, cost: number): void {
    this.#costs.set(command, nextCost(this.#costs.get(command) ?? 0, cost));
  }

  /** Stops every worker; calls still running fail with a shutting-down error. */
  close(): Promise<void> {
    this.#closed = true;
    for (const cancel of this.#respawns) cancel();
    this.#respawns.clear();
    const error = {
      code: ErrorCode.SHUTTING_DOWN,
      message: "The server shut down before the call finished",
    };
    for (const job of [...this.#waiting.drain(), ...this.#homeWaiting.drain()]) {
      if (job.gone) continue;
      this.#drop(job);
      job.call.finish({ error });
    }
    for (const slot of this.#all()) this.#retire(slot, error);
    return Promise.resolve();
  }

  #spawn(index: number, failures: number, home = false): Slot {
    const name = home ? "tcpy-home" : `tcpy-worker-${index}`;
    const slot = new Slot(this.#spawnEndpoint(name), index, failures, home);
    const { endpoint } = slot;
    endpoint.onmessage = (event) => this.#receive(slot, event.data);
    endpoint.onerror = (event) => {
      // Without preventDefault an uncaught error in a worker ends the process.
      event.preventDefault();
      this.#crashed(slot, event.message || "uncaught error");
    };
    endpoint.onmessageerror = () => this.#crashed(slot, "a message could not be deserialized");
    const limit = this.#options.startTimeout ?? 10_000;
    slot.cancelStart = this.#clock.after(limit, () => {
      this.#startFailed(slot, `did not load ${this.#options.module} within ${limit} ms`);
    });
    // After the timer: an endpoint may answer at once (a fake in tests).
    endpoint.postMessage(this.#init);
    return slot;
  }

  #receive(slot: Slot, batch: FromWorker[]): void {
    for (const message of batch) {
      switch (message.type) {
        case "began": {
          // An async handler's synchronous part is over: its worker has room again.
          const job = slot.jobs.get(message.job);
          if (!job) break;
          job.slice = message.cost;
          this.#began(slot, job);
          this.#learn(job.call.command, message.cost);
          break;
        }
        case "done": {
          const job = slot.jobs.get(message.job);
          if (!job) break;
          slot.jobs.delete(message.job);
          this.#began(slot, job);
          const async = message.cost < 0;
          if (!async) this.#learn(job.call.command, message.cost);
          if (job.abandoned) break;
          this.#inFlight--;
          job.call.finish(message.outcome, async ? job.slice : message.cost, async);
          break;
        }
        case "pong":
          slot.pings.get(message.ping)?.();
          slot.pings.delete(message.ping);
          break;
        case "send": {
          // Acknowledged once the connection has room, so the handler's
          // send() waits while its client does not read.
          const { job, json } = message;
          const entry = slot.jobs.get(job);
          const wait = entry && !entry.abandoned ? entry.call.send(json) : undefined;
          if (!wait) this.#queue(slot, { type: "sent", job, bytes: json.length });
          else wait.then(() => this.#queue(slot, { type: "sent", job, bytes: json.length }));
          break;
        }
        case "overflow": {
          const job = slot.jobs.get(message.job);
          if (job && !job.abandoned) {
            // The handler may still be running: count it as abandoned.
            job.abandoned = true;
            this.#inFlight--;
            job.call.finish({ error: { code: ErrorCode.SERVER_BUSY, message: message.message } });
          }
          break;
        }
        case "ready":
          slot.cancelStart?.();
          slot.ready = true;
          slot.readyAt = this.#clock.now();
          slot.started.resolve();
          this.#flushSlot(slot);
          break;
        case "failed":
          this.#startFailed(slot, message.message);
          break;
        case "exit":
          this.#crashed(
            slot,
            "the worker exited",
            message.job === undefined ? undefined : slot.jobs.get(message.job)?.call.command,
          );
          break;
      }
    }
    this.#pump();
  }

  #queue(slot: Slot, message: ToWorker): void {
    slot.outbox.push(message);
    if (!this.#scheduled) {
      this.#scheduled = true;
      queueMicrotask(() => this.#flush());
    }
  }

  #flush(): void {
    this.#scheduled = false;
    this.#sticky = undefined;
    for (const slot of this.#slots) this.#flushSlot(slot);
    if (this.#home) this.#flushSlot(this.#home);
  }

  #flushSlot(slot: Slot): void {
    if (!slot.ready || slot.dead || slot.outbox.length === 0) return;
    const batch = slot.outbox;
    slot.outbox = [];
    try {
      slot.endpoint.postMessage(batch);
    } catch {
      // One message could not be cloned: send the rest one by one and fail it alone.
      for (const message of batch) {
        try {
          slot.endpoint.postMessage([message]);
        } catch (error) {
          if (message.type === "ping") continue;
          const job = slot.jobs.get(message.job);
          if (!job || !slot.jobs.delete(message.job)) continue;
          this.#began(slot, job);
          if (job.abandoned) continue;
          this.#inFlight--;
          job.call.finish({
            error: {
              code: ErrorCode.INVALID_PARAMS,
              message: `Invalid params: cannot pass them to a worker: ${(error as Error).message}`,
            },
          });
        }
      }
      // The failed calls left room in the window.
      this.#pump();
    }
  }

  /**
   * Pings a worker whose call timed out. A worker stuck in a CPU loop cannot
   * answer, and `terminate()` cannot stop it (ARCHITECTURE.md): it is written off
   * and a replacement takes its place, so new calls are not queued behind it.
   */
  #probe(slot: Slot, command: string): void {
    if (slot.dead || !slot.ready) return;
    const ping = this.#nextPing++;
    const limit = this.#options.stuckAfter ?? 1000;
    slot.pings.set(
      ping,
      this.#clock.after(limit, () => {
        slot.pings.delete(ping);
        this.#crashed(
          slot,
          `written off: a "${command}" call ran past the handler timeout and the worker ` +
            `did not answer a ping within ${limit} ms`,
          command,
        );
      }),
    );
    this.#queue(slot, { type: "ping", ping });
  }

  #retire(slot: Slot, error: WireError): void {
    if (slot.dead) return;
    slot.dead = true;
    slot.cancelStart?.();
    for (const cancel of slot.pings.values()) cancel();
    slot.pings.clear();
    slot.endpoint.terminate();
    slot.started.promise.catch(() => {});
    slot.started.reject(new Error(error.message));
    const jobs = [...slot.jobs.values()].filter((job) => !job.abandoned);
    slot.jobs.clear();
    slot.queued = slot.queuedUs = 0;
    this.#inFlight -= jobs.length;
    slot.outbox = [];
    for (const job of jobs) job.call.finish({ error });
  }

  #crashed(slot: Slot, reason: string, culprit?: string): void {
    if (slot.dead) return;
    const now = this.#clock.now();
    // Without a known culprit, blame a command only if it is all the worker ran.
    const commands = new Set([...slot.jobs.values()].map((job) => job.call.command));
    culprit ??= commands.size === 1 ? [...commands][0] : undefined;
    if (culprit !== undefined) this.#breaker.strike(culprit, now);
    let lost = 0;
    for (const job of slot.jobs.values()) if (!job.abandoned) lost++;
    this.#retire(slot, { code: ErrorCode.WORKER_CRASHED, message: `Worker crashed: ${reason}` });
    (this.#options.log ?? console.error)(
      `tcpy: worker ${slot.index} crashed (${reason})` +
        (culprit === undefined ? "" : ` running "${culprit}"`) +
        `; ${lost} call${lost === 1 ? "" : "s"} failed with -32004; a replacement starts`,
    );
    // A worker that dies soon after starting, of no command's doing, is a
    // failed start: back off. A crash a command is blamed for is the
    // breaker's business: replace at once, so the other commands keep
    // their workers while it trips.
    const quick = !slot.ready || now - slot.readyAt < QUICK_CRASH_MS;
    this.#replace(slot, quick && culprit === undefined ? slot.failures + 1 : 0);
  }

  #startFailed(slot: Slot, reason: string): void {
    if (slot.dead) return;
    this.#retire(slot, {
      code: ErrorCode.WORKER_CRASHED,
      message: `Worker could not start: ${reason}`,
    });
    this.#replace(slot, slot.failures + 1);
  }

  /** Puts a new worker in a dead one's place; backs off while starts keep failing. */
  #replace(old: Slot, failures: number): void {
    if (this.#closed || this.#slotAt(old) !== old) return;
    // During start() a worker that never loaded fails start() itself.
    if (this.#starting && !old.ready) return;
    const delay = failures === 0 ? 0 : backoffDelay(failures - 1, RESTART_DELAY, () => 1);
    const cancel = this.#clock.after(delay, () => {
      this.#respawns.delete(cancel);
      if (this.#closed || this.#slotAt(old) !== old) return;
      const slot = this.#spawn(old.index, failures, old.home);
      if (old.home) this.#home = slot;
      else this.#slots[old.index] = slot;
    });
    this.#respawns.add(cancel);
  }

  /** The slot now in `slot`'s place (itself, unless it was replaced). */
  #slotAt(slot: Slot): Slot | undefined {
    return slot.home ? this.#home : this.#slots[slot.index];
  }
}

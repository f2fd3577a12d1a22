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
import { pick, sticks } from "./balancer.ts";
import { CrashBreaker } from "./crash_breaker.ts";
import {
  type CallLimits,
  type Executor,
  type Invocation,
  NO_CALL_LIMITS,
  type Task,
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

/** One worker, as the pool sees it. */
class Slot {
  readonly jobs = new Map<number, Invocation>();
  outbox: ToWorker[] = [];
  ready = false;
  dead = false;
  readonly started = Promise.withResolvers<void>();
  /** When the worker became ready (ms since epoch), 0 until it is. */
  readyAt = 0;
  /** Cancels the start timeout. */
  cancelStart: (() => void) | undefined;
  /** Calls given up on but possibly still running there. */
  abandoned = 0;
  /** Outstanding liveness pings: number → cancels the timer that writes the worker off. */
  readonly pings = new Map<number, () => void>();

  constructor(
    readonly endpoint: WorkerEndpoint,
    readonly index: number,
    readonly failures: number,
  ) {}

  /** Calls running or queued there, including abandoned ones still running. */
  get load(): number {
    return this.jobs.size + this.abandoned;
  }
}

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

  /** Number of calls running or queued in the workers. */
  get inFlight(): number {
    return this.#inFlight;
  }

  /**
   * Starts every worker and waits until each has loaded the handlers.
   *
   * @throws {Error} If a worker cannot load them (all workers are stopped).
   */
  async start(): Promise<void> {
    for (let i = 0; i < this.#options.size; i++) this.#slots.push(this.#spawn(i, 0));
    try {
      await Promise.all(this.#slots.map((slot) => slot.started.promise));
    } catch (error) {
      await this.close();
      throw error;
    }
    this.#starting = false;
  }

  /** Queues `call` on the least busy worker. */
  run(call: Invocation): Task {
    if (this.#breaker.armed) {
      const refused = this.#breaker.refusal(call.command, this.#clock.now());
      if (refused) {
        call.finish({ error: refused });
        return { deliver() {}, cancel() {}, abandon() {} };
      }
    }
    let slot = this.#sticky;
    if (!slot || !sticks(slot, slot.outbox.length, this.#slots)) {
      const index = pick(this.#slots, this.#cursor++);
      slot = index === undefined ? undefined : this.#slots[index];
      this.#sticky = slot;
    }
    if (!slot) {
      call.finish({
        error: {
          code: ErrorCode.WORKER_CRASHED,
          message: "No worker is running: all are restarting",
        },
      });
      return { deliver() {}, cancel() {}, abandon() {} };
    }
    const target = slot;
    const job = this.#nextJob++;
    slot.jobs.set(job, call);
    this.#inFlight++;
    this.#queue(slot, {
      type: "run",
      job,
      command: call.command,
      params: call.params,
      conversational: call.conversational,
    });
    return {
      deliver: (data, bytes) => {
        if (target.jobs.has(job)) this.#queue(target, { type: "msg", job, data, bytes });
      },
      cancel: (reason) => {
        if (target.jobs.has(job)) {
          this.#queue(target, { type: "cancel", job, message: reason.message });
        }
      },
      abandon: (reason) => {
        if (!target.jobs.delete(job)) return;
        this.#inFlight--;
        target.abandoned++;
        this.#queue(target, { type: "cancel", job, message: reason.message });
        this.#probe(target, call.command);
      },
    };
  }

  /** Stops every worker; calls still running fail with a shutting-down error. */
  close(): Promise<void> {
    this.#closed = true;
    for (const cancel of this.#respawns) cancel();
    this.#respawns.clear();
    for (const slot of this.#slots) {
      this.#retire(slot, {
        code: ErrorCode.SHUTTING_DOWN,
        message: "The server shut down before the call finished",
      });
    }
    return Promise.resolve();
  }

  #spawn(index: number, failures: number): Slot {
    const slot = new Slot(this.#spawnEndpoint(`tcpy-worker-${index}`), index, failures);
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
        case "done": {
          const call = slot.jobs.get(message.job);
          if (call) {
            slot.jobs.delete(message.job);
            this.#inFlight--;
            call.finish(message.outcome, message.cost);
          } else if (slot.abandoned > 0) {
            slot.abandoned--;
          }
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
          const wait = slot.jobs.get(job)?.send(json);
          if (!wait) this.#queue(slot, { type: "sent", job, bytes: json.length });
          else wait.then(() => this.#queue(slot, { type: "sent", job, bytes: json.length }));
          break;
        }
        case "overflow": {
          const call = slot.jobs.get(message.job);
          if (call) {
            // The handler may still be running: count it as abandoned.
            slot.jobs.delete(message.job);
            this.#inFlight--;
            slot.abandoned++;
            call.finish({ error: { code: ErrorCode.SERVER_BUSY, message: message.message } });
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
            message.job === undefined ? undefined : slot.jobs.get(message.job)?.command,
          );
          break;
      }
    }
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
          const call = slot.jobs.get(message.job);
          if (slot.jobs.delete(message.job)) this.#inFlight--;
          call?.finish({
            error: {
              code: ErrorCode.INVALID_PARAMS,
              message: `Invalid params: cannot pass them to a worker: ${(error as Error).message}`,
            },
          });
        }
      }
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
    const jobs = [...slot.jobs.values()];
    slot.jobs.clear();
    this.#inFlight -= jobs.length;
    slot.outbox = [];
    for (const call of jobs) call.finish({ error });
  }

  #crashed(slot: Slot, reason: string, culprit?: string): void {
    if (slot.dead) return;
    const now = this.#clock.now();
    // Without a known culprit, blame a command only if it is all the worker ran.
    const commands = new Set([...slot.jobs.values()].map((call) => call.command));
    culprit ??= commands.size === 1 ? [...commands][0] : undefined;
    if (culprit !== undefined) this.#breaker.strike(culprit, now);
    const lost = slot.jobs.size;
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
    if (this.#closed || this.#slots[old.index] !== old) return;
    // During start() a worker that never loaded fails start() itself.
    if (this.#starting && !old.ready) return;
    const delay = failures === 0 ? 0 : backoffDelay(failures - 1, RESTART_DELAY, () => 1);
    const cancel = this.#clock.after(delay, () => {
      this.#respawns.delete(cancel);
      if (this.#closed || this.#slots[old.index] !== old) return;
      this.#slots[old.index] = this.#spawn(old.index, failures);
    });
    this.#respawns.add(cancel);
  }
}

/**
 * The worker pool: runs handlers in Deno Web Workers. Calls queued in the
 * same tick go to a worker in one `postMessage` (a round trip costs ~150 µs
 * at low load, ARCHITECTURE.md), and each worker answers in batches too.
 *
 * Faults stay contained: a worker's uncaught error is caught here (otherwise
 * it kills the process), only that worker's calls fail, and a replacement
 * takes its place, with backoff if replacements keep failing to start.
 *
 * @module
 */

import { ErrorCode, type WireError } from "../errors.ts";
import type { HandlerClass } from "../handler.ts";
import { backoffDelay } from "./backoff.ts";
import {
  type Call,
  type CallLimits,
  type Executor,
  NO_CALL_LIMITS,
  type Task,
} from "./executor.ts";
import type { FromWorker, InitMessage, ToWorker } from "./worker_messages.ts";

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
}

const WORKER_URL = new URL("./worker.ts", import.meta.url);
// Never called: a static reference that makes `deno compile` embed the
// worker entry, which it cannot see inside `new Worker(url)`.
export const embedWorker = (): Promise<unknown> => import("./worker.ts");
const MAX_RESTART_DELAY = 5_000;
/** A worker that dies sooner than this after it started counts as a failed start. */
const QUICK_CRASH_MS = 2_000;
/** A command that crashes this many workers within {@linkcode STRIKE_WINDOW_MS}... */
const STRIKES = 3;
const STRIKE_WINDOW_MS = 10_000;
/** ...is refused for this long (doubling while it keeps doing it, up to a minute). */
const COOL_DOWN_MS = 5_000;
const MAX_COOL_DOWN_MS = 60_000;
/** Most calls of one tick sent to the same worker before spreading to the next. */
const STICKY_BATCH = 16;

class Slot {
  readonly worker: Worker;
  readonly jobs = new Map<number, Call>();
  outbox: ToWorker[] = [];
  ready = false;
  dead = false;
  readonly started = Promise.withResolvers<void>();
  /** When the worker became ready (ms since epoch), 0 until it is. */
  readyAt = 0;
  timer: ReturnType<typeof setTimeout> | undefined;
  /** Calls given up on but possibly still running there. */
  abandoned = 0;
  /** Outstanding liveness pings: number → timer that writes the worker off. */
  readonly pings = new Map<number, ReturnType<typeof setTimeout>>();

  constructor(readonly index: number, readonly failures: number) {
    this.worker = new Worker(WORKER_URL, { type: "module", name: `tcpy-worker-${index}` });
  }
}

/** An {@linkcode Executor} backed by `size` Web Workers. */
export class WorkerPool implements Executor {
  readonly #options: PoolOptions;
  readonly #init: InitMessage;
  readonly #slots: Slot[] = [];
  #nextJob = 1;
  #nextPing = 1;
  #inFlight = 0;
  #scheduled = false;
  #sticky: Slot | undefined;
  /** Where the next search for an idle worker starts, so ties rotate. */
  #cursor = 0;
  /** Per command: times it crashed a worker, and until when it is refused. */
  readonly #strikes = new Map<string, { times: number[]; until: number; coolDown: number }>();
  #closed = false;
  #starting = true;
  readonly #timers = new Set<ReturnType<typeof setTimeout>>();

  constructor(options: PoolOptions) {
    this.#options = options;
    this.#init = {
      t: "init",
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
  run(call: Call): Task {
    if (this.#strikes.size > 0) {
      const refused = this.#refusal(call.command);
      if (refused) {
        call.finish({ error: refused });
        return { deliver() {}, cancel() {}, abandon() {} };
      }
    }
    // Calls queued in the same tick stick to one worker while it is not much
    // busier than the least busy one: fewer, bigger postMessage batches.
    let slot = this.#sticky;
    if (
      !slot || slot.dead || !slot.ready || slot.outbox.length >= STICKY_BATCH ||
      this.#load(slot) > this.#leastLoad() + STICKY_BATCH
    ) {
      slot = this.#pick();
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
      t: "run",
      job,
      command: call.command,
      params: call.params,
      talk: call.conversational,
    });
    return {
      deliver: (data, bytes) => {
        if (target.jobs.has(job)) this.#queue(target, { t: "msg", job, data, bytes });
      },
      cancel: (reason) => {
        if (target.jobs.has(job)) {
          this.#queue(target, { t: "cancel", job, message: reason.message });
        }
      },
      abandon: (reason) => {
        if (!target.jobs.delete(job)) return;
        this.#inFlight--;
        target.abandoned++;
        this.#queue(target, { t: "cancel", job, message: reason.message });
        this.#probe(target, call.command);
      },
    };
  }

  /** Calls running or queued on a worker, including abandoned ones still running. */
  #load(slot: Slot): number {
    return slot.jobs.size + slot.abandoned;
  }

  #leastLoad(): number {
    let least = Infinity;
    for (const slot of this.#slots) {
      if (!slot.dead && slot.ready) least = Math.min(least, this.#load(slot));
    }
    return least;
  }

  /**
   * The least busy worker that has loaded; else any live one (its calls wait
   * for it). Ties rotate, so calls one at a time visit every worker (module
   * state differs per worker, and tests should see that).
   */
  #pick(): Slot | undefined {
    let best: Slot | undefined;
    const n = this.#slots.length;
    const from = this.#cursor++ % n;
    for (let i = 0; i < n; i++) {
      const slot = this.#slots[(from + i) % n];
      if (slot.dead) continue;
      if (
        !best || (slot.ready && (!best.ready || this.#load(slot) < this.#load(best)))
      ) best = slot;
    }
    return best;
  }

  /** Stops every worker; calls still running fail with a shutting-down error. */
  close(): Promise<void> {
    this.#closed = true;
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    for (const slot of this.#slots) {
      this.#retire(slot, {
        code: ErrorCode.SHUTTING_DOWN,
        message: "The server shut down before the call finished",
      });
    }
    return Promise.resolve();
  }

  #spawn(index: number, failures: number): Slot {
    const slot = new Slot(index, failures);
    const { worker } = slot;
    worker.onmessage = (event: MessageEvent<FromWorker[]>) => this.#receive(slot, event.data);
    worker.onerror = (event: ErrorEvent) => {
      // Without preventDefault an uncaught error in a worker ends the process.
      event.preventDefault();
      this.#crashed(slot, event.message || "uncaught error");
    };
    worker.onmessageerror = () => this.#crashed(slot, "a message could not be deserialized");
    worker.postMessage(this.#init);
    const limit = this.#options.startTimeout ?? 10_000;
    slot.timer = setTimeout(() => {
      this.#startFailed(slot, `did not load ${this.#options.module} within ${limit} ms`);
    }, limit);
    return slot;
  }

  #receive(slot: Slot, batch: FromWorker[]): void {
    for (const message of batch) {
      switch (message.t) {
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
          clearTimeout(slot.pings.get(message.n));
          slot.pings.delete(message.n);
          break;
        case "send": {
          // Acknowledged once the connection has room, so the handler's
          // send() waits while its client does not read.
          const { job, json } = message;
          const wait = slot.jobs.get(job)?.send(json);
          if (!wait) this.#queue(slot, { t: "sent", job, bytes: json.length });
          else wait.then(() => this.#queue(slot, { t: "sent", job, bytes: json.length }));
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
          clearTimeout(slot.timer);
          slot.ready = true;
          slot.readyAt = Date.now();
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
      slot.worker.postMessage(batch);
    } catch {
      // One message could not be cloned: send the rest one by one and fail it alone.
      for (const message of batch) {
        try {
          slot.worker.postMessage([message]);
        } catch (error) {
          if (message.t === "ping") continue;
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
    const n = this.#nextPing++;
    const limit = this.#options.stuckAfter ?? 1000;
    slot.pings.set(
      n,
      setTimeout(() => {
        slot.pings.delete(n);
        this.#crashed(
          slot,
          `written off: a "${command}" call ran past the handler timeout and the worker ` +
            `did not answer a ping within ${limit} ms`,
        );
      }, limit),
    );
    this.#queue(slot, { t: "ping", n });
  }

  #retire(slot: Slot, error: WireError): void {
    if (slot.dead) return;
    slot.dead = true;
    clearTimeout(slot.timer);
    for (const timer of slot.pings.values()) clearTimeout(timer);
    slot.pings.clear();
    slot.worker.terminate();
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
    // Without a known culprit, blame a command only if it is all the worker ran.
    const commands = new Set([...slot.jobs.values()].map((call) => call.command));
    culprit ??= commands.size === 1 ? [...commands][0] : undefined;
    if (culprit !== undefined) this.#strike(culprit);
    this.#retire(slot, { code: ErrorCode.WORKER_CRASHED, message: `Worker crashed: ${reason}` });
    // A worker that dies soon after starting is a failed start: back off.
    const quick = !slot.ready || Date.now() - slot.readyAt < QUICK_CRASH_MS;
    this.#replace(slot, quick ? slot.failures + 1 : 0);
  }

  /** Counts a crash against `command`; enough of them in a short time refuse it for a while. */
  #strike(command: string): void {
    const now = Date.now();
    let record = this.#strikes.get(command);
    if (!record) this.#strikes.set(command, record = { times: [], until: 0, coolDown: 0 });
    record.times = record.times.filter((t) => now - t < STRIKE_WINDOW_MS);
    record.times.push(now);
    if (record.times.length < STRIKES) return;
    record.coolDown = record.until > 0 && now - record.until < STRIKE_WINDOW_MS
      ? Math.min(MAX_COOL_DOWN_MS, record.coolDown * 2)
      : COOL_DOWN_MS;
    record.until = now + record.coolDown;
    record.times = [];
  }

  /** The error for a call to a command that is cooling down after crashing workers. */
  #refusal(command: string): WireError | undefined {
    const record = this.#strikes.get(command);
    if (!record || record.until === 0) return undefined;
    const left = record.until - Date.now();
    if (left <= 0) return undefined;
    return {
      code: ErrorCode.WORKER_CRASHED,
      message: `Command "${command}" is refused for ${Math.ceil(left / 1000)} s: ` +
        `it crashed ${STRIKES} workers within ${STRIKE_WINDOW_MS / 1000} s`,
    };
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
    const delay = failures === 0
      ? 0
      : backoffDelay(failures - 1, { baseDelay: 100, maxDelay: MAX_RESTART_DELAY }, () => 1);
    const respawn = () => {
      this.#timers.delete(timer);
      if (this.#closed || this.#slots[old.index] !== old) return;
      this.#slots[old.index] = this.#spawn(old.index, failures);
    };
    const timer = setTimeout(respawn, delay);
    this.#timers.add(timer);
  }
}

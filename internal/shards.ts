/**
 * The main thread's side of the I/O threads ("shards"): starts them on one
 * port, carries their pooled calls to the worker pool, sums their counts,
 * replaces one that dies (with backoff) and closes them all.
 *
 * @module
 */

import { CallTimeoutError, ConnectionClosedError } from "../errors.ts";
import type { HandlerClass } from "../handler.ts";
import { bind } from "./acceptor.ts";
import { backoffDelay } from "./backoff.ts";
import type { Observer } from "./connection.ts";
import type { Executor, Task } from "./executor.ts";
import type { CommandCounters } from "./observe.ts";
import type { ResolvedServerOptions } from "./options.ts";
import type { FromShard, ShardInit, ShardStatus, ToShard } from "./shard_messages.ts";

const SHARD_URL = new URL("./shard.ts", import.meta.url);
// Never called: a static reference that makes `deno compile` embed the entry.
export const embedShard = (): Promise<unknown> => import("./shard.ts");

/** How the shards are built. */
export interface ShardSetOptions {
  count: number;
  module: string;
  options: ResolvedServerOptions;
  commands: ReadonlyMap<string, HandlerClass>;
  pool: Executor | undefined;
  /** The main thread's hooks, told of the shards' calls and failures. */
  observer: Observer;
}

class Shard {
  readonly worker: Worker;
  readonly tasks = new Map<number, Task>();
  readonly status = Promise.withResolvers<number>();
  readonly closed = Promise.withResolvers<void>();
  connections = 0;
  inFlight = 0;
  dead = false;
  outbox: ToShard[] = [];

  constructor(readonly index: number, readonly failures: number) {
    this.worker = new Worker(SHARD_URL, { type: "module", name: `tcpy-io-${index}` });
    this.status.promise.catch(() => {});
  }
}

/** N I/O threads serving one port. */
export class ShardSet {
  readonly #config: ShardSetOptions;
  readonly #shards: Shard[] = [];
  #port = 0;
  #closing = false;
  #started = false;
  #request = 0;
  readonly #counters = new Map<
    number,
    { rows: [string, CommandCounters][][]; waiting: Set<Shard>; done: () => void }
  >();
  readonly #timers = new Set<ReturnType<typeof setTimeout>>();

  constructor(config: ShardSetOptions) {
    this.#config = config;
  }

  /** Number of I/O threads. */
  get size(): number {
    return this.#config.count;
  }

  /** Open connections, as the shards last reported. */
  get connections(): number {
    return this.#shards.reduce((sum, shard) => sum + shard.connections, 0);
  }

  /** Calls in flight, as the shards last reported. */
  get inFlight(): number {
    return this.#shards.reduce((sum, shard) => sum + shard.inFlight, 0);
  }

  /**
   * Starts the first shard (which picks the port when 0 was asked for),
   * then the others on the same port.
   *
   * @returns Where they listen.
   */
  async start(): Promise<{ hostname: string; port: number }> {
    const { count, options } = this.#config;
    if (options.port !== 0 && !options.reusePort) {
      // Every I/O thread listens with SO_REUSEPORT, which would let a second
      // server on the same port start and take half the clients: bind once
      // without it, so a taken port fails as it does for one thread.
      bind(options, options.port, false).close();
    }
    try {
      const first = this.#spawn(0, 0, options.port);
      this.#shards.push(first);
      this.#port = await first.status.promise;
      for (let i = 1; i < count; i++) this.#shards.push(this.#spawn(i, 0, this.#port));
      await Promise.all(this.#shards.map((shard) => shard.status.promise));
    } catch (error) {
      await this.close(0);
      throw error;
    }
    this.#started = true;
    const hostname = options.host === "localhost" ? "127.0.0.1" : options.host;
    return { hostname, port: this.#port };
  }

  /** Every live shard's per-command counters. */
  async stats(): Promise<[string, CommandCounters][][]> {
    const live = this.#shards.filter((shard) => !shard.dead);
    if (live.length === 0) return [];
    const request = ++this.#request;
    const { promise, resolve } = Promise.withResolvers<void>();
    const entry = {
      rows: [] as [string, CommandCounters][][],
      waiting: new Set(live),
      done: resolve,
    };
    this.#counters.set(request, entry);
    for (const shard of live) this.#send(shard, { type: "stats", request });
    // A shard stuck in a handler cannot answer: report what the others said.
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([promise, new Promise((r) => timer = setTimeout(r, 1000))]);
    clearTimeout(timer);
    this.#counters.delete(request);
    return entry.rows;
  }

  /** Drains every shard (calls in flight get up to `grace` ms), then stops them. */
  async close(grace: number): Promise<void> {
    this.#closing = true;
    for (const timer of this.#timers) clearTimeout(timer);
    const live = this.#shards.filter((shard) => !shard.dead);
    for (const shard of live) this.#send(shard, { type: "close", grace });
    // A shard stuck in a handler cannot answer: give up after the grace
    // period and the linger.
    let timer: ReturnType<typeof setTimeout> | undefined;
    const limit = grace + this.#config.options.linger + 1000;
    await Promise.race([
      Promise.all(live.map((shard) => shard.closed.promise)),
      new Promise((resolve) => timer = setTimeout(resolve, limit)),
    ]);
    clearTimeout(timer);
    for (const shard of this.#shards) this.#retire(shard);
  }

  #spawn(index: number, failures: number, port: number): Shard {
    const shard = new Shard(index, failures);
    const { module, options, commands, pool, count } = this.#config;
    const { onListen: _, onError: _e, onCall: _c, ...plain } = options;
    shard.worker.onmessage = (event: MessageEvent<ShardStatus | FromShard[]>) => {
      const data = event.data;
      if (Array.isArray(data)) this.#receive(shard, data);
      else if (data.type === "listening") shard.status.resolve(data.port);
      else if (data.type === "failed") this.#failed(shard, data.message, data.name);
      else shard.closed.resolve();
    };
    shard.worker.onerror = (event: ErrorEvent) => {
      // Without preventDefault an uncaught error in a worker ends the process.
      event.preventDefault();
      this.#failed(shard, event.message || "uncaught error");
    };
    const init: ShardInit = {
      type: "init",
      module,
      commands: Object.fromEntries([...commands].map(([name, cls]) => [name, cls.name])),
      options: plain,
      port,
      pooled: pool !== undefined,
      shards: count,
      calls: this.#config.observer.onCall !== undefined,
    };
    shard.worker.postMessage(init);
    return shard;
  }

  #receive(shard: Shard, batch: FromShard[]): void {
    const pool = this.#config.pool;
    for (const message of batch) {
      switch (message.type) {
        case "run": {
          const { job, command, params, talk, owner, group } = message;
          if (!pool) break;
          const task = pool.run({
            command,
            handler: this.#config.commands.get(command)!,
            params,
            conversational: talk,
            // Connection numbers are per I/O thread.
            owner: `${shard.index}/${owner}`,
            group,
            send: (json) => {
              // No backpressure across this hop: the shard's connection
              // cuts a client that falls too far behind.
              this.#send(shard, { type: "send", job, json });
              return undefined;
            },
            finish: (outcome, cost, async) => {
              shard.tasks.delete(job);
              this.#send(shard, { type: "done", job, outcome, cost, async });
            },
          });
          shard.tasks.set(job, task);
          break;
        }
        case "msg":
          shard.tasks.get(message.job)?.deliver(message.data, message.bytes);
          break;
        case "cancel":
          shard.tasks.get(message.job)?.cancel(
            new ConnectionClosedError(message.message),
            message.drop,
          );
          break;
        case "abandon":
          shard.tasks.get(message.job)?.abandon(new CallTimeoutError(message.message));
          shard.tasks.delete(message.job);
          break;
        case "stats":
          shard.connections = message.connections;
          shard.inFlight = message.inFlight;
          break;
        case "call":
          tell(this.#config.observer.onCall, message.record);
          break;
        case "failure":
          tell(this.#config.observer.onError, message.event);
          break;
        case "counters": {
          const entry = this.#counters.get(message.request);
          if (!entry) break;
          entry.rows.push(message.rows);
          entry.waiting.delete(shard);
          if (entry.waiting.size === 0) entry.done();
          break;
        }
      }
    }
  }

  #send(shard: Shard, message: ToShard): void {
    if (shard.dead) return;
    if (shard.outbox.length === 0) {
      queueMicrotask(() => {
        const batch = shard.outbox;
        shard.outbox = [];
        if (!shard.dead) shard.worker.postMessage(batch);
      });
    }
    shard.outbox.push(message);
  }

  #retire(shard: Shard): void {
    if (shard.dead) return;
    shard.dead = true;
    // A stats() request waiting for this shard has one answer fewer to wait for.
    for (const entry of this.#counters.values()) {
      if (entry.waiting.delete(shard) && entry.waiting.size === 0) entry.done();
    }
    shard.connections = shard.inFlight = 0;
    shard.worker.terminate();
    shard.status.reject(new Error("the I/O thread stopped"));
    shard.closed.resolve();
    const gone = new ConnectionClosedError("The I/O thread serving this call stopped");
    for (const task of shard.tasks.values()) task.cancel(gone, true);
    shard.tasks.clear();
  }

  /** A shard that failed to start or crashed: its connections are lost; replace it. */
  #failed(shard: Shard, reason: string, name = "Error"): void {
    if (shard.dead) return;
    // The same class as on the main thread (Deno.errors.AddrInUse, ...).
    const Class = (Deno.errors as unknown as Record<string, ErrorConstructor>)[name] ?? Error;
    shard.status.reject(new Class(`An I/O thread could not start: ${reason}`));
    this.#retire(shard);
    if (this.#closing || !this.#started) return;
    console.error(`tcpy: I/O thread ${shard.index} stopped (${reason}); starting another`);
    const delay = backoffDelay(shard.failures, { baseDelay: 100, maxDelay: 5_000 }, () => 1);
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      if (this.#closing || this.#shards[shard.index] !== shard) return;
      this.#shards[shard.index] = this.#spawn(shard.index, shard.failures + 1, this.#port);
    }, delay);
    this.#timers.add(timer);
  }
}

/** Calls a hook of the user's; what it throws is reported, not passed on. */
function tell<T>(hook: ((event: T) => void) | undefined, event: T): void {
  try {
    hook?.(event);
  } catch (error) {
    console.error("tcpy: an onCall/onError hook threw:", error);
  }
}

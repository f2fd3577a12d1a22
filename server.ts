/**
 * The TCP server: maps command names to handler classes and answers
 * JSON-RPC 2.0 calls, one message per line.
 *
 * @module
 */

import { RESERVED_PREFIX } from "./codec.ts";
import type { Commands, HandlerClass } from "./handler.ts";
import { Acceptor, bind, connectionContext } from "./internal/acceptor.ts";
import type { Observer } from "./internal/connection.ts";
import {
  type CallFailure,
  type CallRecord,
  type CommandStats,
  logFailure,
  StatsTable,
} from "./internal/observe.ts";

export type { CallFailure, CallRecord, CommandStats };
export type {
  ListenAddress,
  ResolvedServerOptions,
  TCPServerOptions,
  TlsOptions,
} from "./internal/options.ts";
export { SERVER_DEFAULTS } from "./internal/options.ts";
import {
  callLimits,
  type ListenAddress,
  type ResolvedServerOptions,
  resolveOptions,
  type TCPServerOptions,
} from "./internal/options.ts";
import { guardThread } from "./internal/guard.ts";
import { WorkerPool } from "./internal/pool.ts";
import { ShardSet } from "./internal/shards.ts";
import { isHandlerClass, loadingRegistry } from "./internal/resolve.ts";

function checkCommands(commands: Commands): Map<string, HandlerClass> {
  if (typeof commands !== "object" || commands === null) {
    throw new TypeError(
      "Cannot listen: server.commands must be an object mapping names to handler classes",
    );
  }
  const map = new Map<string, HandlerClass>();
  for (const [name, cls] of Object.entries(commands)) {
    if (name.startsWith(RESERVED_PREFIX)) {
      throw new TypeError(
        `Cannot listen: command "${name}" uses the reserved prefix "${RESERVED_PREFIX}"`,
      );
    }
    if (!isHandlerClass(cls)) {
      throw new TypeError(
        `Cannot listen: command "${name}" must map to a class that extends TCPHandler`,
      );
    }
    if (cls.shared && cls.inline !== undefined) {
      throw new TypeError(
        `Cannot listen: command "${name}" sets both static shared and static inline; ` +
          "a shared command always runs on the home thread",
      );
    }
    map.set(name, cls);
  }
  return map;
}

/**
 * A tcpy server. Construct it, set `commands`, `await listen()`; stop it
 * with `close()` or `await using`.
 *
 * Handlers run in a pool of `threads` Web Workers (default 4). Each worker
 * imports the module the server was defined in (`module`, by default the
 * main module) and finds the same handler classes there, so keep the
 * server's construction at the module's top level and call `listen()` under
 * `if (import.meta.main)`, as in the example; `listen()` does nothing when
 * a worker imports the module.
 *
 * @example The tutorial server
 * ```ts
 * import assert from "node:assert/strict";
 * import { TCPHandler, TCPServer } from "./mod.ts";
 *
 * class AdditionHandler extends TCPHandler<{ x: number; y: number }> {
 *   execute() {
 *     return this.success({ solution: this.params.x + this.params.y });
 *   }
 * }
 *
 * const server = new TCPServer({ port: 0, threads: 0, onListen() {} });
 * server.commands = { add: AdditionHandler };
 * const { port } = await server.listen();
 * assert.ok(port > 0);
 * await server.close();
 * ```
 */
export class TCPServer {
  /** Command name → handler class; read when `listen()` is called. */
  commands: Commands;
  readonly #options: ResolvedServerOptions;
  #address: ListenAddress | undefined;
  #pool: WorkerPool | undefined;
  /** What accepts and serves connections: the main thread's acceptor, or the I/O threads. */
  #front: Acceptor | ShardSet | undefined;
  /** The hooks and counters every connection reports to. */
  readonly #observer: Observer;
  /** Releases this server's hold on the thread's stray-failure guard. */
  #unguard: (() => void) | undefined;
  #starting: Promise<void> | undefined;
  #closing: Promise<void> | undefined;

  /**
   * Creates a server; nothing is bound until `listen()`.
   *
   * @param options Host, port, commands, threads and limits.
   * @throws {RangeError} If a numeric option is out of range.
   * @throws {TypeError} If `host` is empty.
   */
  constructor(options: TCPServerOptions = {}) {
    this.#options = resolveOptions(options);
    this.#observer = {
      onCall: this.#options.onCall,
      onError: this.#options.onError ?? logFailure,
      stats: this.#options.stats ? new StatsTable() : undefined,
      exposeErrors: this.#options.exposeErrors,
      warned: new Set(),
    };
    this.commands = options.commands ?? {};
    loadingRegistry()?.servers.push(this);
  }

  /** The host the server binds. */
  get host(): string {
    return this.#address?.hostname ?? this.#options.host;
  }

  /** The port: the one asked for, or the real one once listening. */
  get port(): number {
    return this.#address?.port ?? this.#options.port;
  }

  /** The number of worker threads (0: handlers run inline). */
  get threads(): number {
    return this.#options.threads;
  }

  /** Whether the server is listening. */
  get listening(): boolean {
    return this.#front !== undefined && this.#closing === undefined;
  }

  /**
   * Starts the worker pool, binds the port and starts answering. Resolves
   * once the server listens; the server then runs until `close()`.
   *
   * @returns Where the server listens.
   * @throws {TypeError} If `commands` maps a name to something that is not a
   *   handler class, or uses the reserved `tcpy.` prefix.
   * @throws {Error} If a worker cannot load the handler classes, or the port
   *   cannot be bound (`Deno.errors.AddrInUse`, ...).
   */
  async listen(): Promise<ListenAddress> {
    if (loadingRegistry()) {
      // A worker is importing this module to find handler classes: no socket.
      return { hostname: this.#options.host, port: this.#options.port };
    }
    if (this.#starting || this.#closing) {
      throw new Error("Cannot listen: this server was already started");
    }
    const starting = Promise.withResolvers<void>();
    starting.promise.catch(() => {});
    this.#starting = starting.promise;
    try {
      return await this.#start();
    } finally {
      starting.resolve();
    }
  }

  async #start(): Promise<ListenAddress> {
    const commands = checkCommands(this.commands);
    const options = this.#options;
    const module = options.module?.toString() ?? Deno.mainModule;
    const shards = shardCount(options);
    // Shared commands need a home thread of their own wherever more than one
    // thread could run them; a single-threaded server is its own home.
    const home = [...commands.values()].some((cls) => cls.shared) &&
      (options.threads > 0 || shards > 1);
    const needsPool = home ||
      (options.threads > 0 && [...commands.values()].some((cls) => !cls.inline));
    if ((needsPool || shards > 1) && !module) {
      throw new Error(
        "Cannot start the worker threads: there is no main module to load handlers from; " +
          "pass the `module` option or set threads: 0",
      );
    }
    if (needsPool) {
      // Inline commands never run in a worker, so workers need not find them.
      const pooled = new Map([...commands].filter(([, cls]) => !cls.inline));
      const pool = new WorkerPool({
        size: options.threads,
        home,
        module,
        commands: pooled,
        limits: callLimits(options),
      });
      await pool.start();
      if (this.#closing) {
        await pool.close();
        throw new Error("Cannot listen: the server was closed while it started");
      }
      this.#pool = pool;
    }
    try {
      if (shards > 1) {
        const set = new ShardSet({
          count: shards,
          module,
          options,
          commands,
          pool: this.#pool,
          observer: this.#observer,
        });
        this.#address = await set.start();
        this.#front = set;
      } else {
        const listener = bind(options, options.port, options.reusePort);
        const addr = listener.addr as Deno.NetAddr;
        this.#address = { hostname: addr.hostname, port: addr.port };
        this.#front = new Acceptor(
          listener,
          connectionContext(options, commands, this.#pool, this.#observer),
          options,
        );
      }
    } catch (error) {
      await this.#pool?.close();
      throw error;
    }
    if (this.#closing) {
      await this.#front.close(0);
      await this.#pool?.close();
      throw new Error("Cannot listen: the server was closed while it started");
    }
    // Handlers' stray rejections and timer errors must not end the server.
    this.#unguard = guardThread();
    const onListen = options.onListen ?? ((a: ListenAddress) => {
      console.log(`tcpy listening on ${a.hostname}:${a.port}`);
      if (shards === 1 && wantedShards(options) > 1) {
        console.log(
          "tcpy: connections are served by the main thread alone; " +
            'run with --unstable-net (or "unstable": ["net"] in deno.json) for one I/O thread per core',
        );
      }
    });
    onListen({ ...this.#address });
    return { ...this.#address };
  }

  /**
   * Stops the server: stops accepting, lets calls in flight finish (new
   * calls on open connections get a "shutting down" error) for up to
   * `gracePeriod`, then closes every connection and stops the workers.
   * Safe to call more than once.
   *
   * @returns Resolves when nothing of the server is left running.
   */
  close(): Promise<void> {
    this.#closing ??= this.#shutdown();
    return this.#closing;
  }

  /**
   * Same as `close()`, for `await using`.
   *
   * @returns Resolves when nothing of the server is left running.
   */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** Number of open connections (with I/O threads, as they last reported, within ~50 ms). */
  get connections(): number {
    return this.#front?.connections ?? 0;
  }

  /** Number of calls in flight, over all connections (same caveat). */
  get inFlight(): number {
    return this.#front?.inFlight ?? 0;
  }

  /**
   * Calls, errors and latency per command since the server started, over
   * every thread that serves connections. Needs the `stats` option.
   *
   * @returns Per-command figures, by command name.
   * @throws {TypeError} If the server was created without `stats: true`.
   *
   * @example Printing a per-command table
   * ```ts
   * import assert from "node:assert/strict";
   * import { TCPClient, TCPHandler, TCPServer } from "./mod.ts";
   * class Add extends TCPHandler<{ x: number; y: number }> {
   *   static override inline = true;
   *   execute() {
   *     return this.success({ solution: this.params.x + this.params.y });
   *   }
   * }
   * await using server = new TCPServer({ port: 0, threads: 0, stats: true, onListen() {} });
   * server.commands = { add: Add };
   * const { port } = await server.listen();
   * await using client = new TCPClient({ port });
   * await client.execute("add", { x: 1, y: 2 });
   * const stats = await server.stats();
   * assert.equal(stats.add.calls, 1);
   * ```
   */
  async stats(): Promise<Record<string, CommandStats>> {
    const own = this.#observer.stats;
    if (!own) throw new TypeError("Cannot read stats: create the server with stats: true");
    if (!(this.#front instanceof ShardSet)) return own.snapshot();
    const total = new StatsTable();
    total.merge(own.counters);
    for (const rows of await this.#front.stats()) total.merge(rows);
    return total.snapshot();
  }

  /** Threads that accept and read connections: 1 (the main thread) or the I/O threads. */
  get ioThreads(): number {
    return this.#front instanceof ShardSet ? this.#front.size : this.#front ? 1 : 0;
  }

  async #shutdown(): Promise<void> {
    // A listen() in progress sees #closing once its workers are up, and stops.
    await this.#starting;
    await this.#front?.close(this.#options.gracePeriod);
    await this.#pool?.close();
    this.#unguard?.();
  }
}

/**
 * Whether this process may listen with SO_REUSEPORT: Linux, and Deno's
 * unstable net APIs enabled. Trying is no test: without the flag Deno ends
 * the process. `Deno.listenDatagram` exists exactly when they are enabled.
 */
function canReusePort(): boolean {
  return Deno.build.os === "linux" &&
    typeof (Deno as { listenDatagram?: unknown }).listenDatagram === "function";
}

let saidSingle = false;

/** I/O threads asked for, or by default one per core when there is a pool. */
function wantedShards(options: ResolvedServerOptions): number {
  return options.ioThreads || (options.threads > 0 ? navigator.hardwareConcurrency || 1 : 1);
}

/** How many I/O threads to start; 1 means the main thread serves alone. */
function shardCount(options: ResolvedServerOptions): number {
  const asked = wantedShards(options);
  if (asked <= 1) return 1;
  if (canReusePort()) return asked;
  if (!saidSingle && options.ioThreads > 1) {
    saidSingle = true;
    console.error(
      `tcpy: serving connections on the main thread only: ${asked} I/O threads ` +
        'need SO_REUSEPORT (Linux, with --unstable-net or "unstable": ["net"] in deno.json)',
    );
  }
  return 1;
}

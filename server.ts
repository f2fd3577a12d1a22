/**
 * The TCP server: maps command names to handler classes and answers
 * JSON-RPC 2.0 calls, one message per line.
 *
 * @module
 */

import { DEFAULT_MAX_MESSAGE_BYTES } from "./framing.ts";
import { RESERVED_PREFIX } from "./codec.ts";
import type { Commands, HandlerClass } from "./handler.ts";
import { Acceptor, bind, connectionContext } from "./internal/acceptor.ts";
import type { Observer } from "./internal/connection.ts";
import type { CallLimits } from "./internal/executor.ts";
import {
  type CallFailure,
  type CallRecord,
  type CommandStats,
  logFailure,
  StatsTable,
} from "./internal/observe.ts";

export type { CallFailure, CallRecord, CommandStats };
import { guardThread } from "./internal/guard.ts";
import { WorkerPool } from "./internal/pool.ts";
import { ShardSet } from "./internal/shards.ts";
import { isHandlerClass, loadingRegistry } from "./internal/resolve.ts";

/**
 * Where a server listens, as given to `onListen` and returned by `listen()`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { TCPServer } from "./mod.ts";
 * await using server = new TCPServer({ port: 0, threads: 0, onListen() {} });
 * const { hostname, port } = await server.listen();
 * assert.equal(hostname, "127.0.0.1");
 * assert.ok(port > 0);
 * ```
 */
export interface ListenAddress {
  /** The host name or address the server is bound to. */
  hostname: string;
  /** The port, the real one when 0 was asked for. */
  port: number;
}

/**
 * A TLS certificate and key in PEM, inline or from files.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { TlsOptions } from "./server.ts";
 * const tls: TlsOptions = { certFile: "./cert.pem", keyFile: "./key.pem" };
 * assert.ok("certFile" in tls);
 * ```
 */
export type TlsOptions =
  | { cert: string; key: string }
  | { certFile: string; keyFile: string };

/**
 * Options of {@linkcode TCPServer}. Every field is optional; the defaults
 * are the original tcpy's (localhost, 7272, 4 threads) plus the limits in
 * the README's "Limits and faults".
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { TCPServerOptions } from "./server.ts";
 * const options: TCPServerOptions = { port: 0, threads: 2, handlerTimeout: 5_000 };
 * assert.equal(options.threads, 2);
 * ```
 */
export interface TCPServerOptions {
  /**
   * Host name or address to bind. Loopback by default, so a server is not
   * exposed to the network unless asked to be.
   *
   * @default {"localhost"}
   */
  host?: string;
  /**
   * Port to listen on; 0 lets the system pick a free one (read it from
   * `listen()`'s result or `server.port`).
   *
   * @default {7272}
   */
  port?: number;
  /**
   * Command name → handler class. May also be assigned later to
   * `server.commands`, before `listen()`.
   *
   * @default {{}}
   */
  commands?: Commands;
  /**
   * Number of Web Workers that run handlers; 0 runs every handler on the
   * main event loop.
   *
   * @default {4}
   */
  threads?: number;
  /**
   * Threads that accept, read and answer connections ("I/O threads"), each
   * with its own listener on the port (Linux `SO_REUSEPORT`; needs Deno's
   * `--unstable-net` or `"unstable": ["net"]` in deno.json). Inline and
   * measured-cheap commands run on the I/O thread that read the call;
   * pooled ones go to the worker pool. 0: one per CPU core when the
   * platform allows and `threads` > 0, else 1 (the main thread alone, as
   * it says once at start when more were asked for).
   *
   * @default {0}
   */
  ioThreads?: number;
  /**
   * Let the server run commands without `static inline` on the thread that
   * read the call once it has measured them cheap and synchronous (see the
   * README, "Where handlers run"). `false`: such commands always run in the
   * pool.
   *
   * @default {true}
   */
  autoInline?: boolean;
  /**
   * The module the workers import to find the handler classes. The
   * default, the program's main module, is right whenever the server and
   * its handlers are defined in (or imported by) the script Deno runs.
   *
   * @default {Deno.mainModule}
   */
  module?: string | URL;
  /**
   * Largest request line accepted, in bytes. A longer one is answered with
   * error -32003 and the connection is closed after the calls in flight.
   *
   * @default {1048576}
   */
  maxMessageBytes?: number;
  /**
   * Most requests accepted in one JSON-RPC batch.
   *
   * @default {1000}
   */
  maxBatchLength?: number;
  /**
   * How long `close()` waits for calls in flight before it cuts the
   * connections, in milliseconds.
   *
   * @default {10000}
   */
  gracePeriod?: number;
  /**
   * Most connections open at once. The next client is sent a -32001
   * "server busy" error and closed; the others are unaffected.
   *
   * @default {10000}
   */
  maxConnections?: number;
  /**
   * Most calls in flight on one connection. More are answered at once with
   * -32001 "server busy" instead of being queued.
   *
   * @default {1024}
   */
  maxInFlight?: number;
  /**
   * Most calls queued for the worker pool, server-wide. More are answered at
   * once with -32001 "server busy" instead of being queued.
   *
   * @default {16384}
   */
  maxPendingCalls?: number;
  /**
   * Reply bytes a connection may have waiting to be written. While more
   * wait, the server stops reading that connection (backpressure), so a
   * client that sends but never reads cannot make it buffer without bound.
   *
   * @default {4194304}
   */
  maxOutputBytes?: number;
  /**
   * Largest reply line the server writes, in bytes: a result (or a batch's
   * replies together) that would be larger is answered with -32603 instead,
   * and a handler's `send()` of a larger message rejects. The same as the
   * default client's `maxMessageBytes`, so a server never builds a reply its
   * own client would refuse.
   *
   * @default {1048576}
   */
  maxReplyBytes?: number;
  /**
   * Most conversation messages a call may hold that its handler has not
   * `recv()`-ed. A client sending more has the call answered with -32001
   * and ended (the handler's `recv()` rejects, its `signal` aborts).
   *
   * @default {1024}
   */
  maxUnreadMessages?: number;
  /**
   * Most bytes of conversation messages a call may hold unread; past it,
   * as for `maxUnreadMessages`.
   *
   * @default {4194304}
   */
  maxUnreadBytes?: number;
  /**
   * A request line must be complete this many milliseconds after its first
   * byte arrived, or the connection is answered with -32600 and closed
   * (a client dripping a line would otherwise hold its buffer forever).
   * 0: never.
   *
   * @default {30000}
   */
  messageTimeout?: number;
  /**
   * How long a closing connection waits for the client to read its last
   * replies and close, in ms, before the socket is closed anyway.
   *
   * @default {5000}
   */
  linger?: number;
  /**
   * A call still running after this many milliseconds is answered with
   * -32002 and abandoned. A handler on the main thread cannot be stopped;
   * a worker that stops answering is written off and replaced (see the
   * README: a worker stuck in a CPU loop keeps burning its core). 0: never.
   *
   * @default {60000}
   */
  handlerTimeout?: number;
  /**
   * A connection whose pending write makes no progress for this many
   * milliseconds (a client that stopped reading) is cut. 0: never.
   *
   * @default {30000}
   */
  writeTimeout?: number;
  /**
   * A connection with no input and no call in flight for this many
   * milliseconds is closed. Off by default: RPC clients keep connections
   * open between calls, TCP keepalive (always on) finds dead peers, and
   * `maxConnections` bounds what idle clients can hold. 0: never.
   *
   * @default {0}
   */
  idleTimeout?: number;
  /**
   * Serve over TLS: a certificate chain and private key in PEM, given
   * inline (`cert`, `key`) or as file paths (`certFile`, `keyFile`).
   *
   * @default {undefined}
   */
  tls?: TlsOptions;
  /**
   * Require a shared secret: the first message of every connection must be
   * `tcpy.auth` with this secret (see PROTOCOL.md), within
   * `authTimeout` and in at most 4 KiB, or the connection is closed.
   *
   * @default {undefined}
   */
  secret?: string;
  /**
   * Time a connection has to authenticate when `secret` is set, in ms.
   *
   * @default {5000}
   */
  authTimeout?: number;
  /**
   * Lets several processes listen on the same port (Linux `SO_REUSEPORT`:
   * the kernel spreads connections across them). Needs Deno's
   * `--unstable-net` flag; ignored where the platform lacks it.
   *
   * @default {false}
   */
  reusePort?: boolean;
  /**
   * Called for every call the server failed: the handler threw (or
   * rejected), its worker crashed, or it ran past `handlerTimeout`. The
   * default logs one line on stderr with the command, call id, duration,
   * a reference and the stack. With I/O threads it runs on the main thread.
   *
   * @default {logs to stderr}
   */
  onError?: (event: CallFailure) => void;
  /**
   * Called for every finished call (command, outcome, duration,
   * connection): metrics, tracing and access logs in a few lines. Costs a
   * little per call, so off unless set. With I/O threads it runs on the
   * main thread (records are sent there in batches).
   *
   * @default {undefined}
   */
  onCall?: (record: CallRecord) => void;
  /**
   * Whether a handler's thrown error text reaches the client. `false`: the
   * client gets -32603 "Internal error (reference R)" and the `onError`
   * event (and log line) carries the same reference R.
   *
   * @default {true}
   */
  exposeErrors?: boolean;
  /**
   * Keep per-command counters (calls, errors, latency) for `server.stats()`.
   *
   * @default {false}
   */
  stats?: boolean;
  /**
   * Called once the server listens. The default logs
   * `tcpy listening on HOST:PORT` to stdout, as the original did.
   *
   * @default {logs to stdout}
   */
  onListen?: (address: ListenAddress) => void;
}

/** Every option with its default filled in: the one place defaults live. */
export type ResolvedServerOptions =
  & Required<Omit<TCPServerOptions, "commands" | "module" | "tls" | "secret" | Hooks>>
  & Pick<TCPServerOptions, "module" | "tls" | "secret" | Hooks>;

/** The options that are functions: they stay on the main thread. */
type Hooks = "onListen" | "onError" | "onCall";

/** The defaults of {@linkcode TCPServerOptions}. */
export const SERVER_DEFAULTS: Readonly<
  Omit<ResolvedServerOptions, "module" | "tls" | "secret" | Hooks>
> = {
  host: "localhost",
  port: 7272,
  threads: 4,
  ioThreads: 0,
  autoInline: true,
  exposeErrors: true,
  stats: false,
  maxMessageBytes: DEFAULT_MAX_MESSAGE_BYTES,
  maxBatchLength: 1000,
  gracePeriod: 10_000,
  maxConnections: 10_000,
  maxInFlight: 1024,
  maxPendingCalls: 16_384,
  maxOutputBytes: 4 * 1024 * 1024,
  maxReplyBytes: DEFAULT_MAX_MESSAGE_BYTES,
  maxUnreadMessages: 1024,
  maxUnreadBytes: 4 * 1024 * 1024,
  messageTimeout: 30_000,
  linger: 5_000,
  handlerTimeout: 60_000,
  writeTimeout: 30_000,
  idleTimeout: 0,
  authTimeout: 5_000,
  reusePort: false,
};

const MS = 2 ** 31 - 1;
/** Range of each numeric option: [min, max, note for the error message]. */
const RANGES: Record<string, [number, number, string]> = {
  port: [0, 65535, ""],
  threads: [0, 256, " (0 runs handlers inline)"],
  ioThreads: [0, 256, " (0: one per core)"],
  maxMessageBytes: [1, 2 ** 30, ""],
  maxBatchLength: [1, 1_000_000, ""],
  gracePeriod: [0, MS, " ms"],
  maxConnections: [1, 2 ** 24, ""],
  maxInFlight: [1, 2 ** 24, ""],
  maxPendingCalls: [1, 2 ** 24, ""],
  maxOutputBytes: [1, 2 ** 30, ""],
  maxReplyBytes: [1, 2 ** 30, ""],
  maxUnreadMessages: [1, 2 ** 24, ""],
  maxUnreadBytes: [1, 2 ** 30, ""],
  messageTimeout: [0, MS, " ms (0: never)"],
  linger: [0, MS, " ms"],
  handlerTimeout: [0, MS, " ms (0: never)"],
  writeTimeout: [0, MS, " ms (0: never)"],
  idleTimeout: [0, MS, " ms (0: never)"],
  authTimeout: [1, MS, " ms"],
};

/** Fills in defaults and checks every option once. */
function resolveOptions(options: TCPServerOptions): ResolvedServerOptions {
  const resolved = { ...SERVER_DEFAULTS } as ResolvedServerOptions;
  for (const [key, value] of Object.entries(options)) {
    if (value !== undefined && key !== "commands") {
      (resolved as Record<string, unknown>)[key] = value;
    }
  }
  if (typeof resolved.host !== "string" || resolved.host === "") {
    throw new TypeError("Cannot create TCPServer: host must be a non-empty string");
  }
  for (const [name, [min, max, note]] of Object.entries(RANGES)) {
    const value = resolved[name as keyof typeof RANGES & keyof ResolvedServerOptions] as number;
    if (!Number.isSafeInteger(value) || value < min || value > max) {
      throw new RangeError(
        `Cannot create TCPServer with ${name} ${value}: ${name} must be an integer from ${min} to ${max}${note}`,
      );
    }
  }
  if (
    resolved.secret !== undefined && (typeof resolved.secret !== "string" || !resolved.secret)
  ) {
    throw new TypeError("Cannot create TCPServer: secret must be a non-empty string");
  }
  return resolved;
}

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

/** What each call may hold unread and send, from the server's options. */
function callLimits(options: ResolvedServerOptions): CallLimits {
  return {
    unread: { messages: options.maxUnreadMessages, bytes: options.maxUnreadBytes },
    maxSendBytes: options.maxReplyBytes,
  };
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

/**
 * The TCP server: maps command names to handler classes and answers
 * JSON-RPC 2.0 calls, one message per line.
 *
 * @module
 */

import { DEFAULT_MAX_MESSAGE_BYTES } from "./framing.ts";
import { RESERVED_PREFIX } from "./codec.ts";
import type { Commands, HandlerClass } from "./handler.ts";
import { type ConnectionContext, ServerConnection } from "./internal/connection.ts";
import { InlineExecutor } from "./internal/executor.ts";
import { WorkerPool } from "./internal/pool.ts";
import { isHandlerClass, loadingRegistry } from "./internal/resolve.ts";

/** Where a server listens, as given to `onListen` and returned by `listen()`. */
export interface ListenAddress {
  /** The host name or address the server is bound to. */
  hostname: string;
  /** The port, the real one when 0 was asked for. */
  port: number;
}

/** Options of {@linkcode TCPServer}. */
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
   * Lets several processes listen on the same port (Linux `SO_REUSEPORT`:
   * the kernel spreads connections across them). Needs Deno's
   * `--unstable-net` flag; ignored where the platform lacks it.
   *
   * @default {false}
   */
  reusePort?: boolean;
  /**
   * Called once the server listens. The default logs
   * `tcpy listening on HOST:PORT` to stdout, as the original did.
   */
  onListen?: (address: ListenAddress) => void;
}

function integer(name: string, value: number, min: number, max: number, what: string): number {
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new RangeError(
      `Cannot create TCPServer with ${name} ${value}: ${name} must be an integer from ${min} to ${max}${what}`,
    );
  }
  return value;
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
 * console.assert(port > 0);
 * await server.close();
 * ```
 */
export class TCPServer {
  /** Command name → handler class; read when `listen()` is called. */
  commands: Commands;
  readonly #host: string;
  readonly #port: number;
  readonly #threads: number;
  readonly #options: TCPServerOptions;
  readonly #connections = new Set<ServerConnection>();
  readonly #serving = new Set<Promise<void>>();
  #listener: Deno.TcpListener | undefined;
  #address: ListenAddress | undefined;
  #pool: WorkerPool | undefined;
  #accepting: Promise<void> | undefined;
  #closing: Promise<void> | undefined;

  /**
   * Creates a server; nothing is bound until `listen()`.
   *
   * @param options Host, port, commands, threads and limits.
   * @throws {RangeError} If a numeric option is out of range.
   * @throws {TypeError} If `host` is empty.
   */
  constructor(options: TCPServerOptions = {}) {
    this.#options = options;
    this.#host = options.host ?? "localhost";
    if (typeof this.#host !== "string" || this.#host === "") {
      throw new TypeError("Cannot create TCPServer: host must be a non-empty string");
    }
    this.#port = integer("port", options.port ?? 7272, 0, 65535, "");
    this.#threads = integer("threads", options.threads ?? 4, 0, 256, " (0 runs handlers inline)");
    integer(
      "maxMessageBytes",
      options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES,
      1,
      2 ** 30,
      "",
    );
    integer("maxBatchLength", options.maxBatchLength ?? 1000, 1, 1_000_000, "");
    integer("gracePeriod", options.gracePeriod ?? 10_000, 0, 2 ** 31 - 1, " ms");
    this.commands = options.commands ?? {};
    loadingRegistry()?.servers.push(this);
  }

  /** The host the server binds. */
  get host(): string {
    return this.#address?.hostname ?? this.#host;
  }

  /** The port: the one asked for, or the real one once listening. */
  get port(): number {
    return this.#address?.port ?? this.#port;
  }

  /** The number of worker threads (0: handlers run inline). */
  get threads(): number {
    return this.#threads;
  }

  /** Whether the server is listening. */
  get listening(): boolean {
    return this.#listener !== undefined && this.#closing === undefined;
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
      return { hostname: this.#host, port: this.#port };
    }
    if (this.#listener || this.#closing) {
      throw new Error("Cannot listen: this server was already started");
    }
    const commands = checkCommands(this.commands);
    const options = this.#options;
    const needsPool = this.#threads > 0 && [...commands.values()].some((cls) => !cls.inline);
    if (needsPool) {
      const module = options.module?.toString() ?? Deno.mainModule;
      if (!module) {
        throw new Error(
          "Cannot start the worker pool: there is no main module to load handlers from; " +
            "pass the `module` option or set threads: 0",
        );
      }
      const pool = new WorkerPool({ size: this.#threads, module, commands });
      await pool.start();
      this.#pool = pool;
    }
    let listener: Deno.TcpListener;
    try {
      listener = Deno.listen({
        hostname: this.#host,
        port: this.#port,
        transport: "tcp",
        ...(options.reusePort ? { reusePort: true } : {}),
      });
    } catch (error) {
      await this.#pool?.close();
      throw error;
    }
    this.#listener = listener;
    const addr = listener.addr as Deno.NetAddr;
    this.#address = { hostname: addr.hostname, port: addr.port };
    const context: ConnectionContext = {
      commands,
      pool: this.#pool,
      inline: new InlineExecutor(),
      maxMessageBytes: options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES,
      maxBatchLength: options.maxBatchLength ?? 1000,
    };
    this.#accepting = this.#accept(listener, context);
    const onListen = options.onListen ??
      ((a: ListenAddress) => console.log(`tcpy listening on ${a.hostname}:${a.port}`));
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

  /** Same as `close()`, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #shutdown(): Promise<void> {
    if (!this.#listener) return;
    try {
      this.#listener.close();
    } catch {
      // Already closed.
    }
    await this.#accepting;
    const drained = Promise.all([...this.#connections].map((c) => c.drain()));
    let timer: ReturnType<typeof setTimeout> | undefined;
    const grace = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, this.#options.gracePeriod ?? 10_000);
    });
    await Promise.race([drained, grace]);
    clearTimeout(timer);
    for (const connection of this.#connections) connection.abort();
    await Promise.all(this.#serving);
    await this.#pool?.close();
  }

  async #accept(listener: Deno.TcpListener, context: ConnectionContext): Promise<void> {
    while (true) {
      let conn: Deno.TcpConn;
      try {
        conn = await listener.accept() as Deno.TcpConn;
      } catch (error) {
        if (this.#closing || error instanceof Deno.errors.BadResource) return;
        // Out of file descriptors or a transient accept error: pause, go on.
        await new Promise((resolve) => setTimeout(resolve, 50));
        continue;
      }
      try {
        conn.setNoDelay(true);
      } catch {
        // Not every platform lets us; the default is fine.
      }
      const connection = new ServerConnection(conn, context);
      this.#connections.add(connection);
      const serving = connection.serve().finally(() => {
        this.#connections.delete(connection);
        this.#serving.delete(serving);
      });
      this.#serving.add(serving);
    }
  }
}

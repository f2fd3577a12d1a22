/**
 * The socket step: binds a listener, accepts connections and hands each to
 * a {@linkcode ServerConnection}; owns the one timer that enforces every
 * connection's deadlines. Runs on the main thread, or on each I/O thread.
 *
 * @module
 */

import { errorText } from "../codec.ts";
import { ErrorCode } from "../errors.ts";
import type { HandlerClass } from "../handler.ts";
import { type ConnectionContext, type Observer, ServerConnection } from "./connection.ts";
import { type Executor, InlineExecutor } from "./executor.ts";
import { callLimits, perThread, type ResolvedServerOptions } from "./options.ts";
import { Placement } from "./placement.ts";

/** Largest message before a connection has authenticated, in bytes. */
const AUTH_MAX_MESSAGE_BYTES = 4096;

/** accept() errors that mean the process is short of something: wait before retrying. */
const OUT_OF_RESOURCES = new Set(["EMFILE", "ENFILE", "ENOBUFS", "ENOMEM"]);

/** What every connection of one acceptor shares, from the server's options. */
export function connectionContext(
  options: ResolvedServerOptions,
  commands: ReadonlyMap<string, HandlerClass>,
  pool: Executor | undefined,
  observer: Observer,
  share = 1,
): ConnectionContext {
  return {
    commands,
    observer,
    clock: { now: performance.now() },
    pool,
    workers: options.threads > 0,
    inline: new InlineExecutor(callLimits(options)),
    maxMessageBytes: options.maxMessageBytes,
    maxBatchLength: options.maxBatchLength,
    maxInFlight: options.maxInFlight,
    // Each of `share` I/O threads admits its part of the pool's queue.
    maxPendingCalls: perThread(options.maxPendingCalls, share),
    maxOutputBytes: options.maxOutputBytes,
    // Far past the point where reading pauses (64 MiB by default, as NATS
    // cuts slow consumers): a client that reads, only slower than tiny
    // requests turn into larger replies, is not cut; one that stops is.
    cutOutputBytes: Math.max(
      16 * options.maxOutputBytes,
      options.maxOutputBytes + 2 * options.maxReplyBytes,
    ),
    maxReplyBytes: options.maxReplyBytes,
    messageTimeout: options.messageTimeout,
    shares: { holders: 0 },
    placement: pool && options.threads > 0 && options.autoInline ? new Placement() : undefined,
    handlerTimeout: options.handlerTimeout,
    writeTimeout: options.writeTimeout,
    idleTimeout: options.idleTimeout,
    linger: options.linger,
    auth: options.secret === undefined ? undefined : {
      secret: new TextEncoder().encode(options.secret),
      timeout: options.authTimeout,
      maxMessageBytes: AUTH_MAX_MESSAGE_BYTES,
    },
  };
}

/** Binds the server's address (TCP or TLS); names the address when it is taken. */
export function bind(
  options: ResolvedServerOptions,
  port: number,
  reusePort: boolean,
): Deno.Listener {
  const { host, tls } = options;
  const base = { hostname: host, port, ...(reusePort ? { reusePort: true } : {}) };
  try {
    if (!tls) return Deno.listen({ ...base, transport: "tcp" });
    const pem = "certFile" in tls
      ? { cert: Deno.readTextFileSync(tls.certFile), key: Deno.readTextFileSync(tls.keyFile) }
      : { cert: tls.cert, key: tls.key };
    return Deno.listenTls({ ...base, ...pem });
  } catch (error) {
    if (error instanceof Deno.errors.AddrInUse) {
      throw new Deno.errors.AddrInUse(
        `Cannot listen on ${host}:${port}: the address is already in use ` +
          "(another server runs there; pick another port, or 0 for any free one)",
        { cause: error },
      );
    }
    throw error;
  }
}

/** Accepts and serves the connections of one listener until closed. */
export class Acceptor {
  readonly #listener: Deno.Listener;
  readonly #ctx: ConnectionContext;
  readonly #maxConnections: number;
  readonly #connections = new Set<ServerConnection>();
  readonly #serving = new Set<Promise<void>>();
  readonly #sweeper: ReturnType<typeof setInterval>;
  readonly #accepting: Promise<void>;
  #closing: Promise<void> | undefined;

  constructor(
    listener: Deno.Listener,
    ctx: ConnectionContext,
    options: Pick<ResolvedServerOptions, "maxConnections">,
  ) {
    this.#listener = listener;
    this.#ctx = ctx;
    this.#maxConnections = options.maxConnections;
    const deadlines = [ctx.handlerTimeout, ctx.writeTimeout, ctx.idleTimeout, ctx.messageTimeout]
      .concat(ctx.auth ? [ctx.auth.timeout] : []).filter((t) => t > 0);
    // One timer per server, not one per call: the hot path only reads
    // the clock it keeps.
    const every = Math.max(10, Math.min(1000, Math.floor(Math.min(...deadlines, 4000) / 4)));
    this.#sweeper = setInterval(() => {
      ctx.clock.now = performance.now();
      const now = Date.now();
      for (const connection of this.#connections) connection.sweep(now);
    }, every);
    this.#accepting = this.#accept();
  }

  /** Open connections. */
  get connections(): number {
    return this.#connections.size;
  }

  /** Calls in flight over all connections. */
  get inFlight(): number {
    let total = 0;
    for (const connection of this.#connections) total += connection.running;
    return total;
  }

  /**
   * Stops accepting, lets calls in flight finish for up to `grace` ms (new
   * calls get "shutting down"), then closes every connection.
   */
  close(grace: number): Promise<void> {
    this.#closing ??= this.#shutdown(grace);
    return this.#closing;
  }

  async #shutdown(grace: number): Promise<void> {
    try {
      this.#listener.close();
    } catch {
      // Already closed.
    }
    await this.#accepting;
    const drained = Promise.all([...this.#connections].map((c) => c.drain()));
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([drained, new Promise((resolve) => timer = setTimeout(resolve, grace))]);
    clearTimeout(timer);
    for (const connection of this.#connections) connection.abort();
    clearInterval(this.#sweeper);
    await Promise.all(this.#serving);
  }

  async #accept(): Promise<void> {
    const limit = this.#maxConnections;
    while (true) {
      let conn: Deno.Conn;
      try {
        conn = await this.#listener.accept();
      } catch (error) {
        if (this.#closing || error instanceof Deno.errors.BadResource) return;
        // Only running out of descriptors or memory calls for a pause; an
        // error about one connection (reset before it was accepted:
        // NotConnected) must not delay the next.
        if (OUT_OF_RESOURCES.has((error as { code?: string }).code ?? "")) {
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
        continue;
      }
      if (this.#connections.size >= limit) {
        turnAway(conn, limit);
        continue;
      }
      tune(conn);
      const connection = new ServerConnection(conn, this.#ctx);
      this.#connections.add(connection);
      const serving = connection.serve().finally(() => {
        this.#connections.delete(connection);
        this.#serving.delete(serving);
      });
      this.#serving.add(serving);
    }
  }
}

/** Low latency for small replies; keepalive so dead peers are found. */
function tune(conn: Deno.Conn): void {
  const tcp = conn as Partial<Deno.TcpConn>;
  try {
    tcp.setNoDelay?.(true);
    tcp.setKeepAlive?.(true);
  } catch {
    // Not every platform lets us; the defaults still work.
  }
}

/** Tells a client over the connection limit why, then closes it. */
function turnAway(conn: Deno.Conn, limit: number): void {
  const line = errorText(null, {
    code: ErrorCode.SERVER_BUSY,
    message: `Server busy: too many connections (limit ${limit})`,
  });
  conn.write(new TextEncoder().encode(line + "\n")).catch(() => {}).finally(() => {
    try {
      conn.close();
    } catch {
      // Already closed.
    }
  });
}

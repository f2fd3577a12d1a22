/**
 * A client for several tcpy servers at once: it spreads calls over their
 * connections, notices dead servers, fails over, and retries the calls that
 * provably never reached a handler.
 *
 * @module
 */

import { type CallArgs, type CallOptions, TCPClient, type TCPClientOptions } from "./client.ts";
import { type Params, PING_METHOD } from "./codec.ts";
import type { Commands, ResultOf } from "./handler.ts";
import { ConnectionClosedError, ServerBusyError, ShuttingDownError } from "./errors.ts";
import { backoffDelay, type BackoffOptions, sleep } from "./internal/backoff.ts";
import {
  checkLimit,
  checkPort,
  checkTimeout,
  isFatalConnectError,
} from "./internal/client_rules.ts";
import { callTimedOut } from "./internal/replies.ts";

/** How long a health probe of a down endpoint may take, in milliseconds. */
const PROBE_TIMEOUT = 5_000;

/** One server (or load balancer) the cluster client may call. */
export interface Endpoint {
  /**
   * Host name or address.
   *
   * @default {"localhost"}
   */
  host?: string;
  /** Port, from 1 to 65535. */
  port: number;
}

/**
 * Why a call was tried again. The first four mean the call never reached a
 * handler, so every call is retried for them; `"closed"` only an
 * `idempotent` one.
 *
 * - `"refused"`: the connection could not be opened, or closed before the
 *   request was written.
 * - `"shuttingDown"`: the server is draining: it answered -32007
 *   ({@linkcode ShuttingDownError}).
 * - `"busy"`: the server answered -32001 ({@linkcode ServerBusyError}), or
 *   turned the connection away.
 * - `"unread"`: the connection closed, and the server had shown it never
 *   read the request: it said `tcpy.bye` first, or had refused an earlier
 *   request on the connection with -32007.
 * - `"closed"`: the connection closed after the request was written, with
 *   no such sign (a crash, a kill, a cut at the end of the grace period, a
 *   load balancer's idle timeout, a network failure): the handler may have
 *   run.
 */
export type RetryReason = "refused" | "shuttingDown" | "busy" | "unread" | "closed";

/** What {@linkcode TCPClusterClientOptions.onRetry} is told before a retry. */
export interface RetryEvent {
  /** The command called. */
  command: string;
  /** Its params. */
  params: unknown;
  /** Which retry this is: 1 for the first. */
  retry: number;
  /** Why the previous attempt failed. */
  reason: RetryReason;
  /** The endpoint the previous attempt went to. */
  endpoint: { host: string; port: number };
  /** The error of the previous attempt. */
  error: unknown;
  /** How long the client waits before the retry, in milliseconds. */
  delay: number;
}

/** Options of {@linkcode TCPClusterClient}. */
export interface TCPClusterClientOptions
  extends Omit<TCPClientOptions, "host" | "port" | "reconnect" | "timeout"> {
  /** The servers to call, or one load balancer in front of them. At least one. */
  endpoints: readonly Endpoint[];
  /**
   * Connections opened to each endpoint. More than one spreads the calls of
   * one client over several servers when the endpoint is a load balancer
   * that assigns each connection to one server (HAProxy in TCP mode).
   *
   * @default {1}
   */
  connections?: number;
  /**
   * Default time limit of each call in milliseconds, retries and waits
   * included; 0 waits forever.
   *
   * @default {0}
   */
  timeout?: number;
  /**
   * Retries and their backoff: a call is tried at most `1 + retries` times;
   * a retry goes at once to another endpoint (or a new connection) when one
   * is healthy, else after a delay of `backoffDelay` (exponential, full
   * jitter). The same delays space the health probes of a down endpoint.
   *
   * @default {{ retries: 5, baseDelay: 100, maxDelay: 5000 }}
   */
  retry?: BackoffOptions;
  /** Called before every retry, for logs and metrics. */
  onRetry?: (event: RetryEvent) => void;
}

/** Options of one {@linkcode TCPClusterClient.execute} call. */
export interface ClusterCallOptions extends CallOptions {
  /**
   * The call may safely run more than once (it reads, or its effect is keyed
   * by an id the caller chose), so it is also retried when its connection
   * closed after the request was written (reason `"closed"`). Calls that
   * never reached a handler are retried whatever this says.
   *
   * @default {false}
   */
  idempotent?: boolean;
}

/**
 * The arguments of {@linkcode TCPClusterClient.execute} after the command
 * name: params (optional when the handler requires none), then options.
 * The same as `CallArgs<H, ClusterCallOptions>`.
 *
 * @typeParam H The handler class of the command.
 */
export type ClusterCallArgs<H> = CallArgs<H, ClusterCallOptions>;

/** The state of one endpoint, as {@linkcode TCPClusterClient.status} reports it. */
export interface EndpointStatus {
  /** Host of the endpoint. */
  host: string;
  /** Port of the endpoint. */
  port: number;
  /** False after a failed connect, until a health probe (`tcpy.ping`) succeeds. */
  up: boolean;
  /** Calls of this client in flight there. */
  pending: number;
  /** Open connections. */
  connections: number;
  /** Calls sent there so far (attempts, retries included). */
  calls: number;
}

/** Counters of a {@linkcode TCPClusterClient}. */
export interface ClusterStats {
  /** Calls started with `execute`. */
  calls: number;
  /** Calls that resolved. */
  succeeded: number;
  /** Calls that rejected. */
  failed: number;
  /** Retries, by reason. */
  retries: Record<RetryReason, number>;
}

/** One connection: a {@linkcode TCPClient} that is never reused once its connection is gone. */
class Connection {
  readonly client: TCPClient;
  readonly ready: Promise<void>;
  opened = false;
  failed = false;
  retired = false;
  released = false;
  /** Calls reserved on or sent over this connection and not settled (for load balancing). */
  pending = 0;
  /** Calls written and not settled: while there are none, the server may close it. */
  inFlight = 0;
  /** The turn of the event loop that calls on an idle connection wait for (see `#attempt`). */
  settling: Promise<void> | undefined;
  /**
   * Sequence number of the first request refused with -32007 or left unread
   * after `tcpy.bye`; later ones were never read.
   */
  drainedAt = Infinity;
  #sent = 0;
  /** Calls written whose outcome is not yet noted in `drainedAt` and `inFlight`. */
  readonly #noting = new Set<Promise<void>>();

  constructor(options: TCPClientOptions) {
    this.client = new TCPClient(options);
    this.ready = this.client.connect().then(
      () => {
        this.opened = true;
      },
      (error) => {
        this.failed = true;
        throw error;
      },
    );
    this.ready.catch(() => {});
  }

  /** Whether new calls may go here: connecting, or open and not dropped. */
  get usable(): boolean {
    return !this.retired && !this.failed && (!this.opened || this.client.connected);
  }

  /**
   * Sends one call. Requests go out in the order of their sequence numbers:
   * the client is connected, so each write is queued in call order.
   */
  send(cmd: string, params: Params | undefined, options: CallOptions) {
    const seq = ++this.#sent;
    this.inFlight++;
    const result = this.client.execute(cmd, params, options);
    const note = (error?: unknown) => {
      this.inFlight--;
      this.#noting.delete(noted);
      if (error instanceof ShuttingDownError && seq < this.drainedAt) this.drainedAt = seq;
    };
    const noted = result.then(() => note(), note);
    this.#noting.add(noted);
    return { seq, result };
  }

  /**
   * Resolves once the outcome of every call written so far is noted. Once
   * the connection has closed, every call on it has settled, so this is prompt.
   */
  async noted(): Promise<void> {
    await Promise.all(this.#noting);
  }
}

/** One endpoint and its connection slots. */
class EndpointState {
  readonly host: string;
  readonly port: number;
  readonly slots: (Connection | undefined)[];
  failures = 0;
  retryAt = 0;
  calls = 0;
  probe: Promise<void> | undefined;

  constructor(endpoint: Endpoint, connections: number) {
    this.host = endpoint.host ?? "localhost";
    this.port = endpoint.port;
    this.slots = new Array(connections).fill(undefined);
  }

  get up(): boolean {
    return this.failures === 0;
  }

  get pending(): number {
    let sum = 0;
    for (const slot of this.slots) sum += slot?.pending ?? 0;
    return sum;
  }
}

type Attempt =
  | { value: unknown }
  | { reason: RetryReason; error: unknown; connection: Connection | undefined };

/** Why a call that failed after its request was written may be retried, if it may. */
function classify(error: unknown, connection: Connection, seq: number): RetryReason | undefined {
  // A -32007 reply has no `cause`; TCPClient gives the close as the cause
  // when the connection closed after `tcpy.bye` with the call unread.
  if (error instanceof ShuttingDownError) {
    return error.cause === undefined ? "shuttingDown" : "unread";
  }
  if (error instanceof ServerBusyError) return "busy";
  if (error instanceof ConnectionClosedError) {
    // Turned away at accept (connection limit): nothing of it was read.
    if (error.cause instanceof ServerBusyError) return "busy";
    return seq > connection.drainedAt ? "unread" : "closed";
  }
  return undefined;
}

/** Resolves like `promise`, or rejects at `deadline` or when `signal` aborts. */
function bounded<T>(
  promise: Promise<T>,
  deadline: number,
  signal: AbortSignal,
  late: () => Error,
): Promise<T> {
  return new Promise((resolve, reject) => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const onAbort = () => finish(() => reject(signal.reason));
    const finish = (settle: () => void) => {
      clearTimeout(timer);
      signal.removeEventListener("abort", onAbort);
      settle();
    };
    if (signal.aborted) return reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    if (deadline !== Infinity) {
      timer = setTimeout(() => finish(() => reject(late())), Math.max(0, deadline - Date.now()));
    }
    promise.then((value) => finish(() => resolve(value)), (error) => finish(() => reject(error)));
  });
}

/**
 * A client for several tcpy servers, or for one load balancer in front of
 * them. Each call goes to the healthy endpoint with the fewest calls of this
 * client in flight (round-robin among equals).
 *
 * An endpoint whose connect fails is marked down and probed with `tcpy.ping`,
 * with growing delays, until it answers. A call that never reached a handler
 * is retried on another endpoint or connection; one whose connection closed
 * after its request was written may have run, so it is retried only with
 * `{ idempotent: true }` (see {@linkcode RetryReason}); else it rejects at
 * once with {@linkcode ConnectionClosedError}. Handler errors, unknown
 * commands, invalid params and timeouts are never retried. So a rolling
 * restart (SIGTERM drains each server, which says `tcpy.bye`) fails no call.
 *
 * Give calls a `timeout` where an endpoint may not answer at all: a connect
 * then waits for the system's timeout (about two minutes on Linux).
 * Conversations (`send`/`recv`) cannot move to another server halfway: use
 * a {@linkcode TCPClient} for them.
 *
 * @typeParam C The server's command map (`typeof commands`), for typed
 *   calls as with {@linkcode TCPClient}; by default any command, params and
 *   result (`unknown`).
 *
 * @example Three servers, one client
 * ```ts
 * import assert from "node:assert/strict";
 * import { TCPHandler, TCPServer } from "./mod.ts";
 * import { TCPClusterClient } from "./cluster.ts";
 *
 * class Add extends TCPHandler<{ x: number; y: number }> {
 *   execute() {
 *     return this.success({ solution: this.params.x + this.params.y });
 *   }
 * }
 * const commands = { add: Add };
 *
 * const servers = [0, 1, 2].map(() =>
 *   new TCPServer({ host: "127.0.0.1", port: 0, threads: 0, commands, onListen() {} })
 * );
 * const endpoints = [];
 * for (const server of servers) endpoints.push({ host: "127.0.0.1", port: (await server.listen()).port });
 *
 * await using cluster = new TCPClusterClient<typeof commands>({ endpoints });
 * const { solution } = await cluster.execute("add", { x: 1, y: 2 });
 * assert.equal(solution, 3);
 *
 * await servers[0].close(); // calls go on to the other two
 * await cluster.execute("add", { x: 2, y: 2 }, { idempotent: true });
 * for (const server of servers) await server.close();
 * ```
 *
 * @example Behind a load balancer (deploy/README.md)
 * ```ts ignore
 * // One endpoint: HAProxy. Four connections, so calls spread over the servers.
 * const cluster = new TCPClusterClient({ endpoints: [{ port: 7272 }], connections: 4 });
 * await cluster.execute("add", { x: 1, y: 2 });
 * ```
 */
export class TCPClusterClient<C extends Commands = Commands> {
  readonly #endpoints: EndpointState[];
  readonly #clientOptions: TCPClientOptions;
  readonly #timeout: number;
  readonly #retry: BackoffOptions;
  readonly #retries: number;
  readonly #onRetry: ((event: RetryEvent) => void) | undefined;
  readonly #closer = new AbortController();
  /** Every connection not yet closed, so `close()` misses none. */
  readonly #connections = new Set<Connection>();
  readonly #leaving = new Set<Promise<void>>();
  readonly #stats: ClusterStats = {
    calls: 0,
    succeeded: 0,
    failed: 0,
    retries: { refused: 0, shuttingDown: 0, busy: 0, unread: 0, closed: 0 },
  };
  #turn = 0;
  #closing: Promise<void> | undefined;

  /**
   * Creates the client; nothing connects until the first call.
   *
   * @param options The endpoints, connections per endpoint, retries, and the
   *   options of each connection's {@linkcode TCPClient}.
   * @throws {TypeError} If `endpoints` is empty or not an array.
   * @throws {RangeError} If a port, `connections`, `timeout`,
   *   `maxUnreadMessages`, `maxUnreadBytes` or a `retry` field is out of range.
   */
  constructor(options: TCPClusterClientOptions) {
    const { endpoints, connections = 1, timeout = 0, retry = {}, onRetry, ...rest } = options;
    if (!Array.isArray(endpoints) || endpoints.length === 0) {
      throw new TypeError("Cannot create TCPClusterClient: endpoints must be a non-empty array");
    }
    for (const endpoint of endpoints) checkPort(endpoint?.port, "TCPClusterClient");
    if (!Number.isSafeInteger(connections) || connections < 1 || connections > 1024) {
      throw new RangeError(
        `Cannot create TCPClusterClient with connections ${connections}: must be an integer from 1 to 1024`,
      );
    }
    checkTimeout(timeout, "TCPClusterClient");
    for (const key of ["maxUnreadMessages", "maxUnreadBytes"] as const) {
      if (rest[key] !== undefined) checkLimit(key, rest[key], "TCPClusterClient");
    }
    for (const key of ["retries", "baseDelay", "maxDelay"] as const) {
      const value = retry[key];
      if (value !== undefined && !(Number.isSafeInteger(value) && value >= 0)) {
        throw new RangeError(
          `Cannot create TCPClusterClient with retry.${key} ${value}: must be an integer >= 0`,
        );
      }
    }
    // Reconnecting is this class's job: each TCPClient makes one connection.
    const clientOptions: TCPClientOptions & { reconnect?: unknown } = { ...rest };
    delete clientOptions.reconnect;
    this.#clientOptions = clientOptions;
    this.#endpoints = endpoints.map((endpoint) => new EndpointState(endpoint, connections));
    this.#timeout = timeout;
    this.#retry = retry;
    this.#retries = retry.retries ?? 5;
    this.#onRetry = onRetry;
  }

  /**
   * Calls `cmd` with `params` on one of the endpoints and resolves with the
   * handler's result, retrying as the class documentation says.
   *
   * @typeParam K The command name (typed when `C` is a command map).
   * @param cmd The command name.
   * @param args The handler's named params, then `idempotent`, a signal and
   *   a time limit for the whole call (retries included).
   * @returns The result; a handler's `error(...)` dictionary also resolves.
   * @throws {ConnectionClosedError} If the connection closed after the request
   *   was written, without `tcpy.bye`, and the call is not idempotent; or the
   *   retries ran out (when no endpoint accepted a connection, this is the
   *   last connect error: its message names the host and port, its `cause`
   *   is the system's error, such as `Deno.errors.ConnectionRefused`); or the
   *   client was closed.
   * @throws {ShuttingDownError} If every retry was refused (or left unread) by
   *   draining servers.
   * @throws {CallTimeoutError} If the time limit passed.
   * @throws {UnknownCommandError} And the other errors of
   *   {@linkcode TCPClient.execute}, which are not retried.
   *
   * @example
   * ```ts ignore
   * const user = await cluster.execute("getUser", { id: 7 }, { idempotent: true, timeout: 2_000 });
   * ```
   */
  async execute<K extends keyof C & string>(
    cmd: K,
    ...args: ClusterCallArgs<C[K]>
  ): Promise<ResultOf<C[K]>> {
    const [params, options = {}] = args as [Params | undefined, ClusterCallOptions | undefined];
    this.#stats.calls++;
    try {
      const value = await this.#run(cmd, params, options);
      this.#stats.succeeded++;
      return value as ResultOf<C[K]>;
    } catch (error) {
      this.#stats.failed++;
      throw error;
    }
  }

  /**
   * The state of each endpoint, in the order given.
   *
   * @returns One entry per endpoint.
   */
  status(): EndpointStatus[] {
    return this.#endpoints.map((endpoint) => ({
      host: endpoint.host,
      port: endpoint.port,
      up: endpoint.up,
      pending: endpoint.pending,
      connections: endpoint.slots.filter((slot) => slot?.opened && slot.usable).length,
      calls: endpoint.calls,
    }));
  }

  /** Counters since the client was created: calls, outcomes, retries by reason. */
  get stats(): ClusterStats {
    return { ...this.#stats, retries: { ...this.#stats.retries } };
  }

  /**
   * Closes every connection; calls in flight reject with
   * {@linkcode ConnectionClosedError}, and so do later ones. Safe to call
   * more than once.
   *
   * @returns Resolves once every connection is closed.
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
    this.#closer.abort(new ConnectionClosedError("The cluster client was closed"));
    await Promise.all(this.#endpoints.map((endpoint) => endpoint.probe));
    for (const endpoint of this.#endpoints) endpoint.slots.fill(undefined);
    for (const connection of this.#connections) {
      connection.retired = true;
      this.#release(connection, true);
    }
    await Promise.all(this.#leaving);
  }

  async #run(
    cmd: string,
    params: Params | undefined,
    options: ClusterCallOptions,
  ): Promise<unknown> {
    const { idempotent = false, signal, timeout: callTimeout } = options;
    const timeout = callTimeout ?? this.#timeout;
    const deadline = timeout > 0 ? Date.now() + timeout : Infinity;
    const stop = signal ? AbortSignal.any([signal, this.#closer.signal]) : this.#closer.signal;
    const late = () => callTimedOut(cmd, timeout);
    const avoid = new Set<Connection>();
    const failed = new Set<EndpointState>();
    let endpoint = this.#pick(avoid, failed) ?? this.#fallback();
    let delayed = 0;
    for (let retry = 0;; retry++) {
      stop.throwIfAborted();
      if (Date.now() >= deadline) throw late();
      const attempt = await this.#attempt(endpoint, avoid, cmd, params, {
        deadline,
        signal,
        stop,
        late,
      });
      if ("value" in attempt) return attempt.value;
      const { reason, error, connection } = attempt;
      if ((reason === "closed" && !idempotent) || retry >= this.#retries || stop.aborted) {
        throw error;
      }
      if (connection) avoid.add(connection);
      failed.add(endpoint);
      let next = this.#pick(avoid, failed);
      const delay = next ? 0 : backoffDelay(delayed++, this.#retry);
      this.#stats.retries[reason]++;
      this.#onRetry?.({
        command: cmd,
        params,
        retry: retry + 1,
        reason,
        endpoint: { host: endpoint.host, port: endpoint.port },
        error,
        delay,
      });
      if (!next) {
        await sleep(Math.min(delay, Math.max(0, deadline - Date.now())), stop);
        next = this.#pick(avoid, failed) ?? this.#fallback();
      }
      endpoint = next;
    }
  }

  async #attempt(
    endpoint: EndpointState,
    avoid: ReadonlySet<Connection>,
    cmd: string,
    params: Params | undefined,
    call: { deadline: number; signal?: AbortSignal; stop: AbortSignal; late: () => Error },
  ): Promise<Attempt> {
    let connection = this.#connectionFor(endpoint, avoid);
    connection.pending++;
    try {
      if (connection.opened && connection.inFlight === 0) {
        // A server closes only an idle connection, and its FIN may be here
        // unread: one turn of the event loop lets the client see it before
        // writing a request whose fate it then could not know.
        const current = connection;
        current.settling ??= new Promise<void>((resolve) => setTimeout(resolve, 0)).then(() => {
          current.settling = undefined;
        });
        await current.settling;
        if (!connection.usable) {
          // Nothing was written on it: use a new connection, no retry needed.
          connection.pending--;
          this.#retire(endpoint, connection);
          connection = this.#connectionFor(endpoint, avoid);
          connection.pending++;
        }
      }
      if (!connection.opened) {
        try {
          await bounded(connection.ready, call.deadline, call.stop, call.late);
        } catch (error) {
          if (!connection.failed) throw error; // timed out or aborted while connecting
          if (isFatalConnectError(error)) throw error;
          this.#markDown(endpoint);
          this.#retire(endpoint, connection);
          return { reason: "refused", error, connection };
        }
        endpoint.failures = 0;
      }
      if (!connection.usable) {
        // Dropped (closed by the server while idle) before our request was written.
        this.#retire(endpoint, connection);
        return {
          reason: "refused",
          error: new ConnectionClosedError("The connection closed before the request was sent"),
          connection,
        };
      }
      endpoint.calls++;
      const remaining = call.deadline === Infinity ? 0 : Math.max(1, call.deadline - Date.now());
      const { seq, result } = connection.send(cmd, params, {
        signal: call.signal,
        timeout: remaining,
      });
      try {
        return { value: await result };
      } catch (error) {
        // Whether an earlier request was refused with -32007 tells "unread" from "closed".
        if (error instanceof ConnectionClosedError) await connection.noted();
        const reason = classify(error, connection, seq);
        if (reason === undefined) throw error;
        if (reason !== "busy") this.#retire(endpoint, connection);
        return { reason, error, connection };
      }
    } finally {
      connection.pending--;
      if (connection.retired) this.#release(connection);
    }
  }

  /**
   * The healthy endpoint with the fewest calls in flight that this call has
   * a fresh path to (a connection it has not failed on), preferring those
   * where it has not failed at all.
   */
  #pick(
    avoid: ReadonlySet<Connection>,
    failed: ReadonlySet<EndpointState>,
  ): EndpointState | undefined {
    return this.#least(avoid, failed) ?? (failed.size > 0 ? this.#least(avoid) : undefined);
  }

  #least(
    avoid: ReadonlySet<Connection>,
    skip?: ReadonlySet<EndpointState>,
  ): EndpointState | undefined {
    const all = this.#endpoints;
    const start = this.#turn;
    this.#turn = (this.#turn + 1) % all.length;
    let best: EndpointState | undefined;
    let bestPending = Infinity;
    for (let i = 0; i < all.length; i++) {
      const endpoint = all[(start + i) % all.length];
      if (!endpoint.up) {
        this.#probe(endpoint);
        continue;
      }
      if (skip?.has(endpoint)) continue;
      if (!endpoint.slots.some((slot) => !slot || !slot.usable || !avoid.has(slot))) continue;
      const pending = endpoint.pending;
      if (pending < bestPending) {
        best = endpoint;
        bestPending = pending;
      }
    }
    return best;
  }

  /** When nothing healthy is left: the endpoint due for a retry first. */
  #fallback(): EndpointState {
    let best = this.#endpoints[0];
    for (const endpoint of this.#endpoints) {
      const due = endpoint.up ? 0 : endpoint.retryAt;
      const bestDue = best.up ? 0 : best.retryAt;
      if (due < bestDue || (due === bestDue && endpoint.pending < best.pending)) best = endpoint;
    }
    return best;
  }

  /** The connection of `endpoint` with the fewest calls in flight, opening one if a slot is free. */
  #connectionFor(endpoint: EndpointState, avoid: ReadonlySet<Connection>): Connection {
    let index = -1;
    let least = Infinity;
    for (const [i, connection] of endpoint.slots.entries()) {
      if (connection && !connection.usable) this.#retire(endpoint, connection);
      const current = endpoint.slots[i];
      if (current && avoid.has(current)) continue;
      // An open connection wins a tie against opening a new one.
      const load = current ? current.pending : 0.5;
      if (load < least) {
        index = i;
        least = load;
      }
    }
    if (index === -1) {
      // Every connection failed this call before: take the least busy anyway.
      for (const [i, connection] of endpoint.slots.entries()) {
        if (connection && connection.pending < least) {
          index = i;
          least = connection.pending;
        }
      }
    }
    const connection = endpoint.slots[index];
    if (connection) return connection;
    const fresh = this.#connect(endpoint);
    endpoint.slots[index] = fresh;
    return fresh;
  }

  #connect(endpoint: EndpointState): Connection {
    const connection = new Connection({
      ...this.#clientOptions,
      host: endpoint.host,
      port: endpoint.port,
    });
    this.#connections.add(connection);
    return connection;
  }

  #markDown(endpoint: EndpointState): void {
    endpoint.failures++;
    endpoint.retryAt = Date.now() + backoffDelay(endpoint.failures - 1, this.#retry);
  }

  /** Takes `connection` out of service: no new calls; closed once its calls settle. */
  #retire(endpoint: EndpointState, connection: Connection): void {
    const index = endpoint.slots.indexOf(connection);
    if (index !== -1) endpoint.slots[index] = undefined;
    connection.retired = true;
    this.#release(connection);
  }

  /** Closes a retired connection once no call of ours is left on it. */
  #release(connection: Connection, now = false): void {
    if ((connection.pending > 0 && !now) || connection.released) return;
    connection.released = true;
    this.#connections.delete(connection);
    const leaving = connection.client.disconnect().finally(() => this.#leaving.delete(leaving));
    this.#leaving.add(leaving);
  }

  /** Checks a down endpoint in the background once its backoff delay has passed. */
  #probe(endpoint: EndpointState): void {
    if (endpoint.probe || this.#closer.signal.aborted || Date.now() < endpoint.retryAt) return;
    endpoint.probe = this.#check(endpoint).finally(() => endpoint.probe = undefined);
  }

  async #check(endpoint: EndpointState): Promise<void> {
    const connection = this.#connect(endpoint);
    try {
      await connection.ready;
      await connection.client.execute(PING_METHOD, undefined, { timeout: PROBE_TIMEOUT });
    } catch {
      this.#markDown(endpoint);
      this.#retire(endpoint, connection);
      return;
    }
    endpoint.failures = 0;
    const free = endpoint.slots.findIndex((slot) => !slot || !slot.usable);
    if (free === -1 || this.#closer.signal.aborted) {
      this.#retire(endpoint, connection);
      return;
    }
    const old = endpoint.slots[free];
    if (old) this.#retire(endpoint, old);
    endpoint.slots[free] = connection;
  }
}

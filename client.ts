/**
 * The client: calls a tcpy server's commands (or any JSON-RPC 2.0 server
 * speaking one message per line) and holds conversations with handlers.
 *
 * @module
 */

import {
  AUTH_METHOD,
  BYE_METHOD,
  decodeLine,
  MESSAGE_METHOD,
  messageText,
  type Params,
  parseMessageParams,
  parseReply,
  requestText,
} from "./codec.ts";
import { ConnectionClosedError, fromWireError, ProtocolError } from "./errors.ts";
import { DEFAULT_MAX_MESSAGE_BYTES, LineSplitter } from "./framing.ts";
import { backoffDelay, type BackoffOptions, sleep } from "./internal/backoff.ts";
import { Inbox } from "./internal/inbox.ts";
import { encodeSent } from "./internal/json_text.ts";
import type { Commands, ParamsOf, ResultOf } from "./handler.ts";
import { LineWriter } from "./internal/line_writer.ts";
import { readLines } from "./internal/read_loop.ts";
import { callerView, callTimedOut } from "./internal/replies.ts";
import {
  checkClientOptions,
  checkLimit,
  checkPort,
  checkTimeout,
  connectFailure,
  isFatalConnectError,
  type LastWords,
  pendingCallError,
} from "./internal/client_rules.ts";

/**
 * Options of {@linkcode TCPClient}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { TCPClientOptions } from "./client.ts";
 * const options: TCPClientOptions = { host: "localhost", port: 7272, timeout: 5_000, reconnect: true };
 * assert.equal(options.port, 7272);
 * ```
 */
export interface TCPClientOptions {
  /**
   * Host the server listens on.
   *
   * @default {"localhost"}
   */
  host?: string;
  /**
   * Port the server listens on.
   *
   * @default {7272}
   */
  port?: number;
  /**
   * Largest reply line accepted, in bytes. A longer one is a protocol error:
   * the connection closes and every pending call rejects.
   *
   * @default {1048576}
   */
  maxMessageBytes?: number;
  /**
   * Most conversation messages (`tcpy.message`) the server may send a call
   * that are not yet read with `recv()`. One more fails that call with a
   * {@linkcode ProtocolError} (its `result` and its `recv()` reject) and
   * drops the rest of its messages; other calls on the connection go on.
   * It keeps a server that floods a call from filling the client's memory.
   * Note that `execute()` reads no messages: they count until the call ends.
   *
   * @default {1024}
   */
  maxUnreadMessages?: number;
  /**
   * Most bytes of conversation messages a call may hold unread, counted as
   * the length of the lines that carried them; past it, the call fails as
   * for `maxUnreadMessages`.
   *
   * @default {4194304}
   */
  maxUnreadBytes?: number;
  /**
   * Default time limit of each call in milliseconds; 0 waits forever.
   *
   * @default {0}
   */
  timeout?: number;
  /**
   * Connect over TLS. `true` trusts the system's root certificates; an
   * object adds trusted CA certificates in PEM (`caCerts`, or a `caFile`
   * path) for servers with a private CA or a self-signed certificate.
   *
   * @default {false}
   */
  tls?: boolean | { caCerts?: string[]; caFile?: string };
  /**
   * The server's shared secret: sent as `tcpy.auth` before any call on each
   * connection. A wrong secret fails pending calls with
   * {@linkcode AuthenticationError}.
   *
   * @default {undefined}
   */
  secret?: string;
  /**
   * Retry a failed connect with exponential backoff and full jitter: `true`
   * for the defaults (5 retries, delays up to 100 ms doubling to 5 s), or
   * the backoff's options. Calls in flight when a connection drops are not
   * retried (they may have run); the next call reconnects.
   *
   * @default {false}
   */
  reconnect?: boolean | BackoffOptions;
}

/**
 * The arguments after the command name: params (optional when the handler
 * requires none), then call options.
 *
 * @typeParam H The handler class of the command.
 * @typeParam O The options of one call (`TCPClusterClient` takes more).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { CallArgs } from "./client.ts";
 * import { TCPHandler } from "./handler.ts";
 * class Add extends TCPHandler<{ x: number; y: number }> {
 *   execute() { return this.params.x + this.params.y; }
 * }
 * const args: CallArgs<typeof Add> = [{ x: 1, y: 2 }, { timeout: 100 }];
 * assert.deepEqual(args, [{ x: 1, y: 2 }, { timeout: 100 }]);
 * ```
 */
export type CallArgs<H, O = CallOptions> = Record<never, never> extends ParamsOf<H>
  ? [params?: ParamsOf<H>, options?: O]
  : [params: ParamsOf<H>, options?: O];

/**
 * Options of one call.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { CallOptions } from "./client.ts";
 * const options: CallOptions = { timeout: 1_000, signal: AbortSignal.timeout(500) };
 * assert.equal(options.timeout, 1_000);
 * ```
 */
export interface CallOptions {
  /**
   * Gives up on the call when aborted (the call rejects with the signal's reason).
   *
   * @default {undefined}
   */
  signal?: AbortSignal;
  /**
   * Time limit in milliseconds, overriding the client's `timeout`; 0 waits forever.
   *
   * @default {the client's timeout}
   */
  timeout?: number;
}

interface Pending {
  readonly call: Call<unknown>;
  readonly result: PromiseWithResolvers<unknown>;
  inbox: Inbox | undefined;
  cleanup: (() => void) | undefined;
  /** Line bytes of each message queued in `inbox` and not yet taken by `recv()`, oldest first. */
  readonly unread: number[];
  /** The sum of `unread`. */
  unreadBytes: number;
  /** `recv()` calls waiting for a message: the next messages go straight to them. */
  readers: number;
}

const DEFAULT_MAX_UNREAD_MESSAGES = 1024;
const DEFAULT_MAX_UNREAD_BYTES = 4 * 1024 * 1024;

/**
 * Where the client's connection is, with what exists there. A call connects
 * from "idle" or "closed"; "closed" keeps the last read loop for
 * `disconnect()` to await.
 */
type Lifecycle =
  | { readonly name: "idle" }
  | { readonly name: "connecting"; readonly opening: Promise<void> }
  | {
    readonly name: "open";
    readonly conn: Deno.Conn;
    readonly writer: LineWriter;
    readonly reading: Promise<void>;
    /** What the server said that tells how a close is to be read. */
    readonly heard: LastWords;
  }
  | { readonly name: "closed"; readonly reading: Promise<void> };

type Open = Extract<Lifecycle, { name: "open" }>;

/** The moves between states: a failed connect goes back where it came from. */
const MOVES: { readonly [F in Lifecycle["name"]]: readonly Lifecycle["name"][] } = {
  idle: ["connecting"],
  connecting: ["open", "idle", "closed"],
  open: ["closed"],
  closed: ["connecting"],
};

/**
 * One call in progress: its final `result`, and its own `send`/`recv` for a
 * conversation with the handler. Several calls may run on one connection at
 * once, each with its own conversation.
 *
 * @typeParam R What the call resolves with.
 *
 * @example A conversation (against a handler that asks for a name)
 * ```ts ignore
 * const call = client.call("greet");
 * console.log(await call.recv()); // { question: "name?" }
 * await call.send({ name: "Ada" });
 * console.log(await call.result); // { success: true, greeting: "Hello, Ada" }
 * ```
 */
export class Call<R = unknown> {
  /** The JSON-RPC id of the call on its connection. */
  readonly id: number;
  /** The command called. */
  readonly command: string;
  /**
   * The handler's result. A handler's `error(...)` dictionary resolves it
   * too; failures the handler did not choose reject it with a
   * {@linkcode TcpyError} subclass.
   */
  readonly result: Promise<R>;
  readonly #client: TCPClient;
  readonly #recv: () => Promise<unknown>;

  /** @internal Created by {@linkcode TCPClient.call}. */
  constructor(
    client: TCPClient,
    id: number,
    command: string,
    result: Promise<R>,
    recv: () => Promise<unknown>,
  ) {
    this.#client = client;
    this.id = id;
    this.command = command;
    this.result = result;
    this.#recv = recv;
  }

  /**
   * Sends data to the handler, which reads it with `recv()`.
   *
   * @param data Any JSON-serializable value.
   * @returns Resolves once the data is queued on the connection.
   * @throws {TypeError} If the data is not JSON-serializable.
   */
  send(data: unknown): Promise<void> {
    try {
      return this.#client._send(messageText(this.id, encodeSent(data)));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Receives the next data the handler sent with `send()`.
   *
   * @typeParam T What the handler is expected to send.
   * @returns The data.
   * @throws {ConnectionClosedError} If the call ended or the connection closed
   *   with nothing left to read.
   * @throws {ProtocolError} If the server sent the call more messages than
   *   the client's `maxUnreadMessages` or `maxUnreadBytes` let it hold unread.
   */
  recv<T = unknown>(): Promise<T> {
    return this.#recv() as Promise<T>;
  }
}

/**
 * A client for a tcpy server. `execute()` connects on first use, and one
 * connection carries any number of concurrent calls, matched by id. While
 * no call is in flight the connection does not keep the process alive, so a
 * script that made its calls can simply end.
 *
 * Give it the server's command map type to have command names, params and
 * results checked at compile time: `new TCPClient<typeof commands>()`.
 * Without it, any command name and params are accepted and results are
 * `unknown`.
 *
 * @typeParam C The server's command map (`typeof commands`).
 *
 * @example The tutorial client
 * ```ts ignore
 * import { TCPClient } from "./mod.ts"; // "@tcpy/tcpy" in your project
 * console.log(await new TCPClient().execute("add", { x: 1, y: 2 }));
 * // { success: true, solution: 3 }
 * ```
 *
 * @example Typed commands
 * ```ts ignore
 * import { TCPClient } from "./mod.ts"; // "@tcpy/tcpy" in your project
 * import type { commands } from "./server.ts"; // export const commands = { add: AdditionHandler }
 *
 * const client = new TCPClient<typeof commands>();
 * const { solution } = await client.execute("add", { x: 1, y: 2 }); // solution: number
 * // client.execute("add", { x: "1", y: 2 }); // type error: x must be a number
 * // client.execute("sub", { x: 1, y: 2 });   // type error: no such command
 * ```
 */
export class TCPClient<C extends Commands = Commands> {
  readonly #host: string;
  readonly #port: number;
  readonly #maxMessageBytes: number;
  readonly #maxUnreadMessages: number;
  readonly #maxUnreadBytes: number;
  readonly #timeout: number;
  readonly #options: TCPClientOptions;
  readonly #pending = new Map<number, Pending>();
  #nextId = 1;
  #life: Lifecycle = { name: "idle" };

  /**
   * Creates a client; nothing connects until `connect()` or the first call.
   *
   * @param options Host, port and limits.
   * @throws {RangeError} If `port`, `timeout`, `maxMessageBytes`,
   *   `maxUnreadMessages`, `maxUnreadBytes` or a `reconnect` field is out of
   *   range. Every option is checked here, before anything connects.
   * @throws {TypeError} If `host` or `secret` is not a non-empty string, or
   *   `tls` or `reconnect` has the wrong shape.
   */
  constructor(options: TCPClientOptions = {}) {
    checkClientOptions(options, "TCPClient");
    this.#options = options;
    this.#host = options.host ?? "localhost";
    this.#port = checkPort(options.port ?? 7272, "TCPClient");
    this.#maxMessageBytes = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    this.#maxUnreadMessages = checkLimit(
      "maxUnreadMessages",
      options.maxUnreadMessages ?? DEFAULT_MAX_UNREAD_MESSAGES,
      "TCPClient",
    );
    this.#maxUnreadBytes = checkLimit(
      "maxUnreadBytes",
      options.maxUnreadBytes ?? DEFAULT_MAX_UNREAD_BYTES,
      "TCPClient",
    );
    this.#timeout = checkTimeout(options.timeout ?? 0, "TCPClient");
  }

  /** Whether the client has an open connection. */
  get connected(): boolean {
    return this.#life.name === "open";
  }

  /**
   * Connects to the server. Calls connect by themselves, so this is only
   * needed to fail early or to time the connection.
   *
   * @returns Resolves once connected.
   * @throws {ConnectionClosedError} If the connect failed (after the
   *   `reconnect` retries, if any): its message names the host and port, its
   *   `cause` is the system's error (such as `Deno.errors.ConnectionRefused`).
   * @throws {Deno.errors.NotCapable} Without `--allow-net` for the host (and
   *   `PermissionDenied`, or `TypeError` for a bad host, unwrapped: retrying
   *   cannot help).
   */
  connect(): Promise<void> {
    const life = this.#life;
    if (life.name === "open") return Promise.resolve();
    if (life.name === "connecting") return life.opening;
    const opening = this.#open().catch((error) => {
      this.#become(life);
      throw error;
    });
    this.#become({ name: "connecting", opening });
    return opening;
  }

  /**
   * Closes the connection. Calls still pending reject with
   * {@linkcode ConnectionClosedError}.
   *
   * @returns Resolves once the connection is closed.
   */
  async disconnect(): Promise<void> {
    if (this.#life.name === "connecting") await this.#life.opening.catch(() => {});
    this.#lose(new ConnectionClosedError("The client disconnected"));
    const life = this.#life;
    if (life.name === "closed") await life.reading;
  }

  /**
   * Same as `disconnect()`, for `await using`.
   *
   * @returns Resolves once the connection is closed.
   */
  [Symbol.asyncDispose](): Promise<void> {
    return this.disconnect();
  }

  /**
   * Calls `cmd` with `params` and resolves with the handler's result,
   * connecting first if needed.
   *
   * @typeParam K The command name.
   * @param cmd The command name.
   * @param args The handler's named params, then a signal and a timeout for this call.
   * @returns The result; a handler's `error(...)` dictionary also resolves.
   * @throws {TypeError} If the params are not JSON-serializable.
   * @throws {UnknownCommandError} If the server has no such command.
   * @throws {InvalidParamsError} If the handler refused the params.
   * @throws {HandlerFailedError} If the handler threw.
   * @throws {ShuttingDownError} If the server is draining: it answered -32007,
   *   or it closed the connection after `tcpy.bye` without reading this call
   *   (then the error's `cause` is the close). Either way the call never ran.
   * @throws {ConnectionClosedError} If the connection closed first, without
   *   `tcpy.bye`: the call may have run.
   *
   * @example
   * ```ts ignore
   * const result = await client.execute("add", { x: 1, y: 2 });
   * ```
   */
  execute<K extends keyof C & string>(cmd: K, ...args: CallArgs<C[K]>): Promise<ResultOf<C[K]>> {
    try {
      return this.call(cmd, ...args).result;
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Starts a call and returns it at once, for a conversation with the handler
   * (`call.send`, `call.recv`) before its `result`.
   *
   * @typeParam K The command name.
   * @param cmd The command name.
   * @param args The handler's named params, then a signal and a timeout for this call.
   * @returns The call in progress.
   * @throws {TypeError} If the params are not JSON-serializable.
   */
  call<K extends keyof C & string>(cmd: K, ...args: CallArgs<C[K]>): Call<ResultOf<C[K]>> {
    type R = ResultOf<C[K]>;
    const [params, options = {}] = args as [Params | undefined, CallOptions | undefined];
    const id = this.#nextId++;
    let line: string;
    try {
      line = requestText(cmd, params, id);
    } catch (error) {
      throw new TypeError(
        `Cannot call ${cmd}: params are not JSON-serializable: ${(error as Error).message}`,
      );
    }
    const result = Promise.withResolvers<unknown>();
    // A conversation may end without anyone awaiting `result`; its failure
    // then must not become an unhandled rejection. Awaiting it still throws.
    result.promise.catch(() => {});
    const pending: Pending = {
      call: undefined as never,
      result,
      inbox: undefined,
      cleanup: undefined,
      unread: [],
      unreadBytes: 0,
      readers: 0,
    };
    const recv = () => {
      pending.inbox ??= new Inbox();
      if (!this.#pending.has(id)) {
        pending.inbox.close(new ConnectionClosedError("The call has ended"));
      } else if (pending.unread.length > 0) {
        pending.unreadBytes -= pending.unread.shift()!;
      } else {
        pending.readers++;
      }
      return pending.inbox.recv();
    };
    const call = new Call<R>(this, id, cmd, result.promise as Promise<R>, recv);
    (pending as { call: Call<unknown> }).call = call;
    this.#pending.set(id, pending);
    this.#watch(id, pending, options);
    if (this.#life.name === "open") this.#life.conn.ref();
    this.connect().then(
      // A call that timed out or was aborted while connecting is not sent.
      // One still pending has an open connection: a close ends every call.
      () => {
        if (this.#pending.has(id)) this.#write(line);
      },
      (error) => this.#settle(id, { error }),
    );
    return call;
  }

  /**
   * Sends a JSON-RPC notification: the command runs, nothing is answered.
   *
   * @param cmd The command name.
   * @param params Named params for the handler.
   * @returns Resolves once the notification is queued on the connection.
   */
  async notify(cmd: string, params?: Params): Promise<void> {
    await this.connect();
    this.#write(requestText(cmd, params));
  }

  /**
   * Sends data to the handler of the most recent call still in progress (the
   * original tcpy's raw `send`). Prefer `call.send` when calls overlap.
   *
   * @param data Any JSON-serializable value.
   * @returns Resolves once queued.
   * @throws {TypeError} If no call is in progress.
   */
  send(data: unknown): Promise<void> {
    return this.#latest("send").send(data);
  }

  /**
   * Receives the next data from the handler of the most recent call still in
   * progress (the original tcpy's raw `recv`). Prefer `call.recv` when calls
   * overlap.
   *
   * @typeParam T What the handler is expected to send.
   * @returns The data.
   * @throws {TypeError} If no call is in progress.
   */
  recv<T = unknown>(): Promise<T> {
    try {
      return this.#latest("recv").recv<T>();
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** @internal Writes one line on the connection (used by {@linkcode Call.send}). */
  async _send(line: string): Promise<void> {
    await this.connect();
    this.#write(line);
  }

  /** The one place the lifecycle moves. */
  #become(next: Lifecycle): void {
    const from = this.#life.name;
    if (!MOVES[from].includes(next.name)) {
      throw new Error(`TCPClient bug: its connection cannot go from ${from} to ${next.name}`);
    }
    this.#life = next;
  }

  /** Queues `line` on the open connection. */
  #write(line: string): void {
    if (this.#life.name !== "open") {
      throw new ConnectionClosedError("The connection closed before the message was sent");
    }
    this.#life.writer.write(line);
  }

  #latest(what: string): Call<unknown> {
    let latest: Pending | undefined;
    for (const pending of this.#pending.values()) latest = pending;
    if (!latest) throw new TypeError(`Cannot ${what}(): no call is in progress on this client`);
    return latest.call;
  }

  #watch(id: number, pending: Pending, options: CallOptions): void {
    const timeout = options.timeout ?? this.#timeout;
    const signal = options.signal;
    if (signal?.aborted) {
      queueMicrotask(() => this.#settle(id, { error: signal.reason }));
      return;
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    if (timeout > 0) {
      timer = setTimeout(() => {
        this.#settle(id, { error: callTimedOut(pending.call.command, timeout) });
      }, timeout);
    }
    const onAbort = () => this.#settle(id, { error: signal!.reason });
    signal?.addEventListener("abort", onAbort, { once: true });
    if (timer !== undefined || signal) {
      pending.cleanup = () => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
      };
    }
  }

  #settle(id: number, outcome: { value: unknown } | { error: unknown }): void {
    const pending = this.#pending.get(id);
    if (!pending) return;
    this.#pending.delete(id);
    pending.cleanup?.();
    pending.inbox?.close(new ConnectionClosedError("The call has ended"));
    if ("error" in outcome) pending.result.reject(outcome.error);
    else pending.result.resolve(outcome.value);
    if (this.#pending.size === 0 && this.#life.name === "open") this.#life.conn.unref();
  }

  /** The CA certificates of the `tls` option; a missing `caFile` is no connect error. */
  async #caCerts(): Promise<string[] | undefined> {
    const { tls } = this.#options;
    const trust = typeof tls === "object" ? tls : {};
    return trust.caFile
      ? [...(trust.caCerts ?? []), await Deno.readTextFile(trust.caFile)]
      : trust.caCerts;
  }

  async #dial(caCerts: string[] | undefined): Promise<Deno.Conn> {
    if (!this.#options.tls) {
      const conn = await Deno.connect({ hostname: this.#host, port: this.#port });
      conn.setNoDelay(true);
      return conn;
    }
    return await Deno.connectTls({ hostname: this.#host, port: this.#port, caCerts });
  }

  async #connectWithRetries(): Promise<Deno.Conn> {
    const { reconnect } = this.#options;
    const backoff = typeof reconnect === "object" ? reconnect : {};
    const retries = reconnect ? backoff.retries ?? 5 : 0;
    const caCerts = await this.#caCerts();
    for (let attempt = 0;; attempt++) {
      try {
        return await this.#dial(caCerts);
      } catch (error) {
        if (isFatalConnectError(error) || attempt >= retries) {
          throw connectFailure(error, this.#host, this.#port, attempt + 1);
        }
        await sleep(backoffDelay(attempt, backoff));
      }
    }
  }

  async #open(): Promise<void> {
    const conn = await this.#connectWithRetries();
    const writer = new LineWriter(conn, (error) => this.#lose(error, open));
    if (this.#options.secret !== undefined) {
      // Id 0 is never used by calls; the server checks this line before any other.
      writer.write(requestText(AUTH_METHOD, { secret: this.#options.secret }, 0));
    }
    if (this.#pending.size === 0) conn.unref();
    const splitter = new LineSplitter({
      line: (bytes) => this.#onLine(bytes, open),
      oversize: (limit) =>
        this.#lose(
          new ProtocolError(`Reply larger than ${limit} bytes: closing the connection`),
          open,
        ),
    }, { maxMessageBytes: this.#maxMessageBytes });
    const reading = readLines(conn, splitter).then(
      () => this.#lose(new ConnectionClosedError("The server closed the connection"), open),
      (error) => this.#lose(error, open),
    );
    const open: Open = {
      name: "open",
      conn,
      writer,
      reading,
      heard: { bye: false, reported: undefined },
    };
    this.#become(open);
  }

  #onLine(bytes: Uint8Array, open: Open): void {
    let value: unknown;
    try {
      value = decodeLine(bytes);
    } catch (error) {
      this.#lose(new ProtocolError(`Unreadable reply: ${(error as Error).message}`), open);
      return;
    }
    const items = Array.isArray(value) ? value : [value];
    // The messages of a batch share its line's bytes.
    const bytesEach = Math.ceil(bytes.length / Math.max(1, items.length));
    for (const item of items) {
      const reply = parseReply(item);
      switch (reply.kind) {
        case "result":
          this.#settle(reply.id as number, { value: reply.result });
          break;
        case "error":
          if (reply.id === null) open.heard.reported = fromWireError(reply.error);
          else this.#settle(reply.id as number, callerView(reply.error));
          break;
        case "notification":
          if (reply.method === MESSAGE_METHOD) this.#deliver(reply.params, bytesEach);
          else if (reply.method === BYE_METHOD) open.heard.bye = true;
          break;
        case "invalid":
          this.#lose(new ProtocolError(`Invalid reply: ${reply.reason}`), open);
          return;
      }
    }
  }

  #deliver(params: unknown, bytes: number): void {
    const message = parseMessageParams(params);
    if (!message) return;
    const id = message.id as number;
    const pending = this.#pending.get(id);
    if (!pending) return; // ended, or failed for too many unread messages: dropped
    if (pending.readers > 0) {
      pending.readers--;
    } else {
      pending.unread.push(bytes);
      pending.unreadBytes += bytes;
      const limit = pending.unread.length > this.#maxUnreadMessages
        ? `${this.#maxUnreadMessages} messages (maxUnreadMessages)`
        : pending.unreadBytes > this.#maxUnreadBytes
        ? `${this.#maxUnreadBytes} bytes of messages (maxUnreadBytes)`
        : undefined;
      if (limit) {
        this.#overflow(id, pending, limit);
        return;
      }
    }
    (pending.inbox ??= new Inbox()).push(message.data);
  }

  /** Fails a call the server sent too much unread data, and frees what it held. */
  #overflow(id: number, pending: Pending, limit: string): void {
    const error = new ProtocolError(
      `Call ${id} to "${pending.call.command}" failed: the server sent it more than ${limit} ` +
        "not yet read with recv(); its further messages are dropped",
    );
    pending.inbox?.close(error);
    // A new inbox, closed: its recv() rejects at once instead of returning
    // the unread messages, which are let go.
    pending.inbox = new Inbox();
    pending.inbox.close(error);
    this.#settle(id, { error });
  }

  /**
   * Closes the connection `open` (if it still is the client's) for `reason`
   * and fails every pending call as {@linkcode pendingCallError} says.
   */
  #lose(reason: Error, open: Lifecycle = this.#life): void {
    if (open.name !== "open" || this.#life !== open) return;
    this.#become({ name: "closed", reading: open.reading });
    try {
      // An unref'd read would not keep the event loop alive until it settles,
      // and disconnect() awaits it.
      open.conn.ref();
      open.conn.close();
    } catch {
      // Already closed.
    }
    const error = pendingCallError(reason, open.heard);
    for (const id of [...this.#pending.keys()]) this.#settle(id, { error });
  }
}

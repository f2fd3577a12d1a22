/**
 * The server's options: their types, defaults and ranges, how they are
 * resolved and checked, and the limits derived from them. The public facade
 * (server.ts) re-exports the public part; the internals read them from here.
 *
 * @module
 */

import { DEFAULT_MAX_MESSAGE_BYTES } from "../framing.ts";
import type { Commands } from "../handler.ts";
import type { CallLimits } from "./executor.ts";
import type { CallFailure, CallRecord } from "./observe.ts";

/**
 * Where a server listens, as given to `onListen` and returned by `listen()`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { ListenAddress } from "./options.ts";
 * const where: ListenAddress = { hostname: "127.0.0.1", port: 7272 };
 * assert.equal(`${where.hostname}:${where.port}`, "127.0.0.1:7272");
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
 * import type { TlsOptions } from "./options.ts";
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
 * import type { TCPServerOptions } from "./options.ts";
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

/**
 * Fills in defaults and checks every option once.
 *
 * @param options The options as given to the server (`commands` is left out).
 * @returns Every option, defaults filled in.
 * @throws {RangeError} If a numeric option is out of range.
 * @throws {TypeError} If `host` or `secret` is empty or not a string.
 */
export function resolveOptions(options: TCPServerOptions): ResolvedServerOptions {
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

/**
 * What each call may hold unread and send, from the server's options.
 *
 * @param options The resolved options.
 * @returns The limits of one call.
 */
export function callLimits(
  options: Pick<ResolvedServerOptions, "maxUnreadMessages" | "maxUnreadBytes" | "maxReplyBytes">,
): CallLimits {
  return {
    unread: { messages: options.maxUnreadMessages, bytes: options.maxUnreadBytes },
    maxSendBytes: options.maxReplyBytes,
  };
}

/**
 * One thread's part of a server-wide limit shared by `threads` threads
 * (`maxConnections`, `maxPendingCalls` over the I/O threads): never less
 * than 1, and the parts together never pass the limit.
 *
 * @param limit The server-wide limit.
 * @param threads How many threads share it.
 * @returns The limit of each thread.
 */
export function perThread(limit: number, threads: number): number {
  return Math.max(1, Math.floor(limit / threads));
}

/**
 * What `TCPClient` and `TCPClusterClient` check and decide alike: their
 * option ranges, how a failed connect is reported, and what a pending call
 * gets when its connection closes.
 *
 * @module
 */

import {
  AuthenticationError,
  ConnectionClosedError,
  ProtocolError,
  ShuttingDownError,
  TcpyError,
} from "../errors.ts";

/**
 * Checks a port option.
 *
 * @throws {RangeError} Unless `port` is an integer from 1 to 65535.
 */
export function checkPort(port: unknown, who: string): number {
  if (typeof port !== "number" || !Number.isSafeInteger(port) || port < 1 || port > 65535) {
    throw new RangeError(
      `Cannot create ${who} for port ${port}: port must be an integer from 1 to 65535`,
    );
  }
  return port;
}

/**
 * Checks a timeout option (milliseconds, 0 for none).
 *
 * @throws {RangeError} Unless `timeout` is a number >= 0.
 */
export function checkTimeout(timeout: number, who: string): number {
  if (!(timeout >= 0)) {
    throw new RangeError(`Cannot create ${who} with timeout ${timeout}: must be >= 0`);
  }
  return timeout;
}

/**
 * Checks a limit option.
 *
 * @throws {RangeError} Unless `value` is an integer >= 1.
 */
export function checkLimit(name: string, value: number, who: string): number {
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new RangeError(`Cannot create ${who} with ${name} ${value}: must be an integer >= 1`);
  }
  return value;
}

/**
 * Checks every option of a `TCPClient` at once, before anything connects, so
 * that a bad option is reported by the constructor (naming the option) and
 * never leaves a socket open behind a failed connect.
 *
 * @throws {TypeError} If `options` is not an object, `host` is not a
 *   non-empty string, `secret` is not a non-empty string, `tls` is neither a
 *   boolean nor `{ caCerts?: string[]; caFile?: string }`, or `reconnect`
 *   is neither a boolean nor an object.
 * @throws {RangeError} If `port`, `timeout`, `maxMessageBytes`,
 *   `maxUnreadMessages`, `maxUnreadBytes` or a `reconnect` field is out of range.
 */
export function checkClientOptions(options: unknown, who: string): void {
  if (typeof options !== "object" || options === null || Array.isArray(options)) {
    throw new TypeError(`Cannot create ${who}: options must be an object`);
  }
  const o = options as Record<string, unknown>;
  if (o.host !== undefined && (typeof o.host !== "string" || o.host === "")) {
    throw new TypeError(`Cannot create ${who}: host must be a non-empty string, got ${o.host}`);
  }
  if (o.port !== undefined) checkPort(o.port, who);
  if (o.timeout !== undefined) {
    if (typeof o.timeout !== "number") {
      throw new TypeError(`Cannot create ${who}: timeout must be a number, got ${o.timeout}`);
    }
    checkTimeout(o.timeout, who);
  }
  for (const name of ["maxMessageBytes", "maxUnreadMessages", "maxUnreadBytes"]) {
    if (o[name] !== undefined) checkLimit(name, o[name] as number, who);
  }
  if (o.secret !== undefined && (typeof o.secret !== "string" || o.secret === "")) {
    throw new TypeError(`Cannot create ${who}: secret must be a non-empty string`);
  }
  const tls = o.tls;
  if (tls !== undefined && typeof tls !== "boolean") {
    const trust = tls as { caCerts?: unknown; caFile?: unknown };
    if (typeof tls !== "object" || tls === null || Array.isArray(tls)) {
      throw new TypeError(
        `Cannot create ${who}: tls must be a boolean or { caCerts?: string[]; caFile?: string }`,
      );
    }
    if (
      trust.caCerts !== undefined &&
      !(Array.isArray(trust.caCerts) && trust.caCerts.every((c) => typeof c === "string"))
    ) {
      throw new TypeError(`Cannot create ${who}: tls.caCerts must be an array of PEM strings`);
    }
    if (trust.caFile !== undefined && (typeof trust.caFile !== "string" || !trust.caFile)) {
      throw new TypeError(`Cannot create ${who}: tls.caFile must be a non-empty path`);
    }
  }
  const reconnect = o.reconnect;
  if (reconnect !== undefined && typeof reconnect !== "boolean") {
    if (typeof reconnect !== "object" || reconnect === null || Array.isArray(reconnect)) {
      throw new TypeError(
        `Cannot create ${who}: reconnect must be a boolean or { retries, baseDelay, maxDelay }`,
      );
    }
    for (const key of ["retries", "baseDelay", "maxDelay"]) {
      const value = (reconnect as Record<string, unknown>)[key];
      if (value !== undefined && !(Number.isSafeInteger(value) && (value as number) >= 0)) {
        throw new RangeError(
          `Cannot create ${who} with reconnect.${key} ${value}: must be an integer >= 0`,
        );
      }
    }
  }
}

/**
 * Whether a connect error is the caller's to fix (no permission, a bad
 * option), so retrying it or trying another endpoint cannot help.
 */
export function isFatalConnectError(error: unknown): boolean {
  return error instanceof Deno.errors.NotCapable ||
    error instanceof Deno.errors.PermissionDenied || error instanceof TypeError;
}

/**
 * The error a failed connect is reported with: the original as `cause`,
 * wrapped in a {@linkcode ConnectionClosedError} naming where it tried to
 * go, except for fatal errors (see {@linkcode isFatalConnectError}), which
 * pass unchanged.
 */
export function connectFailure(error: unknown, host: string, port: number, attempts = 1): unknown {
  if (isFatalConnectError(error)) return error;
  const address = host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
  const tries = attempts > 1 ? ` (${attempts} attempts)` : "";
  const message = error instanceof Error ? error.message : String(error);
  return new ConnectionClosedError(`Cannot connect to ${address}${tries}: ${message}`, {
    cause: error,
  });
}

/** What the server said on a connection that tells how its close is to be read. */
export interface LastWords {
  /** It sent `tcpy.bye`: it had answered every request it read. */
  bye: boolean;
  /** An error it reported with id null (one it could not tie to a call), if any. */
  reported: Error | undefined;
}

/**
 * The error each call still pending gets when its connection closes for
 * `reason`, given what the server said before. `TCPClusterClient` retries
 * by it: a {@linkcode ShuttingDownError} with a `cause` means the call never
 * ran.
 */
export function pendingCallError(reason: Error, heard: LastWords): Error {
  const { bye, reported } = heard;
  if (reported instanceof AuthenticationError) return reported;
  // A server that reported an error said tcpy.bye because of it, not because
  // it is draining: retrying would not help, so that error is passed on.
  if (bye && !reported) {
    return new ShuttingDownError(
      "The server closed the connection gracefully before reading this call; it never ran",
      { cause: reason },
    );
  }
  if (reason instanceof ProtocolError) return reason;
  if (reported) {
    return new ConnectionClosedError(`${reason.message}: ${reported.message}`, { cause: reported });
  }
  if (reason instanceof TcpyError) return reason;
  return new ConnectionClosedError(`The connection failed: ${reason.message}`, { cause: reason });
}

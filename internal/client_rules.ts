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

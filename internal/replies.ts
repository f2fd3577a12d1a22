/**
 * What a caller sees, in one place. The rules for error replies that both
 * sides must agree on: which codes are tcpy's own, what counts as a
 * handler's `error(...)` dictionary, and what a caller gets for an error
 * reply (the dictionary, or a thrown {@linkcode TcpyError}); and the one
 * wording of a call's timeout. The server (run_handler.ts), `TCPClient`,
 * `TCPClusterClient` and the test helpers all use these, so they cannot
 * drift apart.
 *
 * @module
 */

import { CallTimeoutError, fromWireError, type TcpyError, type WireError } from "../errors.ts";

/**
 * Whether `code` is in the range JSON-RPC reserves (-32768 to -32000): only
 * tcpy itself answers with those; a handler's own code outside it.
 */
export function isReserved(code: number): boolean {
  return code >= -32768 && code <= -32000;
}

/**
 * Whether `value` is a handler's `error(...)` dictionary: an object (not an
 * array) with `error: true` and a string `message`.
 */
export function isErrorReply(
  value: unknown,
): value is { error: true; message: string; code?: unknown } {
  return typeof value === "object" && value !== null && !Array.isArray(value) &&
    (value as { error?: unknown }).error === true &&
    typeof (value as { message?: unknown }).message === "string";
}

/**
 * What a caller gets for a JSON-RPC error reply: the handler's own
 * `error(...)` dictionary as a value (a code outside the reserved range and
 * the dictionary as `data`), or else the {@linkcode TcpyError} to throw.
 */
export function callerView(error: WireError): { value: unknown } | { error: TcpyError } {
  if (!isReserved(error.code) && isErrorReply(error.data)) return { value: error.data };
  return { error: fromWireError(error) };
}

/**
 * The error of a call that ran out of time, worded as the server words a
 * handler's timeout: `Call to "add" timed out after 4000 ms`.
 */
export function callTimedOut(command: string, ms: number): CallTimeoutError {
  return new CallTimeoutError(`Call to "${command}" timed out after ${ms} ms`);
}

/**
 * Runs one handler for one call and turns whatever happens into an
 * {@linkcode Outcome}: the same code on the main thread and in a worker.
 *
 * @module
 */

import { ErrorCode, TcpyError, type WireError } from "../errors.ts";
import { toJson } from "../codec.ts";
import type { HandlerClass } from "../handler.ts";
import { attachChannel, type Cancellation, type Channel } from "./channel.ts";
import { isErrorReply, isReserved } from "./replies.ts";

/**
 * A finished call: the result's JSON text, or the error to answer with.
 * `returnedUndefined` marks an `execute()` that returned nothing (a
 * forgotten `return`?); `stack` is the thrown error's stack, for the
 * server's log only, never sent.
 */
export type Outcome =
  | { json: string; returnedUndefined?: true }
  | { error: WireError; stack?: string };

/** Maps what `execute()` returned to an outcome. */
export function settle(value: unknown): Outcome {
  if (isErrorReply(value)) {
    const code = typeof value.code === "number" && Number.isSafeInteger(value.code) &&
        !isReserved(value.code)
      ? value.code
      : ErrorCode.HANDLER_ERROR;
    const checked = toJson(value);
    if (checked instanceof Error) return unsendable(checked);
    return { error: { code, message: value.message, data: JSON.parse(checked) } };
  }
  if (value === undefined) return UNDEFINED;
  const json = toJson(value);
  return json instanceof Error ? unsendable(json) : { json };
}

const UNDEFINED: Outcome = { json: "null", returnedUndefined: true };

function unsendable(error: Error): Outcome {
  return {
    error: {
      code: ErrorCode.INTERNAL_ERROR,
      message: `Handler returned a value that is not JSON: ${error.message}`,
    },
  };
}

/** Maps what a handler threw to an outcome. */
export function fail(error: unknown): Outcome {
  try {
    if (error instanceof TcpyError) return { error: error.toWire() };
  } catch {
    // A revoked Proxy throws even on instanceof: described below.
  }
  const { name, message } = describe(error);
  let stack: string | undefined;
  try {
    stack = error instanceof Error && typeof error.stack === "string" ? error.stack : undefined;
  } catch {
    // A revoked Proxy: no stack.
  }
  return {
    error: {
      code: ErrorCode.INTERNAL_ERROR,
      message: `Handler failed: ${message}`,
      data: { name },
    },
    ...(stack === undefined ? {} : { stack }),
  };
}

/**
 * A thrown value's name and message as plain strings. Never throws: a value
 * `String()` cannot convert (a null-prototype object, a throwing `toString`,
 * a revoked Proxy) must fail its call, not the server.
 */
export function describe(error: unknown): { name: string; message: string } {
  try {
    if (error instanceof Error) return { name: String(error.name), message: String(error.message) };
    return { name: typeof error, message: String(error) };
  } catch {
    return { name: typeof error, message: `a thrown ${typeof error} that cannot be shown as text` };
  }
}

/** `settle`, for a promise's result: whatever goes wrong becomes an outcome, never a rejection. */
function settleSafely(value: unknown): Outcome {
  try {
    return settle(value);
  } catch (error) {
    return fail(error);
  }
}

/**
 * Creates the handler with `params`, attaches `channel` (if the call can
 * converse) and runs `execute()`. Sync handlers finish synchronously, so the
 * inline path costs no promise.
 */
export function runHandler(
  cls: HandlerClass,
  params: unknown,
  channel: Channel | undefined,
  cancellation?: Cancellation,
): Outcome | Promise<Outcome> {
  if (Array.isArray(params)) {
    return {
      error: {
        code: ErrorCode.INVALID_PARAMS,
        message: "Invalid params: tcpy commands take named params (a JSON object), not an array",
      },
    };
  }
  try {
    const handler = new cls((params ?? {}) as Record<string, unknown>);
    attachChannel(handler, channel, cancellation);
    const result = handler.execute();
    if (result instanceof Promise) return result.then(settleSafely, fail);
    return settle(result);
  } catch (error) {
    return fail(error);
  }
}

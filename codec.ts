/**
 * The JSON-RPC 2.0 message codec: one line of bytes to a typed message and
 * back. Pure: no sockets, no `Deno.*`. See PROTOCOL.md for the wire format,
 * including tcpy's conversation extension ({@linkcode MESSAGE_METHOD}).
 *
 * @module
 */

import { InvalidRequestError, ParseError, type WireError } from "./errors.ts";

/**
 * A JSON-RPC request id: chosen by the client, echoed in the reply.
 *
 * @example
 * ```ts
 * import type { JsonRpcId } from "./codec.ts";
 * const ids: JsonRpcId[] = [1, "req-7", null];
 * ```
 */
export type JsonRpcId = string | number | null;

/**
 * Named params, as tcpy handlers take them.
 *
 * @example
 * ```ts
 * import type { Params } from "./codec.ts";
 * const params: Params = { x: 1, y: 2 };
 * ```
 */
export type Params = Record<string, unknown>;

/**
 * The notification method that carries conversation data, in both
 * directions, tied to a call by `params.id`:
 * `{"jsonrpc":"2.0","method":"tcpy.message","params":{"id":1,"data":...}}`.
 *
 * @example Answering a handler from a plain JSON-RPC client
 * ```ts
 * import assert from "node:assert/strict";
 * import { MESSAGE_METHOD } from "./codec.ts";
 * // The reply to call 7's question, as one line on the socket.
 * const line = JSON.stringify({
 *   jsonrpc: "2.0",
 *   method: MESSAGE_METHOD,
 *   params: { id: 7, data: { name: "Ada" } },
 * }) + "\n";
 * assert.ok(line.includes('"method":"tcpy.message"'));
 * ```
 */
export const MESSAGE_METHOD = "tcpy.message";

/**
 * The built-in health check: `{"jsonrpc":"2.0","id":1,"method":"tcpy.ping"}`
 * is answered with `{"pong":true}` on the main thread, without touching the
 * worker pool, or with -32007 while the server is shutting down. Load
 * balancers can use it as their health check.
 */
export const PING_METHOD = "tcpy.ping";

/**
 * The notification a server sends just before it closes a connection
 * gracefully: every request it read on that connection has been answered,
 * so a call still unanswered was never read and never ran, and is safe to
 * send again elsewhere.
 */
export const BYE_METHOD = "tcpy.bye";

/**
 * The authentication call a server with a shared secret expects first:
 * `{"jsonrpc":"2.0","id":0,"method":"tcpy.auth","params":{"secret":"..."}}`.
 */
export const AUTH_METHOD = "tcpy.auth";

/** Command names starting with this are reserved for tcpy's own methods. */
export const RESERVED_PREFIX = "tcpy.";

/**
 * Deepest nesting accepted in a message. Deeper JSON is refused with
 * -32600: the worker pool's `postMessage` throws above ~3,600 levels, and no
 * sane command needs more.
 */
export const MAX_DEPTH = 64;

/** A request or notification, as read by a server. */
export type Incoming =
  | { kind: "call"; id: JsonRpcId; method: string; params: unknown }
  | { kind: "notification"; method: string; params: unknown }
  | { kind: "invalid"; id: JsonRpcId; error: WireError };

/** A response or notification, as read by a client. */
export type Reply =
  | { kind: "result"; id: JsonRpcId; result: unknown }
  | { kind: "error"; id: JsonRpcId; error: WireError }
  | { kind: "notification"; method: string; params: unknown }
  | { kind: "invalid"; reason: string };

// A fatal TextDecoder is several times slower than a lenient one, so decode
// leniently and re-check strictly only when U+FFFD shows up: invalid bytes
// always produce it, valid text rarely contains it.
const lenient = new TextDecoder("utf-8", { ignoreBOM: true });
const strict = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/**
 * Decodes one line: strict UTF-8, then JSON.
 *
 * @param line The line's bytes, without `\n`.
 * @returns The parsed JSON value.
 * @throws {ParseError} If the bytes are not UTF-8 or not JSON.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeLine } from "./codec.ts";
 * const value = decodeLine(new TextEncoder().encode('{"a":1}'));
 * assert.deepEqual(value, { a: 1 });
 * ```
 */
export function decodeLine(line: Uint8Array): unknown {
  let text = lenient.decode(line);
  if (text.includes("\uFFFD")) {
    try {
      text = strict.decode(line);
    } catch (cause) {
      throw new ParseError("Parse error: message is not valid UTF-8", { cause });
    }
  }
  return parseLine(text);
}

/**
 * Parses one line already decoded to text (and known to be valid UTF-8):
 * `JSON.parse`, keeping the exact text of ids above 2^53.
 *
 * @param text The line, without `\n`.
 * @returns The parsed JSON value.
 * @throws {ParseError} If the text is not JSON.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseLine } from "./codec.ts";
 * assert.deepEqual(parseLine('{"a":1}'), { a: 1 });
 * ```
 */
export function parseLine(text: string): unknown {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (cause) {
    throw new ParseError(`Parse error: ${(cause as Error).message}`, { cause });
  }
  if (hasInexactId(value)) value = JSON.parse(text, keepIdText);
  return value;
}

/**
 * A whole chunk decoded at once, when that is safe: if every byte is ASCII,
 * a line's bytes at offsets [a, b) are exactly the text's characters
 * [a, b), so each line is a slice of one decode instead of a decode of its
 * own (one call into the runtime per read, not per line).
 *
 * @param chunk Bytes as read.
 * @returns The chunk as text if it is all ASCII, else `undefined`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { asciiText } from "./codec.ts";
 * assert.equal(asciiText(new TextEncoder().encode("ab\n")), "ab\n");
 * assert.equal(asciiText(new TextEncoder().encode("é")), undefined);
 * ```
 */
export function asciiText(chunk: Uint8Array): string | undefined {
  const text = lenient.decode(chunk);
  // Any byte above 0x7f makes the text shorter (a multi-byte character) or
  // brings in U+FFFD (an invalid byte).
  return text.length === chunk.length && !text.includes("\uFFFD") ? text : undefined;
}

/**
 * Source text of ids that a JSON number cannot hold exactly (above 2^53),
 * by the object that holds them. JSON-RPC requires a reply to carry the same
 * id, so such an id is echoed from its text, never from the rounded number.
 */
const idTexts = new WeakMap<object, string>();

function inexact(id: unknown): boolean {
  return typeof id === "number" && !Number.isSafeInteger(id);
}

/**
 * Whether a request, or an element of a batch, or its message params, has
 * an inexact numeric id. One level only: a batch's elements are not
 * searched further (a deeply nested array must not cost a deep recursion).
 */
function hasInexactId(value: unknown): boolean {
  if (!Array.isArray(value)) return requestHasInexactId(value);
  for (const item of value) if (requestHasInexactId(item)) return true;
  return false;
}

function requestHasInexactId(value: unknown): boolean {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return false;
  const { id, params } = value as { id?: unknown; params?: { id?: unknown } };
  return inexact(id) ||
    (typeof params === "object" && params !== null && inexact(params.id));
}

// Only used for the rare message found by hasInexactId: a reviver makes
// JSON.parse several times slower.
function keepIdText(
  this: object,
  key: string,
  value: unknown,
  context?: { source?: string },
): unknown {
  if (key === "id" && inexact(value) && context?.source) idTexts.set(this, context.source);
  return value;
}

/**
 * The id of `holder` (a request, or `tcpy.message` params) exactly as the
 * client wrote it: a safe number as is, a larger one as raw JSON text.
 */
function exactId(holder: object, id: JsonRpcId): JsonRpcId {
  if (!inexact(id)) return id;
  const text = idTexts.get(holder);
  return text === undefined ? id : (JSON as unknown as RawJson).rawJSON(text) as never;
}

interface RawJson {
  rawJSON(text: string): object;
  isRawJSON(value: unknown): boolean;
}

/**
 * A key for matching ids: the id itself, or for an id kept as raw text
 * (see {@linkcode decodeLine}) its exact value as a `bigint`, so two parses
 * of the same large id match and two different ones never do.
 *
 * @param id An id from {@linkcode parseIncoming} or {@linkcode parseMessageParams}.
 * @returns A value to use as a `Map` key.
 *
 * @example
 * ```ts
 * import { decodeLine, idKey, parseIncoming } from "./codec.ts";
 * const line = new TextEncoder().encode('{"jsonrpc":"2.0","id":9007199254740993,"method":"a"}');
 * const msg = parseIncoming(decodeLine(line));
 * if (msg.kind !== "call") throw new Error("expected a call");
 * if (idKey(msg.id) !== 9007199254740993n) throw new Error("id was rounded");
 * ```
 */
export function idKey(id: JsonRpcId): JsonRpcId | bigint {
  if (typeof id !== "object" || id === null) return id;
  const text = (id as { rawJSON: string }).rawJSON;
  return /^-?\d+$/.test(text) ? BigInt(text) : Number(text);
}

/**
 * Whether a JSON value nests deeper than `max` arrays and objects.
 *
 * @param value A parsed JSON value.
 * @param max The deepest nesting allowed.
 * @returns `true` if it is too deep.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { tooDeep } from "./codec.ts";
 * assert.equal(tooDeep([[[1]]], 2), true);
 * assert.equal(tooDeep([[[1]]], 3), false);
 * ```
 */
export function tooDeep(value: unknown, max: number = MAX_DEPTH): boolean {
  if (typeof value !== "object" || value === null) return false;
  if (max === 0) return true;
  // for...in, not Object.values: no array per object on the hot path.
  const record = value as Record<string, unknown>;
  for (const key in record) {
    const item = record[key];
    if (typeof item === "object" && item !== null && tooDeep(item, max - 1)) return true;
  }
  return false;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function isId(value: unknown): value is JsonRpcId {
  return value === null || typeof value === "string" ||
    (typeof value === "number" && Number.isFinite(value));
}

function invalid(id: JsonRpcId, message: string): Incoming {
  return { kind: "invalid", id, error: new InvalidRequestError(message).toWire() };
}

/**
 * Classifies one element of what a server read: a call (has an id), a
 * notification (no id), or an invalid request with the error to answer.
 *
 * @param value A parsed JSON value (one batch element, or the whole line).
 * @returns The classified message.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseIncoming } from "./codec.ts";
 * const msg = parseIncoming({ jsonrpc: "2.0", id: 1, method: "add", params: { x: 1, y: 2 } });
 * assert.equal(msg.kind, "call");
 * assert.equal(msg.method, "add");
 * ```
 */
export function parseIncoming(value: unknown): Incoming {
  if (!isObject(value)) return invalid(null, "Invalid request: expected a JSON object");
  const id = Object.hasOwn(value, "id") ? value.id : undefined;
  if (id !== undefined && !isId(id)) {
    return invalid(null, "Invalid request: id must be a string, a number or null");
  }
  const replyId = id === undefined ? null : exactId(value, id);
  if (value.jsonrpc !== "2.0") return invalid(replyId, 'Invalid request: jsonrpc must be "2.0"');
  const method = value.method;
  if (typeof method !== "string") {
    return invalid(replyId, "Invalid request: method must be a string");
  }
  const params = value.params;
  if (params !== undefined && (typeof params !== "object" || params === null)) {
    return invalid(replyId, "Invalid request: params must be an object or an array");
  }
  if (tooDeep(params, MAX_DEPTH - 1)) {
    return invalid(replyId, `Invalid request: params nest deeper than ${MAX_DEPTH} levels`);
  }
  return id === undefined
    ? { kind: "notification", method, params }
    : { kind: "call", id: exactId(value, id), method, params };
}

/**
 * Classifies one element of what a client read: a result, an error, or a
 * notification from the server (such as conversation data).
 *
 * @param value A parsed JSON value.
 * @returns The classified reply.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseReply } from "./codec.ts";
 * const reply = parseReply({ jsonrpc: "2.0", id: 1, result: { success: true, solution: 3 } });
 * assert.equal(reply.kind, "result");
 * assert.equal(reply.id, 1);
 * ```
 */
export function parseReply(value: unknown): Reply {
  if (!isObject(value) || value.jsonrpc !== "2.0") {
    return { kind: "invalid", reason: "reply is not a JSON-RPC 2.0 object" };
  }
  if (typeof value.method === "string" && !Object.hasOwn(value, "id")) {
    return { kind: "notification", method: value.method, params: value.params };
  }
  const id = value.id;
  if (!isId(id)) return { kind: "invalid", reason: "reply has no valid id" };
  if (Object.hasOwn(value, "result")) return { kind: "result", id, result: value.result };
  const error = value.error;
  if (isObject(error) && typeof error.code === "number" && typeof error.message === "string") {
    const wire: WireError = { code: error.code, message: error.message };
    if (error.data !== undefined) wire.data = error.data;
    return { kind: "error", id, error: wire };
  }
  return { kind: "invalid", reason: "reply has neither result nor a valid error" };
}

/**
 * The JSON text of a successful response, built around an already encoded
 * result (the worker pool encodes results off the main thread).
 *
 * @param id The request's id.
 * @param resultJson `JSON.stringify` of the result.
 * @returns One JSON-RPC response, without `\n`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { resultText } from "./codec.ts";
 * assert.equal(resultText(1, "3"), '{"jsonrpc":"2.0","id":1,"result":3}');
 * ```
 */
export function resultText(id: JsonRpcId, resultJson: string): string {
  // A number id prints as itself: JSON.parse never yields NaN or Infinity,
  // and an id beyond 2^53 arrives as raw JSON text (an object), not a number.
  return `{"jsonrpc":"2.0","id":${
    typeof id === "number" ? id : JSON.stringify(id)
  },"result":${resultJson}}`;
}

/**
 * The JSON text of an error response.
 *
 * @param id The request's id (`null` if it could not be read).
 * @param error The error object.
 * @returns One JSON-RPC response, without `\n`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { errorText } from "./codec.ts";
 * const text = errorText(null, { code: -32700, message: "Parse error" });
 * assert.equal(JSON.parse(text).error.code, -32700);
 * ```
 */
export function errorText(id: JsonRpcId, error: WireError): string {
  return JSON.stringify({ jsonrpc: "2.0", id, error });
}

/**
 * The JSON text of a request (or, with `id` undefined, a notification).
 *
 * @param method The command.
 * @param params Its named params.
 * @param id The call's id; leave it out for a notification.
 * @returns One JSON-RPC request, without `\n`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { requestText } from "./codec.ts";
 * assert.equal(
 *   requestText("add", { x: 1, y: 2 }, 1),
 *   '{"jsonrpc":"2.0","id":1,"method":"add","params":{"x":1,"y":2}}',
 * );
 * ```
 */
export function requestText(method: string, params?: unknown, id?: JsonRpcId): string {
  const head = id === undefined
    ? `{"jsonrpc":"2.0"`
    : `{"jsonrpc":"2.0","id":${JSON.stringify(id)}`;
  const tail = params === undefined ? "" : `,"params":${JSON.stringify(params)}`;
  return `${head},"method":${JSON.stringify(method)}${tail}}`;
}

/**
 * The JSON text of a conversation message for call `id`, with `dataJson`
 * already encoded.
 *
 * @param id The call the data belongs to.
 * @param dataJson `JSON.stringify` of the data.
 * @returns One `tcpy.message` notification, without `\n`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { messageText } from "./codec.ts";
 * const msg = JSON.parse(messageText(7, '{"q":"name?"}'));
 * assert.equal(msg.method, "tcpy.message");
 * assert.deepEqual(msg.params, { id: 7, data: { q: "name?" } });
 * ```
 */
export function messageText(id: JsonRpcId, dataJson: string): string {
  return `{"jsonrpc":"2.0","method":"${MESSAGE_METHOD}","params":{"id":${
    JSON.stringify(id)
  },"data":${dataJson}}}`;
}

/**
 * Reads the `{ id, data }` params of a `tcpy.message` notification.
 *
 * @param params The notification's params.
 * @returns The call id and data, or `undefined` if the params are malformed.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseMessageParams } from "./codec.ts";
 * assert.deepEqual(parseMessageParams({ id: 1, data: "hi" }), { id: 1, data: "hi" });
 * ```
 */
export function parseMessageParams(params: unknown): { id: JsonRpcId; data: unknown } | undefined {
  if (!isObject(params) || !isId(params.id) || !Object.hasOwn(params, "data")) return undefined;
  return { id: exactId(params, params.id), data: params.data };
}

/**
 * `JSON.stringify` for values a handler returns or sends: `undefined`
 * becomes `null`, and a value JSON cannot hold is reported, not thrown.
 *
 * @param value Anything.
 * @returns The JSON text, or an `Error` describing why it cannot be sent.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { toJson } from "./codec.ts";
 * assert.equal(toJson(undefined), "null");
 * assert.ok(toJson(1n) instanceof Error);
 * ```
 */
export function toJson(value: unknown): string | Error {
  if (typeof value === "function" || typeof value === "symbol") {
    return new TypeError(`a ${typeof value} is not a JSON value`);
  }
  try {
    return JSON.stringify(value) ?? "null";
  } catch (error) {
    return error instanceof Error ? error : new Error(String(error));
  }
}

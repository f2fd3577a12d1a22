/**
 * Typed errors with stable codes. Every error that crosses the wire has one
 * JSON-RPC form (`{ code, message, data }`), and {@linkcode fromWireError}
 * turns that form back into the same class on the client.
 *
 * @module
 */

/**
 * The numeric codes tcpy uses. The negative ones from -32768 to -32000 are
 * reserved by JSON-RPC 2.0; tcpy's own server errors live in -32001..-32099.
 * {@linkcode ErrorCode.HANDLER_ERROR} is the default code of a handler's
 * `error(...)` reply, an application error in JSON-RPC's terms.
 *
 * @example Checking a code
 * ```ts
 * import { ErrorCode } from "./errors.ts";
 * console.assert(ErrorCode.METHOD_NOT_FOUND === -32601);
 * ```
 */
export const ErrorCode = {
  /** The line was not valid UTF-8 JSON. */
  PARSE_ERROR: -32700,
  /** The JSON was not a valid JSON-RPC 2.0 request. */
  INVALID_REQUEST: -32600,
  /** No handler is mapped to the requested command. */
  METHOD_NOT_FOUND: -32601,
  /** The params were refused (not an object, or the handler threw InvalidParamsError). */
  INVALID_PARAMS: -32602,
  /** The handler threw or returned something that cannot be sent. */
  INTERNAL_ERROR: -32603,
  /** The server has too much work in flight; try again later. */
  SERVER_BUSY: -32001,
  /** The call did not finish in time. */
  TIMEOUT: -32002,
  /** A message was larger than the peer's limit. */
  MESSAGE_TOO_LARGE: -32003,
  /** The worker running the handler died. */
  WORKER_CRASHED: -32004,
  /**
   * The connection closed before the call finished. Sent on the wire only
   * for a handler that failed because its client ended the conversation
   * (its `recv()` rejected and it did not catch that).
   */
  CONNECTION_CLOSED: -32005,
  /** The peer broke the protocol (never sent on the wire). */
  PROTOCOL_ERROR: -32006,
  /** The server is shutting down and takes no new calls. */
  SHUTTING_DOWN: -32007,
  /** The connection did not authenticate (wrong secret, or too late). */
  UNAUTHORIZED: -32008,
  /** Default code of a handler's own `error(message, fields)` reply. */
  HANDLER_ERROR: 1,
} as const;

/**
 * The JSON-RPC 2.0 error object, as it travels on the wire.
 *
 * @example
 * ```ts
 * import { fromWireError, UnknownCommandError, type WireError } from "./errors.ts";
 * const wire: WireError = { code: -32601, message: "Unknown command: sub" };
 * console.assert(fromWireError(wire) instanceof UnknownCommandError);
 * ```
 */
export interface WireError {
  /** A number from {@linkcode ErrorCode} or an application code. */
  code: number;
  /** A short human-readable description. */
  message: string;
  /** Anything else the server chose to attach. */
  data?: unknown;
}

/**
 * Options common to all tcpy errors.
 *
 * @example Refusing params with details for the caller
 * ```ts
 * import { InvalidParamsError } from "./errors.ts";
 * const error = new InvalidParamsError("x must be a number", { data: { field: "x" } });
 * console.assert(JSON.stringify(error.toWire().data) === '{"field":"x"}');
 * ```
 */
export interface TcpyErrorOptions extends ErrorOptions {
  /**
   * Extra data carried in the wire form's `data` field.
   *
   * @default {undefined}
   */
  data?: unknown;
}

/**
 * Base class of every error tcpy raises. `code` is stable: match on it or on
 * the subclass, never on the message.
 *
 * @example Catching any tcpy error
 * ```ts
 * import { TcpyError, UnknownCommandError } from "./errors.ts";
 * const err: unknown = new UnknownCommandError("nope");
 * if (err instanceof TcpyError) console.assert(err.code === -32601);
 * ```
 */
export class TcpyError extends Error {
  /** The JSON-RPC error code of this error. */
  readonly code: number;
  /** Extra data from the wire form, if any. */
  readonly data?: unknown;

  /**
   * Creates an error with an explicit code.
   *
   * @param code The JSON-RPC error code.
   * @param message What went wrong.
   * @param options `cause` and `data`.
   */
  constructor(code: number, message: string, options?: TcpyErrorOptions) {
    super(message, options);
    this.name = "TcpyError";
    this.code = code;
    if (options?.data !== undefined) this.data = options.data;
  }

  /**
   * The JSON-RPC error object for this error.
   *
   * @returns `{ code, message, data? }`.
   */
  toWire(): WireError {
    return this.data === undefined
      ? { code: this.code, message: this.message }
      : { code: this.code, message: this.message, data: this.data };
  }
}

/**
 * A line was not valid UTF-8 JSON (-32700).
 *
 * @example
 * ```ts
 * import { ParseError } from "./errors.ts";
 * console.assert(new ParseError("bad").code === -32700);
 * ```
 */
export class ParseError extends TcpyError {
  /**
   * Creates the error.
   *
   * @param message What went wrong.
   * @param options `cause` and `data`.
   */
  constructor(message: string, options?: TcpyErrorOptions) {
    super(ErrorCode.PARSE_ERROR, message, options);
    this.name = "ParseError";
  }
}
/**
 * The JSON was not a valid JSON-RPC 2.0 request (-32600).
 *
 * @example
 * ```ts
 * import { InvalidRequestError } from "./errors.ts";
 * console.assert(new InvalidRequestError("bad").code === -32600);
 * ```
 */
export class InvalidRequestError extends TcpyError {
  /**
   * Creates the error.
   *
   * @param message What went wrong.
   * @param options `cause` and `data`.
   */
  constructor(message: string, options?: TcpyErrorOptions) {
    super(ErrorCode.INVALID_REQUEST, message, options);
    this.name = "InvalidRequestError";
  }
}
/**
 * No handler is mapped to the command (-32601).
 *
 * @example
 * ```ts
 * import { UnknownCommandError } from "./errors.ts";
 * console.assert(new UnknownCommandError("bad").code === -32601);
 * ```
 */
export class UnknownCommandError extends TcpyError {
  /**
   * Creates the error.
   *
   * @param message What went wrong.
   * @param options `cause` and `data`.
   */
  constructor(message: string, options?: TcpyErrorOptions) {
    super(ErrorCode.METHOD_NOT_FOUND, message, options);
    this.name = "UnknownCommandError";
  }
}
/**
 * The params were refused (-32602). Throw it from a handler to reject its
 * params.
 *
 * @example Rejecting params in a handler
 * ```ts
 * import { InvalidParamsError } from "./errors.ts";
 * import { TCPHandler } from "./handler.ts";
 * class Square extends TCPHandler<{ n: number }> {
 *   execute() {
 *     if (typeof this.params.n !== "number") throw new InvalidParamsError("n must be a number");
 *     return this.success({ value: this.params.n ** 2 });
 *   }
 * }
 * ```
 */
export class InvalidParamsError extends TcpyError {
  /**
   * Creates the error.
   *
   * @param message What went wrong.
   * @param options `cause` and `data`.
   */
  constructor(message: string, options?: TcpyErrorOptions) {
    super(ErrorCode.INVALID_PARAMS, message, options);
    this.name = "InvalidParamsError";
  }
}
/**
 * The handler crashed: it threw, rejected, or returned a value that is not
 * JSON (-32603).
 *
 * @example
 * ```ts
 * import { HandlerFailedError } from "./errors.ts";
 * console.assert(new HandlerFailedError("bad").code === -32603);
 * ```
 */
export class HandlerFailedError extends TcpyError {
  /**
   * Creates the error.
   *
   * @param message What went wrong.
   * @param options `cause` and `data`.
   */
  constructor(message: string, options?: TcpyErrorOptions) {
    super(ErrorCode.INTERNAL_ERROR, message, options);
    this.name = "HandlerFailedError";
  }
}
/**
 * The server is too busy to take the call (-32001).
 *
 * @example
 * ```ts
 * import { ServerBusyError } from "./errors.ts";
 * console.assert(new ServerBusyError("busy").code === -32001);
 * ```
 */
export class ServerBusyError extends TcpyError {
  /**
   * Creates the error.
   *
   * @param message What went wrong.
   * @param options `cause` and `data`.
   */
  constructor(message: string, options?: TcpyErrorOptions) {
    super(ErrorCode.SERVER_BUSY, message, options);
    this.name = "ServerBusyError";
  }
}
/**
 * The call did not finish in time (-32002).
 *
 * @example
 * ```ts
 * import { CallTimeoutError } from "./errors.ts";
 * console.assert(new CallTimeoutError("slow").code === -32002);
 * ```
 */
export class CallTimeoutError extends TcpyError {
  /**
   * Creates the error.
   *
   * @param message What went wrong.
   * @param options `cause` and `data`.
   */
  constructor(message: string, options?: TcpyErrorOptions) {
    super(ErrorCode.TIMEOUT, message, options);
    this.name = "CallTimeoutError";
  }
}
/**
 * A message exceeded the size limit (-32003).
 *
 * @example
 * ```ts
 * import { MessageTooLargeError } from "./errors.ts";
 * console.assert(new MessageTooLargeError("big").code === -32003);
 * ```
 */
export class MessageTooLargeError extends TcpyError {
  /**
   * Creates the error.
   *
   * @param message What went wrong.
   * @param options `cause` and `data`.
   */
  constructor(message: string, options?: TcpyErrorOptions) {
    super(ErrorCode.MESSAGE_TOO_LARGE, message, options);
    this.name = "MessageTooLargeError";
  }
}
/**
 * The worker running the handler died; only its own calls fail (-32004).
 *
 * @example
 * ```ts
 * import { WorkerCrashedError } from "./errors.ts";
 * console.assert(new WorkerCrashedError("gone").code === -32004);
 * ```
 */
export class WorkerCrashedError extends TcpyError {
  /**
   * Creates the error.
   *
   * @param message What went wrong.
   * @param options `cause` and `data`.
   */
  constructor(message: string, options?: TcpyErrorOptions) {
    super(ErrorCode.WORKER_CRASHED, message, options);
    this.name = "WorkerCrashedError";
  }
}
/**
 * The connection closed before the call finished (-32005). A server sends
 * it only for a handler whose `recv()` failed because the client ended its
 * side of the connection.
 *
 * @example
 * ```ts
 * import { ConnectionClosedError } from "./errors.ts";
 * console.assert(new ConnectionClosedError("closed").code === -32005);
 * ```
 */
export class ConnectionClosedError extends TcpyError {
  /**
   * Creates the error.
   *
   * @param message What went wrong.
   * @param options `cause` and `data`.
   */
  constructor(message: string, options?: TcpyErrorOptions) {
    super(ErrorCode.CONNECTION_CLOSED, message, options);
    this.name = "ConnectionClosedError";
  }
}
/**
 * The peer sent something that breaks the protocol (-32006, local only).
 *
 * @example
 * ```ts
 * import { ProtocolError } from "./errors.ts";
 * console.assert(new ProtocolError("garbage").code === -32006);
 * ```
 */
export class ProtocolError extends TcpyError {
  /**
   * Creates the error.
   *
   * @param message What went wrong.
   * @param options `cause` and `data`.
   */
  constructor(message: string, options?: TcpyErrorOptions) {
    super(ErrorCode.PROTOCOL_ERROR, message, options);
    this.name = "ProtocolError";
  }
}
/**
 * The server is shutting down (-32007).
 *
 * @example
 * ```ts
 * import { ShuttingDownError } from "./errors.ts";
 * console.assert(new ShuttingDownError("bye").code === -32007);
 * ```
 */
export class ShuttingDownError extends TcpyError {
  /**
   * Creates the error.
   *
   * @param message What went wrong.
   * @param options `cause` and `data`.
   */
  constructor(message: string, options?: TcpyErrorOptions) {
    super(ErrorCode.SHUTTING_DOWN, message, options);
    this.name = "ShuttingDownError";
  }
}

/**
 * The connection did not authenticate: wrong secret, no `tcpy.auth` first,
 * or too late (-32008). The server closes the connection after it.
 *
 * @example
 * ```ts
 * import { AuthenticationError } from "./errors.ts";
 * console.assert(new AuthenticationError("no").code === -32008);
 * ```
 */
export class AuthenticationError extends TcpyError {
  /**
   * Creates the error.
   *
   * @param message What went wrong.
   * @param options `cause` and `data`.
   */
  constructor(message: string, options?: TcpyErrorOptions) {
    super(ErrorCode.UNAUTHORIZED, message, options);
    this.name = "AuthenticationError";
  }
}

const byCode = new Map<number, new (message: string, options?: TcpyErrorOptions) => TcpyError>([
  [ErrorCode.PARSE_ERROR, ParseError],
  [ErrorCode.INVALID_REQUEST, InvalidRequestError],
  [ErrorCode.METHOD_NOT_FOUND, UnknownCommandError],
  [ErrorCode.INVALID_PARAMS, InvalidParamsError],
  [ErrorCode.INTERNAL_ERROR, HandlerFailedError],
  [ErrorCode.SERVER_BUSY, ServerBusyError],
  [ErrorCode.TIMEOUT, CallTimeoutError],
  [ErrorCode.MESSAGE_TOO_LARGE, MessageTooLargeError],
  [ErrorCode.WORKER_CRASHED, WorkerCrashedError],
  [ErrorCode.CONNECTION_CLOSED, ConnectionClosedError],
  [ErrorCode.PROTOCOL_ERROR, ProtocolError],
  [ErrorCode.SHUTTING_DOWN, ShuttingDownError],
  [ErrorCode.UNAUTHORIZED, AuthenticationError],
]);

/**
 * Turns a JSON-RPC error object into the matching {@linkcode TcpyError}
 * subclass; an unknown code gives a plain `TcpyError` with that code.
 *
 * @param wire The `error` member of a JSON-RPC response.
 * @returns The typed error.
 *
 * @example
 * ```ts
 * import { fromWireError, UnknownCommandError } from "./errors.ts";
 * const err = fromWireError({ code: -32601, message: "Unknown command: sub" });
 * console.assert(err instanceof UnknownCommandError);
 * ```
 */
export function fromWireError(wire: WireError): TcpyError {
  const cls = byCode.get(wire.code);
  const options = wire.data === undefined ? undefined : { data: wire.data };
  return cls ? new cls(wire.message, options) : new TcpyError(wire.code, wire.message, options);
}

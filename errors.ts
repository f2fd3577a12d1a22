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
 * import assert from "node:assert/strict";
 * import { ErrorCode } from "./errors.ts";
 * assert.equal(ErrorCode.METHOD_NOT_FOUND, -32601);
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
 * import assert from "node:assert/strict";
 * import { fromWireError, UnknownCommandError, type WireError } from "./errors.ts";
 * const wire: WireError = { code: -32601, message: "Unknown command: sub" };
 * assert.ok(fromWireError(wire) instanceof UnknownCommandError);
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
 * import assert from "node:assert/strict";
 * import { InvalidParamsError } from "./errors.ts";
 * const error = new InvalidParamsError("x must be a number", { data: { field: "x" } });
 * assert.deepEqual(error.toWire().data, { field: "x" });
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
 * import assert from "node:assert/strict";
 * import { TcpyError, UnknownCommandError } from "./errors.ts";
 * const err: unknown = new UnknownCommandError("nope");
 * assert.ok(err instanceof TcpyError);
 * assert.equal(err.code, -32601);
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
 * import assert from "node:assert/strict";
 * import { ParseError } from "./errors.ts";
 * const error = new ParseError("bad");
 * assert.equal(error.code, -32700);
 * assert.equal(error.name, "ParseError");
 * ```
 */
export class ParseError extends TcpyError {
  /** This class's code, {@linkcode ErrorCode.PARSE_ERROR}; every instance carries it. */
  static readonly code: typeof ErrorCode.PARSE_ERROR = ErrorCode.PARSE_ERROR;

  /**
   * Creates the error.
   *
   * @param message What went wrong.
   * @param options `cause` and `data`.
   */
  constructor(message: string, options?: TcpyErrorOptions) {
    super(ParseError.code, message, options);
    this.name = "ParseError";
  }
}

/**
 * The JSON was not a valid JSON-RPC 2.0 request (-32600).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { InvalidRequestError } from "./errors.ts";
 * const error = new InvalidRequestError("bad");
 * assert.equal(error.code, -32600);
 * assert.equal(error.name, "InvalidRequestError");
 * ```
 */
export class InvalidRequestError extends TcpyError {
  /** This class's code, {@linkcode ErrorCode.INVALID_REQUEST}; every instance carries it. */
  static readonly code: typeof ErrorCode.INVALID_REQUEST = ErrorCode.INVALID_REQUEST;

  /**
   * Creates the error.
   *
   * @param message What went wrong.
   * @param options `cause` and `data`.
   */
  constructor(message: string, options?: TcpyErrorOptions) {
    super(InvalidRequestError.code, message, options);
    this.name = "InvalidRequestError";
  }
}

/**
 * No handler is mapped to the command (-32601).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { UnknownCommandError } from "./errors.ts";
 * const error = new UnknownCommandError("Unknown command: sub");
 * assert.equal(error.code, -32601);
 * assert.equal(error.name, "UnknownCommandError");
 * ```
 */
export class UnknownCommandError extends TcpyError {
  /** This class's code, {@linkcode ErrorCode.METHOD_NOT_FOUND}; every instance carries it. */
  static readonly code: typeof ErrorCode.METHOD_NOT_FOUND = ErrorCode.METHOD_NOT_FOUND;

  /**
   * Creates the error.
   *
   * @param message What went wrong.
   * @param options `cause` and `data`.
   */
  constructor(message: string, options?: TcpyErrorOptions) {
    super(UnknownCommandError.code, message, options);
    this.name = "UnknownCommandError";
  }
}

/**
 * The params were refused (-32602). Throw it from a handler to reject its
 * params.
 *
 * @example Rejecting params in a handler
 * ```ts
 * import assert from "node:assert/strict";
 * import { InvalidParamsError } from "./errors.ts";
 * import { TCPHandler } from "./handler.ts";
 * class Square extends TCPHandler<{ n: number }> {
 *   execute() {
 *     if (typeof this.params.n !== "number") throw new InvalidParamsError("n must be a number");
 *     return this.success({ value: this.params.n ** 2 });
 *   }
 * }
 * assert.equal(new Square({ n: 3 }).execute().value, 9);
 * assert.throws(() => new Square({} as { n: number }).execute(), InvalidParamsError);
 * ```
 */
export class InvalidParamsError extends TcpyError {
  /** This class's code, {@linkcode ErrorCode.INVALID_PARAMS}; every instance carries it. */
  static readonly code: typeof ErrorCode.INVALID_PARAMS = ErrorCode.INVALID_PARAMS;

  /**
   * Creates the error.
   *
   * @param message What went wrong.
   * @param options `cause` and `data`.
   */
  constructor(message: string, options?: TcpyErrorOptions) {
    super(InvalidParamsError.code, message, options);
    this.name = "InvalidParamsError";
  }
}

/**
 * The handler crashed: it threw, rejected, or returned a value that is not
 * JSON (-32603).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { HandlerFailedError } from "./errors.ts";
 * const error = new HandlerFailedError("bad");
 * assert.equal(error.code, -32603);
 * assert.equal(error.name, "HandlerFailedError");
 * ```
 */
export class HandlerFailedError extends TcpyError {
  /** This class's code, {@linkcode ErrorCode.INTERNAL_ERROR}; every instance carries it. */
  static readonly code: typeof ErrorCode.INTERNAL_ERROR = ErrorCode.INTERNAL_ERROR;

  /**
   * Creates the error.
   *
   * @param message What went wrong.
   * @param options `cause` and `data`.
   */
  constructor(message: string, options?: TcpyErrorOptions) {
    super(HandlerFailedError.code, message, options);
    this.name = "HandlerFailedError";
  }
}

/**
 * The server is too busy to take the call (-32001).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ServerBusyError } from "./errors.ts";
 * const error = new ServerBusyError("busy");
 * assert.equal(error.code, -32001);
 * assert.equal(error.name, "ServerBusyError");
 * ```
 */
export class ServerBusyError extends TcpyError {
  /** This class's code, {@linkcode ErrorCode.SERVER_BUSY}; every instance carries it. */
  static readonly code: typeof ErrorCode.SERVER_BUSY = ErrorCode.SERVER_BUSY;

  /**
   * Creates the error.
   *
   * @param message What went wrong.
   * @param options `cause` and `data`.
   */
  constructor(message: string, options?: TcpyErrorOptions) {
    super(ServerBusyError.code, message, options);
    this.name = "ServerBusyError";
  }
}

/**
 * The call did not finish in time (-32002).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { CallTimeoutError } from "./errors.ts";
 * const error = new CallTimeoutError("slow");
 * assert.equal(error.code, -32002);
 * assert.equal(error.name, "CallTimeoutError");
 * ```
 */
export class CallTimeoutError extends TcpyError {
  /** This class's code, {@linkcode ErrorCode.TIMEOUT}; every instance carries it. */
  static readonly code: typeof ErrorCode.TIMEOUT = ErrorCode.TIMEOUT;

  /**
   * Creates the error.
   *
   * @param message What went wrong.
   * @param options `cause` and `data`.
   */
  constructor(message: string, options?: TcpyErrorOptions) {
    super(CallTimeoutError.code, message, options);
    this.name = "CallTimeoutError";
  }
}

/**
 * A message exceeded the size limit (-32003).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { MessageTooLargeError } from "./errors.ts";
 * const error = new MessageTooLargeError("big");
 * assert.equal(error.code, -32003);
 * assert.equal(error.name, "MessageTooLargeError");
 * ```
 */
export class MessageTooLargeError extends TcpyError {
  /** This class's code, {@linkcode ErrorCode.MESSAGE_TOO_LARGE}; every instance carries it. */
  static readonly code: typeof ErrorCode.MESSAGE_TOO_LARGE = ErrorCode.MESSAGE_TOO_LARGE;

  /**
   * Creates the error.
   *
   * @param message What went wrong.
   * @param options `cause` and `data`.
   */
  constructor(message: string, options?: TcpyErrorOptions) {
    super(MessageTooLargeError.code, message, options);
    this.name = "MessageTooLargeError";
  }
}

/**
 * The worker running the handler died; only its own calls fail (-32004).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { WorkerCrashedError } from "./errors.ts";
 * const error = new WorkerCrashedError("gone");
 * assert.equal(error.code, -32004);
 * assert.equal(error.name, "WorkerCrashedError");
 * ```
 */
export class WorkerCrashedError extends TcpyError {
  /** This class's code, {@linkcode ErrorCode.WORKER_CRASHED}; every instance carries it. */
  static readonly code: typeof ErrorCode.WORKER_CRASHED = ErrorCode.WORKER_CRASHED;

  /**
   * Creates the error.
   *
   * @param message What went wrong.
   * @param options `cause` and `data`.
   */
  constructor(message: string, options?: TcpyErrorOptions) {
    super(WorkerCrashedError.code, message, options);
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
 * import assert from "node:assert/strict";
 * import { ConnectionClosedError } from "./errors.ts";
 * const error = new ConnectionClosedError("closed");
 * assert.equal(error.code, -32005);
 * assert.equal(error.name, "ConnectionClosedError");
 * ```
 */
export class ConnectionClosedError extends TcpyError {
  /** This class's code, {@linkcode ErrorCode.CONNECTION_CLOSED}; every instance carries it. */
  static readonly code: typeof ErrorCode.CONNECTION_CLOSED = ErrorCode.CONNECTION_CLOSED;

  /**
   * Creates the error.
   *
   * @param message What went wrong.
   * @param options `cause` and `data`.
   */
  constructor(message: string, options?: TcpyErrorOptions) {
    super(ConnectionClosedError.code, message, options);
    this.name = "ConnectionClosedError";
  }
}

/**
 * The peer sent something that breaks the protocol (-32006, local only).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ProtocolError } from "./errors.ts";
 * const error = new ProtocolError("garbage");
 * assert.equal(error.code, -32006);
 * assert.equal(error.name, "ProtocolError");
 * ```
 */
export class ProtocolError extends TcpyError {
  /** This class's code, {@linkcode ErrorCode.PROTOCOL_ERROR}; every instance carries it. */
  static readonly code: typeof ErrorCode.PROTOCOL_ERROR = ErrorCode.PROTOCOL_ERROR;

  /**
   * Creates the error.
   *
   * @param message What went wrong.
   * @param options `cause` and `data`.
   */
  constructor(message: string, options?: TcpyErrorOptions) {
    super(ProtocolError.code, message, options);
    this.name = "ProtocolError";
  }
}

/**
 * The server is shutting down (-32007).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ShuttingDownError } from "./errors.ts";
 * const error = new ShuttingDownError("bye");
 * assert.equal(error.code, -32007);
 * assert.equal(error.name, "ShuttingDownError");
 * ```
 */
export class ShuttingDownError extends TcpyError {
  /** This class's code, {@linkcode ErrorCode.SHUTTING_DOWN}; every instance carries it. */
  static readonly code: typeof ErrorCode.SHUTTING_DOWN = ErrorCode.SHUTTING_DOWN;

  /**
   * Creates the error.
   *
   * @param message What went wrong.
   * @param options `cause` and `data`.
   */
  constructor(message: string, options?: TcpyErrorOptions) {
    super(ShuttingDownError.code, message, options);
    this.name = "ShuttingDownError";
  }
}

/**
 * The connection did not authenticate: wrong secret, no `tcpy.auth` first,
 * or too late (-32008). The server closes the connection after it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { AuthenticationError } from "./errors.ts";
 * const error = new AuthenticationError("no");
 * assert.equal(error.code, -32008);
 * assert.equal(error.name, "AuthenticationError");
 * ```
 */
export class AuthenticationError extends TcpyError {
  /** This class's code, {@linkcode ErrorCode.UNAUTHORIZED}; every instance carries it. */
  static readonly code: typeof ErrorCode.UNAUTHORIZED = ErrorCode.UNAUTHORIZED;

  /**
   * Creates the error.
   *
   * @param message What went wrong.
   * @param options `cause` and `data`.
   */
  constructor(message: string, options?: TcpyErrorOptions) {
    super(AuthenticationError.code, message, options);
    this.name = "AuthenticationError";
  }
}
/**
 * A tcpy error class: its static `code`, and a constructor taking
 * `(message, options?)`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ParseError, type TcpyErrorClass } from "./errors.ts";
 * const cls: TcpyErrorClass = ParseError;
 * assert.equal(new cls("bad").code, cls.code);
 * ```
 */
export interface TcpyErrorClass {
  /** The code every instance of the class carries. */
  readonly code: number;
  /** Creates an error of the class. */
  new (message: string, options?: TcpyErrorOptions): TcpyError;
}

/**
 * Every typed error class, one per code of {@linkcode ErrorCode} except
 * `HANDLER_ERROR`. {@linkcode fromWireError} maps codes through this list, so
 * a new class is added here and nowhere else.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ERROR_CLASSES, UnknownCommandError } from "./errors.ts";
 * assert.ok(ERROR_CLASSES.includes(UnknownCommandError));
 * ```
 */
export const ERROR_CLASSES: readonly TcpyErrorClass[] = [
  ParseError,
  InvalidRequestError,
  UnknownCommandError,
  InvalidParamsError,
  HandlerFailedError,
  ServerBusyError,
  CallTimeoutError,
  MessageTooLargeError,
  WorkerCrashedError,
  ConnectionClosedError,
  ProtocolError,
  ShuttingDownError,
  AuthenticationError,
];

const byCode: ReadonlyMap<number, TcpyErrorClass> = new Map(
  ERROR_CLASSES.map((cls) => [cls.code, cls]),
);

/**
 * Turns a JSON-RPC error object into the matching {@linkcode TcpyError}
 * subclass; an unknown code gives a plain `TcpyError` with that code.
 *
 * @param wire The `error` member of a JSON-RPC response.
 * @returns The typed error.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { fromWireError, TcpyError, UnknownCommandError } from "./errors.ts";
 * const err = fromWireError({ code: -32601, message: "Unknown command: sub" });
 * assert.ok(err instanceof UnknownCommandError);
 * assert.equal(fromWireError({ code: 42, message: "app" }).constructor, TcpyError);
 * ```
 */
export function fromWireError(wire: WireError): TcpyError {
  const cls = byCode.get(wire.code);
  const options = wire.data === undefined ? undefined : { data: wire.data };
  return cls ? new cls(wire.message, options) : new TcpyError(wire.code, wire.message, options);
}

/**
 * tcpy: command-based TCP servers and their clients for Deno.
 *
 * A {@linkcode TCPServer} maps command names to {@linkcode TCPHandler}
 * classes and runs them in a pool of Web Workers (or inline); a
 * {@linkcode TCPClient} calls them like remote procedures. The wire protocol
 * is JSON-RPC 2.0, one message per line, so any JSON-RPC client can call a
 * tcpy server, and a person can type into `nc`.
 *
 * For tests, the `./testing` entry point runs a handler in-process with a
 * scripted conversation (`testHandler`, `callHandler`) and starts throwaway
 * servers on a free port (`startTestServer`).
 *
 * @example Server and client in one script
 * ```ts
 * import assert from "node:assert/strict";
 * import { TCPClient, TCPHandler, TCPServer } from "./mod.ts";
 *
 * class AdditionHandler extends TCPHandler<{ x: number; y: number }> {
 *   execute() {
 *     return this.success({ solution: this.params.x + this.params.y });
 *   }
 * }
 *
 * await using server = new TCPServer({ port: 0, threads: 0, onListen() {} });
 * server.commands = { add: AdditionHandler };
 * const { port } = await server.listen();
 *
 * await using client = new TCPClient({ port });
 * const reply = await client.execute("add", { x: 1, y: 2 });
 * assert.deepEqual(reply, { success: true, solution: 3 });
 * ```
 *
 * @module
 */

export { TCPServer } from "./server.ts";
export { Call, TCPClient } from "./client.ts";
export { TCPClusterClient } from "./cluster.ts";
export { TCPHandler } from "./handler.ts";
export {
  AuthenticationError,
  CallTimeoutError,
  ConnectionClosedError,
  ErrorCode,
  fromWireError,
  HandlerFailedError,
  InvalidParamsError,
  InvalidRequestError,
  MessageTooLargeError,
  ParseError,
  ProtocolError,
  ServerBusyError,
  ShuttingDownError,
  TcpyError,
  UnknownCommandError,
  WorkerCrashedError,
} from "./errors.ts";
export { DEFAULT_MAX_MESSAGE_BYTES, LineDecoderStream, LineSplitter } from "./framing.ts";
export { MessageDecoderStream, MessageEncoderStream } from "./streams.ts";
export { MESSAGE_METHOD } from "./codec.ts";

export type {
  CallFailure,
  CallRecord,
  CommandStats,
  ListenAddress,
  TCPServerOptions,
  TlsOptions,
} from "./server.ts";
export type { BackoffOptions } from "./internal/backoff.ts";
export type { CallArgs, CallOptions, TCPClientOptions } from "./client.ts";
export type {
  ClusterCallArgs,
  ClusterCallOptions,
  ClusterStats,
  Endpoint,
  EndpointStatus,
  RetryEvent,
  RetryReason,
  TCPClusterClientOptions,
} from "./cluster.ts";
export type {
  Commands,
  ErrorReply,
  HandlerClass,
  ParamsOf,
  RecvOptions,
  ResultOf,
  SuccessReply,
} from "./handler.ts";
export type { TcpyErrorOptions, WireError } from "./errors.ts";
export type { FramingOptions, LineSink } from "./framing.ts";
export type { JsonRpcId, Params } from "./codec.ts";

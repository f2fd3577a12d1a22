/**
 * One client connection on the server: socket → frames → messages →
 * dispatch → handler → reply. Owns its socket; knows nothing of the
 * listener or of where handlers run (that is the {@linkcode Executor}'s job).
 *
 * @module
 */

import {
  decodeLine,
  errorText,
  type Incoming,
  type JsonRpcId,
  MESSAGE_METHOD,
  messageText,
  parseIncoming,
  parseMessageParams,
  PING_METHOD,
  resultText,
} from "../codec.ts";
import { ErrorCode, type TcpyError, type WireError } from "../errors.ts";
import { LineSplitter } from "../framing.ts";
import type { HandlerClass } from "../handler.ts";
import { type Call, clientGone, type Executor, type Task } from "./executor.ts";
import { LineWriter } from "./line_writer.ts";
import { readLines } from "./read_loop.ts";
import type { Outcome } from "./run_handler.ts";

/** What every connection of one server shares. */
export interface ConnectionContext {
  /** Command name → handler class (a `Map`, so `"constructor"` is no command). */
  readonly commands: ReadonlyMap<string, HandlerClass>;
  /** The worker pool, if the server has one. */
  readonly pool: Executor | undefined;
  /** The main-thread executor. */
  readonly inline: Executor;
  /** Largest message accepted, in bytes. */
  readonly maxMessageBytes: number;
  /** Most elements accepted in one batch. */
  readonly maxBatchLength: number;
}

/** Where the reply to one message (or one batch element) goes. */
interface ReplySink {
  /** One reply's JSON text, or `undefined` for a notification (no reply). */
  add(text: string | undefined): void;
}

/** Collects a batch's replies and writes them as one array (none if all were notifications). */
class BatchReply implements ReplySink {
  #left: number;
  readonly #texts: string[] = [];
  readonly #write: (text: string) => void;

  constructor(size: number, write: (text: string) => void) {
    this.#left = size;
    this.#write = write;
  }

  add(text: string | undefined): void {
    if (text !== undefined) this.#texts.push(text);
    if (--this.#left === 0 && this.#texts.length > 0) this.#write(`[${this.#texts.join(",")}]`);
  }
}

interface Running {
  task: Task | undefined;
  done: boolean;
}

type State = "open" | "draining" | "closed";

function outcomeText(id: JsonRpcId, outcome: Outcome): string {
  return "json" in outcome ? resultText(id, outcome.json) : errorText(id, outcome.error);
}

function wire(code: number, message: string): WireError {
  return { code, message };
}

/** Serves one accepted connection until the client leaves or the server drains it. */
export class ServerConnection {
  readonly #conn: Deno.Conn;
  readonly #ctx: ConnectionContext;
  readonly #writer: LineWriter;
  readonly #single: ReplySink;
  readonly #calls = new Map<JsonRpcId, Running>();
  #running = 0;
  #state: State = "open";
  #drainReason: WireError = wire(ErrorCode.SHUTTING_DOWN, "The server is shutting down");
  #idle: PromiseWithResolvers<void> | undefined;

  constructor(conn: Deno.Conn, ctx: ConnectionContext) {
    this.#conn = conn;
    this.#ctx = ctx;
    this.#writer = new LineWriter(conn, () => this.abort());
    this.#single = {
      add: (text) => {
        if (text !== undefined && this.#state !== "closed") this.#writer.write(text);
      },
    };
  }

  /** Calls running for this connection. */
  get running(): number {
    return this.#running;
  }

  /**
   * Reads and answers until the client ends its side (then finishes the
   * calls in flight and closes) or the connection is aborted.
   */
  async serve(): Promise<void> {
    const splitter = new LineSplitter({
      line: (bytes) => this.#onLine(bytes),
      oversize: (limit) => this.#onOversize(limit),
    }, { maxMessageBytes: this.#ctx.maxMessageBytes });
    try {
      await readLines(this.#conn, splitter);
    } catch {
      // Reset by the peer, or closed by abort(): either way no more input.
      if (this.#state !== "closed") this.abort();
      return;
    }
    // End of input: nobody can answer a recv() any more, but calls in flight
    // still get their replies before the socket closes.
    this.#cancelAll(clientGone());
    await this.drain();
  }

  /**
   * Stops taking new calls (they are answered with `reason`), waits for the
   * calls in flight and their replies, then closes the socket.
   */
  async drain(reason?: WireError): Promise<void> {
    if (this.#state === "closed") return;
    if (this.#state === "open") {
      this.#state = "draining";
      if (reason) this.#drainReason = reason;
    }
    if (this.#running > 0) {
      this.#idle ??= Promise.withResolvers();
      await this.#idle.promise;
    }
    await this.#writer.drained();
    this.#close();
  }

  /** Closes at once: calls in flight lose their client (their `recv()` rejects). */
  abort(): void {
    if (this.#state === "closed") return;
    this.#cancelAll(clientGone());
    this.#close();
  }

  #close(): void {
    if (this.#state === "closed") return;
    this.#state = "closed";
    this.#idle?.resolve();
    try {
      this.#conn.close();
    } catch {
      // Already closed.
    }
  }

  #cancelAll(reason: Error): void {
    for (const running of this.#calls.values()) running.task?.cancel(reason);
  }

  #onOversize(limit: number): void {
    const error = wire(
      ErrorCode.MESSAGE_TOO_LARGE,
      `Message too large: the limit is ${limit} bytes; closing the connection`,
    );
    this.#single.add(errorText(null, error));
    this.drain(error);
  }

  #onLine(bytes: Uint8Array): void {
    if (this.#state === "closed") return;
    let value: unknown;
    try {
      value = decodeLine(bytes);
    } catch (error) {
      this.#single.add(errorText(null, (error as TcpyError).toWire()));
      return;
    }
    if (!Array.isArray(value)) {
      this.#dispatch(parseIncoming(value), this.#single);
      return;
    }
    if (value.length === 0 || value.length > this.#ctx.maxBatchLength) {
      const message = value.length === 0
        ? "Invalid request: empty batch"
        : `Invalid request: a batch holds at most ${this.#ctx.maxBatchLength} requests`;
      this.#single.add(errorText(null, wire(ErrorCode.INVALID_REQUEST, message)));
      return;
    }
    const batch = new BatchReply(value.length, (text) => this.#single.add(text));
    for (const item of value) this.#dispatch(parseIncoming(item), batch);
  }

  #dispatch(message: Incoming, sink: ReplySink): void {
    if (message.kind === "invalid") {
      sink.add(errorText(message.id, message.error));
      return;
    }
    const { method } = message;
    if (method === MESSAGE_METHOD) {
      if (message.kind === "call") {
        sink.add(errorText(
          message.id,
          wire(ErrorCode.INVALID_REQUEST, `Invalid request: ${MESSAGE_METHOD} takes no id`),
        ));
      } else {
        this.#deliver(message.params);
        sink.add(undefined);
      }
      return;
    }
    const id = message.kind === "call" ? message.id : undefined;
    if (method === PING_METHOD) {
      if (id === undefined) sink.add(undefined);
      else if (this.#state !== "open") sink.add(errorText(id, this.#drainReason));
      else sink.add(resultText(id, '{"pong":true}'));
      return;
    }
    const cls = this.#ctx.commands.get(method);
    let refusal: WireError | undefined;
    if (!cls) refusal = wire(ErrorCode.METHOD_NOT_FOUND, `Unknown command: ${method}`);
    else if (this.#state !== "open") refusal = this.#drainReason;
    else if (id !== undefined && this.#calls.has(id)) {
      refusal = wire(
        ErrorCode.INVALID_REQUEST,
        `Invalid request: id ${JSON.stringify(id)} is already used by a call in progress`,
      );
    }
    if (refusal || !cls) {
      sink.add(id === undefined ? undefined : errorText(id, refusal!));
      return;
    }
    this.#start(cls, method, message.params, id, sink);
  }

  #deliver(params: unknown): void {
    const message = parseMessageParams(params);
    if (message) this.#calls.get(message.id)?.task?.deliver(message.data);
  }

  #start(
    cls: HandlerClass,
    command: string,
    params: unknown,
    id: JsonRpcId | undefined,
    sink: ReplySink,
  ): void {
    const running: Running = { task: undefined, done: false };
    const conversational = id !== undefined;
    if (conversational) this.#calls.set(id, running);
    this.#running++;
    const call: Call = {
      command,
      handler: cls,
      params,
      conversational,
      send: (json) => {
        if (this.#state !== "closed") this.#writer.write(messageText(id!, json));
      },
      finish: (outcome) => {
        if (running.done) return;
        running.done = true;
        if (conversational) this.#calls.delete(id);
        sink.add(conversational ? outcomeText(id, outcome) : undefined);
        if (--this.#running === 0) this.#idle?.resolve();
      },
    };
    const executor = cls.inline || !this.#ctx.pool ? this.#ctx.inline : this.#ctx.pool;
    running.task = executor.run(call);
  }
}

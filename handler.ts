/**
 * The class users subclass: one handler class per command.
 *
 * @module
 */

import { CHANNEL, type Channel, SIGNAL } from "./internal/channel.ts";
import { CallTimeoutError } from "./errors.ts";
import type { Params } from "./codec.ts";

/**
 * The dictionary `success(fields)` returns: `{ success: true, ...fields }`.
 *
 * @typeParam F The fields next to `success: true`.
 *
 * @example
 * ```ts
 * import type { SuccessReply } from "./handler.ts";
 * const reply: SuccessReply<{ solution: number }> = { success: true, solution: 3 };
 * ```
 */
export type SuccessReply<F extends object = Record<never, never>> = { success: true } & F;

/**
 * The dictionary `error(message, fields)` returns: `{ error: true, message, ...fields }`.
 *
 * @typeParam F The fields next to `error: true` and `message`.
 *
 * @example
 * ```ts
 * import type { ErrorReply } from "./handler.ts";
 * const reply: ErrorReply<{ a: number }> = { error: true, message: "division by zero", a: 1 };
 * ```
 */
export type ErrorReply<F extends object = Record<never, never>> =
  & { error: true; message: string }
  & F;

/**
 * Any class that extends {@linkcode TCPHandler}: what a server's `commands`
 * map holds.
 *
 * @typeParam P The params the handler takes.
 * @typeParam R What its `execute()` returns.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { type HandlerClass, TCPHandler } from "./handler.ts";
 * class Ping extends TCPHandler {
 *   execute() {
 *     return this.success({ pong: true });
 *   }
 * }
 * const cls: HandlerClass = Ping;
 * assert.ok(new cls({}) instanceof TCPHandler);
 * ```
 */
// deno-lint-ignore no-explicit-any
export type HandlerClass<P extends Params = any, R = unknown> = {
  new (params: P): TCPHandler<P, R>;
  /** Where calls run: `true` where they arrive, `false` in the pool, unset: measured. */
  readonly inline?: boolean;
  /** `true`: every call runs on the server's one home thread, sharing its module state. */
  readonly shared?: boolean;
};

/**
 * A server's command map: command name to handler class.
 *
 * @example
 * ```ts
 * import { type Commands, TCPHandler } from "./handler.ts";
 * class Ping extends TCPHandler {
 *   execute() {
 *     return this.success({ pong: true });
 *   }
 * }
 * // `satisfies` keeps the exact type, for `TCPClient<typeof commands>`.
 * export const commands = { ping: Ping } satisfies Commands;
 * ```
 */
export type Commands = Record<string, HandlerClass>;

/**
 * The params a handler class takes: `ParamsOf<typeof AdditionHandler>` is
 * `{ x: number; y: number }`.
 *
 * @typeParam H The handler class.
 *
 * @example
 * ```ts
 * import { type ParamsOf, TCPHandler } from "./handler.ts";
 * class AdditionHandler extends TCPHandler<{ x: number; y: number }> {
 *   execute() {
 *     return this.success({ solution: this.params.x + this.params.y });
 *   }
 * }
 * const params: ParamsOf<typeof AdditionHandler> = { x: 1, y: 2 };
 * ```
 */
export type ParamsOf<H> = H extends new (params: infer P) => unknown ? P : never;

/**
 * What a handler class's `execute()` resolves with, as a client receives it.
 *
 * @typeParam H The handler class.
 *
 * @example
 * ```ts
 * import { type ResultOf, TCPHandler } from "./handler.ts";
 * class AdditionHandler extends TCPHandler<{ x: number; y: number }> {
 *   execute() {
 *     return this.success({ solution: this.params.x + this.params.y });
 *   }
 * }
 * const result: ResultOf<typeof AdditionHandler> = { success: true, solution: 3 };
 * ```
 */
export type ResultOf<H> = H extends new (params: never) => { execute(): infer R } ? Awaited<R>
  : unknown;

/**
 * Options of {@linkcode TCPHandler.recv}.
 *
 * @example
 * ```ts
 * import type { RecvOptions } from "./handler.ts";
 * const options: RecvOptions = { timeout: 5_000 };
 * ```
 */
export interface RecvOptions {
  /** Reject with `CallTimeoutError` if nothing arrives within this many ms. */
  timeout?: number;
  /** Stop waiting when this signal aborts (rejects with its reason). */
  signal?: AbortSignal;
}

const NEVER = new AbortController().signal;

/**
 * Base class of every handler. The server creates one instance per call with
 * the client's params and awaits `execute()`; what it returns is the
 * call's result.
 *
 * Return `this.success({...})` or `this.error(message, {...})` as the
 * original tcpy did. A handler may also talk to its caller before it returns
 * with `send()` and `recv()`. Throw {@linkcode InvalidParamsError} to refuse
 * the params; anything else thrown reaches the caller as a handler failure.
 *
 * Set `static override inline = true` on a subclass to run it on the
 * thread that read the call even when the server has a worker pool, or
 * `false` to keep it in the pool; unset, the server decides by measuring.
 *
 * @typeParam P The params the handler takes.
 * @typeParam R What `execute()` returns.
 *
 * @example The tutorial's handler
 * ```ts
 * import assert from "node:assert/strict";
 * import { TCPHandler } from "./handler.ts";
 *
 * class AdditionHandler extends TCPHandler<{ x: number; y: number }> {
 *   execute() {
 *     return this.success({ solution: this.params.x + this.params.y });
 *   }
 * }
 *
 * const reply = new AdditionHandler({ x: 1, y: 2 }).execute();
 * assert.deepEqual(reply, { success: true, solution: 3 });
 * ```
 */
export abstract class TCPHandler<P extends Params = Params, R = unknown> {
  /**
   * Where calls to this command run when the server has a worker pool.
   * `true`: always on the thread that read the call (no worker round trip,
   * but a handler that blocks stalls that thread's connections); `false`:
   * always in the pool. Unset: in the pool until the server has seen it is
   * cheap and synchronous, then where calls arrive (README, "Where handlers
   * run"); a slow or async run sends it back.
   *
   * @default {undefined}
   */
  static readonly inline?: boolean;

  /**
   * `true`: every call to this command runs on one thread of its own, the
   * server's home thread, whatever `threads` and `ioThreads` are; so state at
   * the module's top level (a `Map`, a counter) is one state for every
   * client, as in a single-threaded server. Calls from one connection run
   * in the order they arrived; connections take turns. A synchronous
   * `execute()` runs whole before the next call starts, so a read, change
   * and write of that state needs no lock. Cannot be combined with `inline`.
   *
   * @example A counter every client shares
   * ```ts
   * import { TCPHandler } from "./handler.ts";
   * let count = 0;
   * class Incr extends TCPHandler {
   *   static override readonly shared = true;
   *   execute() {
   *     return this.success({ value: ++count });
   *   }
   * }
   * ```
   *
   * @default {undefined}
   */
  static readonly shared?: boolean;

  /** The params the client sent with the call (`{}` if it sent none). */
  readonly params: P;
  /**
   * How the call reaches its client: attached by the server before `execute()`.
   *
   * @internal
   */
  declare private [CHANNEL]?: Channel;

  /**
   * Captures the client's params. Subclasses that define a constructor
   * must pass them on: `super(params)`.
   *
   * @param params The client's named params.
   */
  constructor(params: P) {
    this.params = params ?? ({} as P);
  }

  /**
   * Carries out the command. Sync or async; its return value is the call's
   * result and must be JSON-serializable.
   *
   * @returns The result, usually from `success()` or `error()`.
   */
  abstract execute(): R | Promise<R>;

  /**
   * A well-formed success reply.
   *
   * @param fields Fields to add next to `success: true`.
   * @returns `{ success: true, ...fields }`.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { TCPHandler } from "./handler.ts";
   * class Ping extends TCPHandler {
   *   execute() { return this.success({ pong: true }); }
   * }
   * assert.deepEqual(new Ping({}).execute(), { success: true, pong: true });
   * ```
   */
  success<F extends object = Record<never, never>>(fields?: F): SuccessReply<F> {
    return { success: true, ...fields } as SuccessReply<F>;
  }

  /**
   * A well-formed error reply. Returned from `execute()`, it reaches
   * `TCPClient.execute` as this same dictionary and other JSON-RPC clients as
   * a JSON-RPC error (code 1, or `fields.code` if that is an integer
   * outside JSON-RPC's reserved range), with the dictionary as `data`.
   *
   * @param message What went wrong, for the caller.
   * @param fields Fields to add.
   * @returns `{ error: true, message, ...fields }`.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { TCPHandler } from "./handler.ts";
   * class Divide extends TCPHandler<{ a: number; b: number }> {
   *   execute() {
   *     if (this.params.b === 0) return this.error("division by zero", { a: this.params.a });
   *     return this.success({ quotient: this.params.a / this.params.b });
   *   }
   * }
   * const reply = new Divide({ a: 1, b: 0 }).execute();
   * assert.deepEqual(reply, { error: true, message: "division by zero", a: 1 });
   * ```
   */
  error<F extends object = Record<never, never>>(message: string, fields?: F): ErrorReply<F> {
    return { error: true, message, ...fields } as ErrorReply<F>;
  }

  /**
   * Sends data to the client without ending the call. The client reads it
   * with `recv()` on its call (or on the client).
   *
   * @param data Any JSON-serializable value.
   * @returns Resolves once the data is handed to the connection.
   * @throws {TypeError} If the handler is not running in a call that can
   *   converse (constructed by hand, or called as a notification).
   */
  send(data: unknown): Promise<void> {
    return this.#channel("send").send(data);
  }

  /**
   * Receives the next data the client sent to this call.
   *
   * @typeParam T What the client is expected to send.
   * @returns The data.
   * @throws {TypeError} If the handler is not running in a call that can
   *   converse.
   * @param options A timeout and/or a signal to stop waiting.
   * @throws {ConnectionClosedError} If the client went away.
   * @throws {CallTimeoutError} If `options.timeout` passed first.
   */
  recv<T = unknown>(options: RecvOptions = {}): Promise<T> {
    const channel = this.#channel("recv");
    const { timeout, signal } = options;
    if (timeout === undefined) return channel.recv(signal) as Promise<T>;
    if (!Number.isSafeInteger(timeout) || timeout < 0) {
      throw new RangeError(`Cannot recv(): timeout must be a whole number of ms, got ${timeout}`);
    }
    const timer = new AbortController();
    const id = setTimeout(
      () => timer.abort(new CallTimeoutError(`recv() timed out after ${timeout} ms`)),
      timeout,
    );
    const wait = signal ? AbortSignal.any([signal, timer.signal]) : timer.signal;
    return (channel.recv(wait) as Promise<T>).finally(() => clearTimeout(id));
  }

  /**
   * Aborted when the call is given up on: its client went away, it ran past
   * the server's handler timeout, or the client sent more than it reads.
   * Pass it to `fetch`, timers or your own loops to stop work nobody waits
   * for. Never aborted for a handler constructed by hand.
   *
   * @example Stopping a loop when the caller is gone
   * ```ts
   * import { TCPHandler } from "./handler.ts";
   * class Count extends TCPHandler {
   *   async execute() {
   *     let n = 0;
   *     while (!this.signal.aborted && n < 3) n++;
   *     return this.success({ n });
   *   }
   * }
   * ```
   */
  get signal(): AbortSignal {
    return (this as { [SIGNAL]?: { signal(): AbortSignal } })[SIGNAL]?.signal() ?? NEVER;
  }

  #channel(what: string): Channel {
    const channel = this[CHANNEL];
    if (!channel) {
      throw new TypeError(
        `Cannot ${what}(): this handler is not running in a call with an id ` +
          "(it was constructed by hand or called as a notification)",
      );
    }
    return channel;
  }
}

/**
 * Helpers for testing tcpy handlers and servers with `deno test`.
 *
 * - {@linkcode testHandler} runs one handler in this process, with a
 *   scripted conversation, and gives its result exactly as `TCPClient` would
 *   see it: the same JSON round trip, a handler's `error(...)` dictionary
 *   returned, and failures thrown as the same {@linkcode TcpyError}
 *   subclasses. No socket, no worker: fast unit tests.
 * - {@linkcode callHandler} does the same with the client's side of the
 *   conversation in your hands (`send`, `recv`, `result`), like
 *   `client.call()`.
 * - {@linkcode startTestServer} starts a real {@linkcode TCPServer} on
 *   127.0.0.1 with a free port, silently, and hands out clients for it; one
 *   `await using` stops everything, so the test sanitizers stay happy.
 *
 * @example Unit-testing a conversational handler
 * ```ts
 * import assert from "node:assert/strict";
 * import { TCPHandler } from "./mod.ts";
 * import { testHandler } from "./testing.ts";
 *
 * class Greet extends TCPHandler<{ greeting: string }> {
 *   async execute() {
 *     await this.send({ question: "name?" });
 *     const name = await this.recv<string>();
 *     return this.success({ text: `${this.params.greeting}, ${name}` });
 *   }
 * }
 *
 * const { result, sent } = await testHandler(Greet, { greeting: "Hello" }, {
 *   conversation: ["Ada"],
 * });
 * assert.deepEqual(sent, [{ question: "name?" }]);
 * assert.deepEqual(result, { success: true, text: "Hello, Ada" });
 * ```
 *
 * @example An integration test against a real server
 * ```ts
 * import assert from "node:assert/strict";
 * import { TCPHandler } from "./mod.ts";
 * import { startTestServer } from "./testing.ts";
 *
 * class Add extends TCPHandler<{ x: number; y: number }> {
 *   execute() {
 *     return this.success({ solution: this.params.x + this.params.y });
 *   }
 * }
 *
 * // threads: 0 runs handlers inline. With workers, define and export the
 * // handler classes at the top level of the test module instead.
 * await using t = await startTestServer({ commands: { add: Add }, threads: 0 });
 * const client = t.client();
 * assert.deepEqual(await client.execute("add", { x: 1, y: 2 }), { success: true, solution: 3 });
 * ```
 *
 * @module
 */

import { errorText, parseIncoming, parseReply, requestText, resultText, toJson } from "./codec.ts";
import { ConnectionClosedError, fromWireError, type WireError } from "./errors.ts";
import type { Commands, HandlerClass, ParamsOf, ResultOf, TCPHandler } from "./handler.ts";
import { TCPClient, type TCPClientOptions } from "./client.ts";
import { TCPServer, type TCPServerOptions } from "./server.ts";
import { CHANNEL, type Channel } from "./internal/channel.ts";
import { callEnded, clientGone, InlineExecutor, type Task } from "./internal/executor.ts";
import { Inbox } from "./internal/inbox.ts";
import { jsonSender } from "./internal/json_text.ts";
import { isHandlerClass } from "./internal/resolve.ts";
import type { Outcome } from "./internal/run_handler.ts";
import { callerView } from "./internal/replies.ts";

// ---------------------------------------------------------------------------
// Handlers in-process

/**
 * Options of {@linkcode testHandler}.
 *
 * @example A client that answers two questions, then has nothing more to say
 * ```ts
 * import type { TestHandlerOptions } from "./testing.ts";
 * const options: TestHandlerOptions = { conversation: [{ name: "Ada" }, "yes"] };
 * ```
 */
export interface TestHandlerOptions {
  /**
   * What the client sends to the handler, in order: each `recv()` of the
   * handler takes the next value. Values travel as JSON, as they would over
   * the wire. Once they are used up, the client has nothing more to say:
   * the next `recv()` rejects with {@linkcode ConnectionClosedError} and the
   * handler's `signal` aborts, as on a real server when the client ends its
   * side of the connection.
   *
   * @default {[]}
   */
  conversation?: readonly unknown[];
}

/**
 * What {@linkcode testHandler} reports about one call.
 *
 * @typeParam R The handler's result.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { TCPHandler } from "./mod.ts";
 * import { type HandlerRun, testHandler } from "./testing.ts";
 *
 * class Echo extends TCPHandler {
 *   async execute() {
 *     await this.send(await this.recv());
 *     return this.success();
 *   }
 * }
 *
 * const run: HandlerRun<{ success: true }> = await testHandler(Echo, {}, {
 *   conversation: ["hi", "unheard"],
 * });
 * assert.deepEqual(run, {
 *   result: { success: true },
 *   sent: ["hi"],
 *   unread: ["unheard"],
 *   warnings: [],
 * });
 * ```
 */
export interface HandlerRun<R> {
  /**
   * The call's result as `TCPClient.execute` resolves with it: after a JSON
   * round trip, and a handler's `error(...)` dictionary included.
   */
  result: R;
  /** What the handler sent with `send()`, in order, each after a JSON round trip. */
  sent: unknown[];
  /** The scripted `conversation` values the handler never read with `recv()`. */
  unread: unknown[];
  /**
   * Mistakes the run shows that are no error on a server, in words: for
   * now, an `execute()` that returned (or resolved with) `undefined`, which
   * is a forgotten `return` more often than not (the client gets `null`).
   * Empty when there are none; `assert.deepEqual(run.warnings, [])` keeps
   * it so.
   */
  warnings: string[];
}

/**
 * A call to a handler in progress, seen from the client's side: the same
 * `send`, `recv` and `result` as the `Call` that `TCPClient.call` returns.
 * Made by {@linkcode callHandler}.
 *
 * @typeParam R The handler's result.
 *
 * @example Testing what a handler does when its client leaves
 * ```ts
 * import assert from "node:assert/strict";
 * import { ConnectionClosedError, TCPHandler } from "./mod.ts";
 * import { callHandler, type HandlerCall } from "./testing.ts";
 *
 * class Collect extends TCPHandler {
 *   async execute() {
 *     const items: unknown[] = [];
 *     try {
 *       while (true) items.push(await this.recv());
 *     } catch (error) {
 *       if (!(error instanceof ConnectionClosedError)) throw error;
 *       return { items };
 *     }
 *   }
 * }
 *
 * const call: HandlerCall<{ items: unknown[] }> = callHandler(Collect);
 * await call.send(1);
 * await call.send(2);
 * call.close();
 * assert.deepEqual(await call.result, { items: [1, 2] });
 * ```
 */
export interface HandlerCall<R> {
  /**
   * The call's result, as {@linkcode testHandler}'s `result`. A handler's
   * `error(...)` dictionary resolves it; a failure the handler did not
   * choose rejects it with a {@linkcode TcpyError} subclass.
   */
  readonly result: Promise<R>;
  /**
   * Sends data to the handler, which reads it with `recv()`.
   *
   * @param data Any JSON-serializable value.
   * @returns Resolves once the data is queued for the handler.
   * @throws {TypeError} If the data is not JSON-serializable.
   */
  send(data: unknown): Promise<void>;
  /**
   * Receives the next data the handler sent with `send()`.
   *
   * @typeParam T What the handler is expected to send.
   * @returns The data, after a JSON round trip.
   * @throws {ConnectionClosedError} If the call has ended and nothing it
   *   sent is left to read.
   */
  recv<T = unknown>(): Promise<T>;
  /**
   * Plays the client going away: the handler's waiting and future `recv()`
   * reject with {@linkcode ConnectionClosedError} (after any data already
   * sent to it) and its `signal` aborts, as on a real server. The call
   * still runs to its result.
   */
  close(): void;
}

function checkHandler(handler: unknown, what: string): void {
  if (!isHandlerClass(handler)) {
    throw new TypeError(`Cannot ${what}: handler must be a class that extends TCPHandler`);
  }
}

/** `value` after the JSON round trip it would make on the wire. */
function jsonCopy(value: unknown, what: string): unknown {
  const json = toJson(value);
  if (json instanceof Error) {
    throw new TypeError(`Cannot ${what}: it is not JSON-serializable: ${json.message}`);
  }
  return JSON.parse(json);
}

/**
 * Encodes the request as `TCPClient` does and reads it back as the server
 * does, so params get the same JSON round trip and the same checks.
 */
function encodeRequest(params: unknown): string {
  try {
    return requestText("test", params, 1);
  } catch (error) {
    throw new TypeError(
      `Cannot call the handler: params are not JSON-serializable: ${(error as Error).message}`,
    );
  }
}

/**
 * What `TCPClient` makes of an outcome: the value it resolves with, or the
 * error it throws, by the rule `TCPClient` uses (internal/replies.ts).
 * tests/testing_server_test.ts compares the two against a real server.
 */
function clientView(outcome: Outcome): unknown {
  const reply = parseReply(
    JSON.parse("json" in outcome ? resultText(1, outcome.json) : errorText(1, outcome.error)),
  );
  if (reply.kind === "result") return reply.result;
  const seen = callerView((reply as { error: WireError }).error);
  if ("error" in seen) throw seen.error;
  return seen.value;
}

/**
 * `handler`, but each instance reports an `undefined` result of `execute()`
 * (returned or resolved) to `warn`, and each `recv()` it starts to `asked`
 * before it waits. The instances are the handler's own, made by its own
 * constructor.
 */
function instrument(
  handler: HandlerClass,
  warn: ((text: string) => void) | undefined,
  asked: (() => void) | undefined,
): HandlerClass {
  if (!warn && !asked) return handler;
  const check = (value: unknown) => {
    if (value !== undefined || !warn) return;
    warn(
      `${handler.name || "The handler"}.execute() returned undefined: did it forget to ` +
        "`return`? The client receives null. Return this.success(...), this.error(...) " +
        "or the value to send, or null to mean nothing.",
    );
  };
  return new Proxy(handler, {
    construct(target, args) {
      const instance = Reflect.construct(target, args) as TCPHandler;
      const execute = instance.execute;
      instance.execute = function (this: TCPHandler) {
        // The executor attached the channel just before execute().
        const holder = this as unknown as { [CHANNEL]?: Channel };
        const channel = holder[CHANNEL];
        if (asked && channel) {
          holder[CHANNEL] = {
            send: (data) => channel.send(data),
            recv: (signal) => {
              asked();
              return channel.recv(signal);
            },
          };
        }
        const result = execute.call(this);
        if (!(result instanceof Promise)) {
          check(result);
          return result;
        }
        return result.then((value) => {
          check(value);
          return value;
        });
      };
      return instance;
    },
  });
}

/** The client's side of a call that {@linkcode start} runs. */
interface ClientSide {
  /** Takes what the handler sent, after the wire's JSON round trip. */
  message(data: unknown): void;
  /**
   * Called when the handler starts a `recv()`, before it waits: a scripted
   * client answers here (`task.deliver`), or says it has nothing more to
   * send (`task.cancel`).
   */
  asked?(task: Task): void;
  /** Where likely mistakes are noted; not watched for when absent. */
  warnings?: string[];
}

/** The server's own inline executor (the path of `threads: 0`), without limits. */
const executor = new InlineExecutor();

/**
 * Runs one call of `handler` as a server does: the request parsed as the
 * server parses it, the handler run by the server's {@linkcode InlineExecutor},
 * the outcome turned into what `TCPClient` returns or throws.
 *
 * @returns The call's task (`undefined` if the server would refuse the
 *   request) and its result.
 */
function start(
  handler: HandlerClass,
  request: string,
  client: ClientSide,
): { task: Task | undefined; result: Promise<unknown> } {
  const incoming = parseIncoming(JSON.parse(request));
  if (incoming.kind !== "call") {
    const error = fromWireError((incoming as { error: WireError }).error);
    return { task: undefined, result: Promise.reject(error) };
  }
  const outcome = Promise.withResolvers<Outcome>();
  let ended = false;
  // recv()s started before run() returned the task are answered once it has.
  let task: Task | undefined = undefined;
  let early = 0;
  const asked = client.asked && (() => {
    if (ended) return;
    if (task) client.asked!(task);
    else early++;
  });
  const warnings = client.warnings;
  task = executor.run({
    command: handler.name,
    handler: instrument(handler, warnings && ((text) => warnings.push(text)), asked),
    params: incoming.params,
    conversational: true,
    send: (json) => {
      client.message(JSON.parse(json));
      return undefined;
    },
    finish: (result) => {
      ended = true;
      outcome.resolve(result);
    },
  });
  for (; early > 0; early--) asked!();
  return { task, result: outcome.promise.then(clientView) };
}

/**
 * Runs a handler in this process with `params` and a scripted client, and
 * reports its result exactly as `TCPClient.execute` would see it, with what
 * the handler sent along the way. The handler runs as on a server, through
 * the server's own inline executor (the path of `threads: 0`): its
 * params and every message cross a JSON round trip, its `error(...)`
 * dictionary is returned as the result, and whatever else goes wrong is
 * thrown as the {@linkcode TcpyError} subclass a client would catch.
 *
 * For a conversation that depends on what the handler sends, use
 * {@linkcode callHandler}.
 *
 * It also points out mistakes that are no error on a server, in
 * `warnings`: an `execute()` that returned `undefined` (a forgotten
 * `return`). Check `warnings` in your test, or at least read them. One
 * mistake it cannot see: a `recv()` whose promise is never awaited (a
 * missing `await`). The handler then goes on without the value, and a
 * scripted value it took shows up neither in `unread` nor anywhere else;
 * only the result tells, so assert on it.
 *
 * @typeParam C The handler class.
 * @param handler A class that extends `TCPHandler`.
 * @param params The client's named params (`{}` if left out).
 * @param options The client's side of the conversation.
 * @returns The result, what the handler sent, what it left unread, and
 *   warnings about likely mistakes.
 * @throws {TypeError} If `handler` is not a handler class, or `params` or a
 *   `conversation` value is not JSON-serializable.
 * @throws {HandlerFailedError} If the handler threw (or rejected) anything
 *   but a {@linkcode TcpyError}, or returned a value that is not JSON. The
 *   message is the client's: `Handler failed: <the error's message>`.
 * @throws {InvalidParamsError} If the handler threw it, or `params` is an
 *   array.
 * @throws {InvalidRequestError} If `params` nest deeper than the server
 *   accepts.
 * @throws {ConnectionClosedError} If the handler called `recv()` after the
 *   scripted `conversation` ran out and did not catch the error.
 * @throws {TcpyError} Any other {@linkcode TcpyError} the handler threw, as
 *   its wire form turns back into it.
 *
 * @example A running total, with the client's side scripted
 * ```ts
 * import assert from "node:assert/strict";
 * import { TCPHandler } from "./mod.ts";
 * import { testHandler } from "./testing.ts";
 *
 * class Sum extends TCPHandler {
 *   async execute() {
 *     let total = 0;
 *     while (true) {
 *       const value = await this.recv<number | "end">();
 *       if (value === "end") return this.success({ total });
 *       total += value;
 *       await this.send({ running: total });
 *     }
 *   }
 * }
 *
 * const run = await testHandler(Sum, {}, { conversation: [1, 2, "end"] });
 * assert.deepEqual(run.result, { success: true, total: 3 });
 * assert.deepEqual(run.sent, [{ running: 1 }, { running: 3 }]);
 * assert.deepEqual(run.warnings, []);
 * ```
 *
 * @example A forgotten `return` is a warning
 * ```ts
 * import assert from "node:assert/strict";
 * import { TCPHandler } from "./mod.ts";
 * import { testHandler } from "./testing.ts";
 *
 * class Add extends TCPHandler<{ x: number; y: number }> {
 *   execute() {
 *     this.success({ solution: this.params.x + this.params.y }); // no return
 *   }
 * }
 *
 * const run = await testHandler(Add, { x: 1, y: 2 });
 * assert.equal(run.result, null);
 * assert.match(run.warnings[0], /Add\.execute\(\) returned undefined/);
 * ```
 *
 * @example Failures arrive as the client's typed errors
 * ```ts
 * import assert from "node:assert/strict";
 * import { HandlerFailedError, TCPHandler } from "./mod.ts";
 * import { testHandler } from "./testing.ts";
 *
 * class Divide extends TCPHandler<{ a: number; b: number }> {
 *   execute() {
 *     if (this.params.b === 0) return this.error("division by zero");
 *     if (!Number.isFinite(this.params.a)) throw new Error("a must be a number");
 *     return this.success({ quotient: this.params.a / this.params.b });
 *   }
 * }
 *
 * // The handler's own error(...) dictionary is a result, as TCPClient returns it.
 * const { result } = await testHandler(Divide, { a: 1, b: 0 });
 * assert.deepEqual(result, { error: true, message: "division by zero" });
 *
 * // A thrown error is what a client would catch.
 * const error = await testHandler(Divide, { a: Infinity, b: 1 }).catch((e) => e);
 * assert.ok(error instanceof HandlerFailedError);
 * assert.equal(error.message, "Handler failed: a must be a number");
 * ```
 */
export async function testHandler<C extends HandlerClass>(
  handler: C,
  params?: ParamsOf<C>,
  options: TestHandlerOptions = {},
): Promise<HandlerRun<ResultOf<C>>> {
  checkHandler(handler, "test the handler");
  const script = (options.conversation ?? []).map((value, i) =>
    jsonCopy(value, `script conversation value ${i}`)
  );
  const request = encodeRequest(params);
  const sent: unknown[] = [];
  const warnings: string[] = [];
  let read = 0;
  const { result } = start(handler, request, {
    message: (data) => sent.push(data),
    // No limits here (the executor has none): the byte counts do not matter.
    asked(task) {
      if (read < script.length) task.deliver(script[read++], 0);
      else task.cancel(scriptRanOut(script.length));
    },
    warnings,
  });
  return { result: await result as ResultOf<C>, sent, unread: script.slice(read), warnings };
}

/** What the handler's `recv()` gets once the scripted conversation is used up. */
function scriptRanOut(length: number): ConnectionClosedError {
  return new ConnectionClosedError(
    "The handler called recv() after the test's conversation ran out " +
      `(it scripted ${length} value${length === 1 ? "" : "s"}): ` +
      "the client has nothing more to send",
  );
}

/**
 * Starts a handler in this process with `params` and returns the call at
 * once, with the client's side of the conversation in your hands: `send`,
 * `recv` and `result` behave as on the `Call` that `TCPClient.call`
 * returns, with the same JSON round trips and typed errors as
 * {@linkcode testHandler}.
 *
 * @typeParam C The handler class.
 * @param handler A class that extends `TCPHandler`.
 * @param params The client's named params (`{}` if left out).
 * @returns The call in progress.
 * @throws {TypeError} If `handler` is not a handler class or `params` is
 *   not JSON-serializable.
 *
 * @example Answering what the handler asks
 * ```ts
 * import assert from "node:assert/strict";
 * import { TCPHandler } from "./mod.ts";
 * import { callHandler } from "./testing.ts";
 *
 * class Guess extends TCPHandler<{ secret: number }> {
 *   async execute() {
 *     for (let tries = 1;; tries++) {
 *       const guess = await this.recv<number>();
 *       const { secret } = this.params;
 *       const hint = guess < secret ? "higher" : guess > secret ? "lower" : "right";
 *       await this.send(hint);
 *       if (hint === "right") return this.success({ tries });
 *     }
 *   }
 * }
 *
 * const call = callHandler(Guess, { secret: 6 });
 * let [low, high, hint] = [1, 10, ""];
 * while (hint !== "right") {
 *   const guess = Math.floor((low + high) / 2);
 *   await call.send(guess);
 *   hint = await call.recv<string>();
 *   if (hint === "higher") low = guess + 1;
 *   if (hint === "lower") high = guess - 1;
 * }
 * assert.deepEqual(await call.result, { success: true, tries: 3 });
 * ```
 */
export function callHandler<C extends HandlerClass>(
  handler: C,
  params?: ParamsOf<C>,
): HandlerCall<ResultOf<C>> {
  checkHandler(handler, "call the handler");
  const request = encodeRequest(params);
  const toClient = new Inbox();
  const started = start(handler, request, { message: (data) => toClient.push(data) });
  const result = started.result.finally(() => toClient.close(callEnded())) as Promise<ResultOf<C>>;
  // As with TCPClient: a conversation may end without anyone awaiting
  // `result`; its failure must not become an unhandled rejection then.
  result.catch(() => {});
  return {
    result,
    send: jsonSender((json) => started.task?.deliver(JSON.parse(json), 0)),
    recv: <T>() => toClient.recv() as Promise<T>,
    close: () => started.task?.cancel(clientGone()),
  };
}

// ---------------------------------------------------------------------------
// Real servers

/** Workers of a test server: more than one, so per-worker module state shows. */
const DEFAULT_TEST_THREADS = 2;

/**
 * Options of {@linkcode startTestServer}: those of {@linkcode TCPServer},
 * with the same defaults, except where it listens (always 127.0.0.1 on a
 * free port), `onListen` (silent) and `threads` (2 workers).
 *
 * @typeParam C The command map, which types the clients of the server.
 *
 * @example Handlers inline, a short grace period for close()
 * ```ts
 * import { TCPHandler } from "./mod.ts";
 * import type { TestServerOptions } from "./testing.ts";
 *
 * class Ping extends TCPHandler {
 *   execute() {
 *     return this.success();
 *   }
 * }
 *
 * const options: TestServerOptions<{ ping: typeof Ping }> = {
 *   commands: { ping: Ping },
 *   threads: 0,
 *   gracePeriod: 100,
 * };
 * ```
 */
export interface TestServerOptions<C extends Commands = Commands>
  extends Omit<TCPServerOptions, "host" | "port" | "onListen" | "commands"> {
  /**
   * Command name → handler class. Its type also types the clients that
   * `client()` makes: command names, params and results.
   *
   * @default {{}}
   */
  commands?: C;
}

/**
 * Options of {@linkcode TestServer.client}: those of `TCPClient` but where to connect.
 *
 * @example
 * ```ts
 * import type { TestClientOptions } from "./testing.ts";
 * const options: TestClientOptions = { timeout: 2_000 };
 * ```
 */
export type TestClientOptions = Omit<TCPClientOptions, "host" | "port">;

/**
 * A running test server, from {@linkcode startTestServer}. Dispose of it
 * with `await using` (or call `close()`): its clients disconnect, then the
 * server closes.
 *
 * @typeParam C The server's command map.
 *
 * @example Two clients, typed by the command map
 * ```ts
 * import assert from "node:assert/strict";
 * import { TCPHandler } from "./mod.ts";
 * import { startTestServer, type TestServer } from "./testing.ts";
 *
 * let count = 0;
 * class Hit extends TCPHandler {
 *   execute() {
 *     return this.success({ hits: ++count });
 *   }
 * }
 *
 * const commands = { hit: Hit };
 * await using t: TestServer<typeof commands> = await startTestServer({ commands, threads: 0 });
 * const [a, b] = [t.client(), t.client()];
 * await a.execute("hit");
 * const { hits } = await b.execute("hit"); // hits: number
 * assert.equal(hits, 2);
 * ```
 */
export interface TestServer<C extends Commands = Commands> extends AsyncDisposable {
  /** The server itself. */
  readonly server: TCPServer;
  /** The address it listens on: `127.0.0.1`. */
  readonly hostname: string;
  /** The port the system picked. */
  readonly port: number;
  /**
   * A new client for this server. It connects on its first call, uses the
   * server's `secret` if it has one, and is disconnected when the test
   * server is disposed of. (For a TLS server, pass the client's `tls`
   * option yourself.)
   *
   * @param options Client options such as `timeout`.
   * @returns The client.
   */
  client(options?: TestClientOptions): TCPClient<C>;
  /**
   * Disconnects every client made by `client()`, then closes the server.
   * Safe to call more than once.
   *
   * @returns Resolves once nothing of the server is left running.
   */
  close(): Promise<void>;
}

/**
 * Starts a real {@linkcode TCPServer} for an integration test: on 127.0.0.1,
 * on a port the system picks, without the "listening" log line. Stop it with
 * `await using`.
 *
 * Handlers run in a pool of 2 workers unless `threads` says otherwise.
 * Two, not one: each worker has its own copy of every module, so a handler
 * that keeps state in a module-level variable (a `Map` of sessions, a
 * counter) sees a different copy from call to call, as on a production
 * server with several threads. With one worker such a test passes, and the
 * bug waits for production.
 *
 * The workers import the module in `module` to find the handler classes;
 * under `deno test` the default is the test file itself, so define the
 * handler classes at the test module's top level and export them, or pass
 * the module that defines them (`module: import.meta.url`, or the URL of a
 * fixtures file). `threads: 0` runs the handlers on the main thread, which
 * needs neither (and shares the test's module state).
 *
 * @typeParam C The command map; the clients from `client()` are typed by it.
 * @param options The server's options.
 * @returns The running server, its port and a client factory.
 * @throws {TypeError} If `commands` maps a name to something that is not a
 *   handler class.
 * @throws {RangeError} If an option is out of range.
 * @throws {Error} If the workers cannot find the handler classes.
 *
 * @example A conversation with a real server
 * ```ts
 * import assert from "node:assert/strict";
 * import { TCPHandler } from "./mod.ts";
 * import { startTestServer } from "./testing.ts";
 *
 * class Greet extends TCPHandler {
 *   async execute() {
 *     await this.send("name?");
 *     return this.success({ text: `Hello, ${await this.recv()}` });
 *   }
 * }
 *
 * await using t = await startTestServer({ commands: { greet: Greet }, threads: 0 });
 * await using client = t.client({ timeout: 5_000 });
 * const call = client.call("greet");
 * assert.equal(await call.recv(), "name?");
 * await call.send("Ada");
 * assert.deepEqual(await call.result, { success: true, text: "Hello, Ada" });
 * ```
 *
 * @example Handlers in workers, defined in another module
 * ```ts
 * import assert from "node:assert/strict";
 * import { startTestServer } from "./testing.ts";
 * // In your project: `import { startTestServer } from "@tcpy/tcpy/testing";` and your handlers.ts.
 * import { commands } from "./tests/fixtures/handlers.ts";
 *
 * // The workers import `module` to find the handler classes.
 * await using t = await startTestServer({
 *   commands,
 *   module: new URL("./tests/fixtures/handlers.ts", import.meta.url),
 *   threads: 1,
 * });
 * await using client = t.client({ timeout: 10_000 });
 * assert.deepEqual(await client.execute("add", { x: 1, y: 2 }), { success: true, solution: 3 });
 * ```
 */
export async function startTestServer<C extends Commands = Commands>(
  options: TestServerOptions<C> = {},
): Promise<TestServer<C>> {
  const server = new TCPServer({
    ...options,
    threads: options.threads ?? DEFAULT_TEST_THREADS,
    host: "127.0.0.1",
    port: 0,
    onListen() {},
  });
  const { hostname, port } = await server.listen();
  // Clients authenticate with the server's secret unless told otherwise.
  const secret = options.secret === undefined ? {} : { secret: options.secret };
  const clients = new Set<TCPClient<C>>();
  let closing: Promise<void> | undefined;
  const shutdown = async () => {
    await Promise.all([...clients].map((client) => client.disconnect()));
    await server.close();
  };
  const close = () => (closing ??= shutdown());
  return {
    server,
    hostname,
    port,
    client(clientOptions: TestClientOptions = {}): TCPClient<C> {
      if (closing) throw new Error("Cannot create a client: the test server is closed");
      const client = new TCPClient<C>({ ...secret, ...clientOptions, host: hostname, port });
      clients.add(client);
      return client;
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}

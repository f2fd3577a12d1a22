/** The in-process handler helpers: testHandler (scripted) and callHandler (interactive). */
import assert from "node:assert/strict";
import {
  ConnectionClosedError,
  HandlerFailedError,
  InvalidParamsError,
  InvalidRequestError,
  ServerBusyError,
  TCPHandler,
  TcpyError,
} from "./mod.ts";
import { callHandler, testHandler } from "./testing.ts";

class Add extends TCPHandler<{ x: number; y: number }> {
  execute() {
    return this.success({ solution: this.params.x + this.params.y });
  }
}

class Greet extends TCPHandler<{ greeting?: string }> {
  async execute() {
    await this.send({ question: "name?" });
    const answer = await this.recv<{ name: string }>();
    return this.success({ text: `${this.params.greeting ?? "Hello"}, ${answer.name}` });
  }
}

class Sum extends TCPHandler {
  async execute() {
    let total = 0;
    while (true) {
      const value = await this.recv<number | "end">();
      if (value === "end") return this.success({ total });
      total += value;
      await this.send({ running: total });
    }
  }
}

class Echo extends TCPHandler {
  execute() {
    return this.params;
  }
}

class Refuse extends TCPHandler<{ code?: number }> {
  execute() {
    return this.error("refused", { code: this.params.code, when: new Date(0) });
  }
}

class Boom extends TCPHandler {
  execute(): never {
    throw new RangeError("kaboom");
  }
}

class Reject extends TCPHandler {
  async execute() {
    await Promise.resolve();
    throw "a string, not an Error";
  }
}

class Strict extends TCPHandler<{ n: unknown }> {
  execute() {
    if (typeof this.params.n !== "number") throw new InvalidParamsError("n must be a number");
    return this.success({ square: this.params.n ** 2 });
  }
}

class Busy extends TCPHandler {
  execute(): never {
    throw new ServerBusyError("come back later", { data: { retryAfter: 5 } });
  }
}

class NotJson extends TCPHandler {
  execute() {
    return { big: 1n };
  }
}

class SendsBigInt extends TCPHandler {
  async execute() {
    await this.send(1n);
    return "unreachable";
  }
}

/** Reads until the client goes away, then reports how much it got. */
class Drain extends TCPHandler {
  async execute() {
    const got: unknown[] = [];
    try {
      while (true) got.push(await this.recv());
    } catch (error) {
      return { got, closed: error instanceof ConnectionClosedError };
    }
  }
}

Deno.test("testHandler returns the result as a client sees it, after a JSON round trip", async () => {
  assert.deepEqual(await testHandler(Add, { x: 1, y: 2 }), {
    result: { success: true, solution: 3 },
    sent: [],
    unread: [],
    warnings: [],
  });
  const { result } = await testHandler(Echo, {
    when: new Date(0),
    gone: undefined,
    list: [undefined, 1],
  });
  assert.deepEqual(result, { when: "1970-01-01T00:00:00.000Z", list: [null, 1] });
  // No params at all: the handler sees {}.
  assert.deepEqual((await testHandler(Echo)).result, {});
});

Deno.test("testHandler feeds the scripted conversation to recv() and reports what was sent", async () => {
  const greet = await testHandler(Greet, { greeting: "Hi" }, {
    conversation: [{ name: "Ada" }],
  });
  assert.deepEqual(greet.sent, [{ question: "name?" }]);
  assert.deepEqual(greet.result, { success: true, text: "Hi, Ada" });

  const sum = await testHandler(Sum, {}, { conversation: [1, 2, 3, "end"] });
  assert.deepEqual(sum.sent, [{ running: 1 }, { running: 3 }, { running: 6 }]);
  assert.deepEqual(sum.result, { success: true, total: 6 });
});

class Forgetful extends TCPHandler<{ x: number }> {
  execute() {
    this.success({ doubled: this.params.x * 2 }); // the return is missing
  }
}

class ForgetfulLater extends TCPHandler {
  async execute() {
    await this.send("working");
  }
}

class Nothing extends TCPHandler {
  execute() {
    return null;
  }
}

/** Knows its own class, as handlers may. */
class SelfAware extends TCPHandler {
  execute() {
    return { mine: this instanceof SelfAware && this.constructor === SelfAware };
  }
}

Deno.test("testHandler warns when execute() returned undefined, sync or async", async () => {
  const sync = await testHandler(Forgetful, { x: 2 });
  assert.equal(sync.result, null);
  assert.deepEqual(sync.warnings, [
    "Forgetful.execute() returned undefined: did it forget to `return`? The client receives " +
    "null. Return this.success(...), this.error(...) or the value to send, or null to mean nothing.",
  ]);
  const later = await testHandler(ForgetfulLater);
  assert.deepEqual(later.sent, ["working"]);
  assert.equal(later.warnings.length, 1);
  assert.match(later.warnings[0], /^ForgetfulLater\.execute\(\) returned undefined/);
});

Deno.test("testHandler does not warn about a handler that returns null on purpose", async () => {
  assert.deepEqual(await testHandler(Nothing), {
    result: null,
    sent: [],
    unread: [],
    warnings: [],
  });
  assert.deepEqual((await testHandler(SelfAware)).result, { mine: true });
});

Deno.test("testHandler reports the scripted values the handler never read", async () => {
  const run = await testHandler(Sum, {}, { conversation: [1, "end", 5, { late: true }] });
  assert.deepEqual(run.result, { success: true, total: 1 });
  assert.deepEqual(run.unread, [5, { late: true }]);
});

Deno.test("testHandler: recv() after the script ran out rejects with ConnectionClosedError", async () => {
  const error = await testHandler(Sum, {}, { conversation: [1, 2] }).catch((e) => e);
  assert.ok(error instanceof ConnectionClosedError, String(error));
  assert.match(
    error.message,
    /recv\(\) after the test's conversation ran out \(it scripted 2 values\)/,
  );

  const none = await testHandler(Greet).catch((e) => e);
  assert.ok(none instanceof ConnectionClosedError);
  assert.match(none.message, /scripted 0 values/);

  // A handler that expects its client to leave sees the same error a server gives it.
  assert.deepEqual((await testHandler(Drain, {}, { conversation: ["a", 1] })).result, {
    got: ["a", 1],
    closed: true,
  });
});

Deno.test("testHandler turns a thrown error into HandlerFailedError, as the client gets it", async () => {
  const error = await testHandler(Boom).catch((e) => e);
  assert.ok(error instanceof HandlerFailedError);
  assert.equal(error.code, -32603);
  assert.equal(error.message, "Handler failed: kaboom");
  assert.deepEqual(error.data, { name: "RangeError" });

  const rejected = await testHandler(Reject).catch((e) => e);
  assert.ok(rejected instanceof HandlerFailedError);
  assert.equal(rejected.message, "Handler failed: a string, not an Error");
  assert.deepEqual(rejected.data, { name: "string" });
});

Deno.test("testHandler returns a handler's error() dictionary instead of throwing", async () => {
  assert.deepEqual((await testHandler(Refuse)).result, {
    error: true,
    message: "refused",
    when: "1970-01-01T00:00:00.000Z",
  });
  // Its own code travels in the dictionary, reserved or not.
  assert.deepEqual((await testHandler(Refuse, { code: 42 })).result, {
    error: true,
    message: "refused",
    code: 42,
    when: "1970-01-01T00:00:00.000Z",
  });
  assert.equal(
    ((await testHandler(Refuse, { code: -32601 })).result as { code: number }).code,
    -32601,
  );
});

Deno.test("testHandler throws the TcpyError subclass a handler threw, with its data", async () => {
  await assert.rejects(testHandler(Strict, { n: "two" }), (error) => {
    assert.ok(error instanceof InvalidParamsError);
    assert.equal(error.message, "n must be a number");
    return true;
  });
  await assert.rejects(testHandler(Busy), (error) => {
    assert.ok(error instanceof ServerBusyError);
    assert.deepEqual(error.data, { retryAfter: 5 });
    return true;
  });
});

Deno.test("testHandler refuses what the server refuses: array params, deep params, non-JSON results", async () => {
  await assert.rejects(
    testHandler(Echo, [1, 2] as unknown as Record<string, unknown>),
    InvalidParamsError,
  );
  let deep: unknown = 1;
  for (let i = 0; i < 100; i++) deep = [deep];
  await assert.rejects(testHandler(Echo, { deep }), InvalidRequestError);
  await assert.rejects(testHandler(NotJson), (error) => {
    assert.ok(error instanceof HandlerFailedError);
    assert.match(error.message, /^Handler returned a value that is not JSON/);
    return true;
  });
  await assert.rejects(testHandler(SendsBigInt), (error) => {
    assert.ok(error instanceof HandlerFailedError);
    assert.match(error.message, /Cannot send\(\): data is not JSON-serializable/);
    return true;
  });
});

Deno.test("testHandler refuses a non-handler and values JSON cannot carry with TypeError", async () => {
  await assert.rejects(
    testHandler(class {} as unknown as typeof Add),
    new TypeError("Cannot test the handler: handler must be a class that extends TCPHandler"),
  );
  await assert.rejects(testHandler(Echo, { n: 1n }), (error) => {
    assert.ok(error instanceof TypeError);
    assert.match(error.message, /^Cannot call the handler: params are not JSON-serializable/);
    return true;
  });
  await assert.rejects(testHandler(Sum, {}, { conversation: [1, 2n] }), (error) => {
    assert.ok(error instanceof TypeError);
    assert.match(error.message, /^Cannot script conversation value 1: it is not JSON-serializable/);
    return true;
  });
});

Deno.test("callHandler holds a conversation like client.call", async () => {
  const call = callHandler(Greet, { greeting: "Hello" });
  assert.deepEqual(await call.recv(), { question: "name?" });
  await call.send({ name: "Ada", extra: undefined });
  assert.deepEqual(await call.result, { success: true, text: "Hello, Ada" });
  // The call has ended: recv() says so instead of waiting forever.
  await assert.rejects(call.recv(), ConnectionClosedError);
});

Deno.test("callHandler: what the handler sent stays readable after the call ends", async () => {
  const call = callHandler(Sum);
  await call.send(2);
  await call.send(3);
  await call.send("end");
  assert.deepEqual(await call.result, { success: true, total: 5 });
  assert.deepEqual(await call.recv(), { running: 2 });
  assert.deepEqual(await call.recv(), { running: 5 });
  await assert.rejects(call.recv(), /The call has ended/);
});

Deno.test("callHandler: close() plays the client leaving; the handler's recv() rejects", async () => {
  const call = callHandler(Drain);
  await call.send("one");
  call.close();
  await call.send("ignored after close");
  assert.deepEqual(await call.result, { got: ["one"], closed: true });
});

Deno.test("callHandler: a failed call rejects result with the typed error", async () => {
  await assert.rejects(callHandler(Boom).result, HandlerFailedError);
  // Nobody awaits this one: its failure must not become an unhandled rejection.
  callHandler(Reject);
  await new Promise((resolve) => setTimeout(resolve, 0));
});

Deno.test("callHandler refuses bad arguments up front and non-JSON data on send", async () => {
  assert.throws(
    () => callHandler({} as unknown as typeof Add),
    /Cannot call the handler: handler must be a class that extends TCPHandler/,
  );
  assert.throws(() => callHandler(Echo, { n: 1n }), TypeError);
  const call = callHandler(Sum);
  await assert.rejects(call.send(1n), /Cannot send\(\): data is not JSON-serializable/);
  await call.send("end");
  assert.deepEqual(await call.result, { success: true, total: 0 });
});

Deno.test("testHandler's errors are TcpyErrors with the wire codes", async () => {
  const error = await testHandler(Boom).catch((e) => e);
  assert.ok(error instanceof TcpyError);
  assert.deepEqual(error.toWire(), {
    code: -32603,
    message: "Handler failed: kaboom",
    data: { name: "RangeError" },
  });
});

/** Reads once, then reports whether its call was given up on. */
class Watch extends TCPHandler {
  async execute() {
    const got = await this.recv().catch((error) => (error as Error).message);
    return { got, aborted: this.signal.aborted };
  }
}

Deno.test("the handler's signal aborts when its client leaves or the script runs out, as on a server", async () => {
  const call = callHandler(Watch);
  call.close();
  assert.deepEqual(await call.result, {
    got: "The client closed the connection before the call finished",
    aborted: true,
  });
  assert.deepEqual((await testHandler(Watch)).result, {
    got:
      "The handler called recv() after the test's conversation ran out (it scripted 0 values): " +
      "the client has nothing more to send",
    aborted: true,
  });
  assert.deepEqual((await testHandler(Watch, {}, { conversation: ["hi"] })).result, {
    got: "hi",
    aborted: false,
  });
});

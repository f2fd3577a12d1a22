/**
 * TCPServer over real sockets on 127.0.0.1 (port 0), with real workers.
 * Most behaviours run twice: with the default pool and with `threads: 0`.
 */
import assert from "node:assert/strict";
import {
  ErrorCode,
  HandlerFailedError,
  InvalidParamsError,
  TCPClient,
  TCPServer,
  UnknownCommandError,
  WorkerCrashedError,
} from "../mod.ts";
import { AdditionHandler } from "../examples/tutorial_server.ts";
import { FIXTURES, RawClient, startFixtures, waitFor } from "./_helpers.ts";
import { HEAVY_US, SAMPLES } from "../internal/placement.ts";

const MODES = [{ name: "pool", threads: 2 }, { name: "inline", threads: 0 }] as const;

for (const { name, threads } of MODES) {
  Deno.test(`TCPServer (${name}) answers the tutorial's add`, async () => {
    await using server = new TCPServer({
      host: "127.0.0.1",
      port: 0,
      threads: name === "pool" ? undefined : 0, // the pool case uses the DEFAULT 4 threads
      module: new URL("../examples/tutorial_server.ts", import.meta.url),
      onListen() {},
    });
    server.commands = { add: AdditionHandler };
    const { port } = await server.listen();
    assert.equal(server.port, port);
    await using client = new TCPClient({ port });
    assert.deepEqual(await client.execute("add", { x: 1, y: 2 }), { success: true, solution: 3 });
  });

  Deno.test(`TCPServer (${name}) matches 500 concurrent calls on one connection by id`, async () => {
    await using t = await startFixtures({ threads });
    const client = t.client();
    const calls = Array.from(
      { length: 500 },
      (_, i) =>
        i % 5 === 0
          ? client.execute("sleep", { ms: (i * 7) % 20, value: i }) // finish out of order
          : client.execute("add", { x: i, y: 1000 }),
    );
    const results = await Promise.all(calls);
    results.forEach((result, i) => {
      if (i % 5 === 0) assert.deepEqual(result, { success: true, slept: (i * 7) % 20, value: i });
      else assert.deepEqual(result, { success: true, solution: i + 1000 });
    });
  });

  Deno.test(`TCPServer (${name}) holds two conversations on one connection at once`, async () => {
    await using t = await startFixtures({ threads });
    const client = t.client();
    const greet = client.call("greet", { greeting: "Hi" });
    const sum = client.call("sum");
    assert.deepEqual(await greet.recv(), { question: "name?" });
    await sum.send(5);
    assert.deepEqual(await sum.recv(), { running: 5 });
    await greet.send({ name: "Ada" });
    await sum.send(7);
    assert.deepEqual(await sum.recv(), { running: 12 });
    await sum.send("end");
    assert.deepEqual(await greet.result, { success: true, text: "Hi, Ada" });
    assert.deepEqual(await sum.result, { success: true, total: 12 });
  });

  Deno.test(`TCPServer (${name}) converses through the client's raw send/recv`, async () => {
    await using t = await startFixtures({ threads });
    const client = t.client();
    const result = client.execute("greet");
    assert.deepEqual(await client.recv(), { question: "name?" });
    await client.send({ name: "Grace" });
    assert.deepEqual(await result, { success: true, text: "Hello, Grace" });
    await assert.rejects(client.recv(), TypeError);
  });

  Deno.test(`TCPServer (${name}) answers an unknown command with -32601 and keeps the connection`, async () => {
    await using t = await startFixtures({ threads });
    const client = t.client();
    for (const command of ["nope", "constructor", "toString", "__proto__", "hasOwnProperty"]) {
      await assert.rejects(
        client.execute(command),
        (e: unknown) => e instanceof UnknownCommandError && e.code === -32601,
        command,
      );
    }
    assert.deepEqual(await client.execute("add", { x: 2, y: 2 }), { success: true, solution: 4 });
  });

  Deno.test(`TCPServer (${name}) answers a malformed line with -32700 and keeps the connection`, async () => {
    await using t = await startFixtures({ threads });
    const raw = await RawClient.connect(t.port);
    try {
      await raw.write('{"jsonrpc":"2.0","id":1,"method":"add",\n');
      const parse = await raw.read() as { id: null; error: { code: number; message: string } };
      assert.equal(parse.id, null);
      assert.equal(parse.error.code, -32700);
      assert.match(parse.error.message, /^Parse error: /);
      await raw.write(Uint8Array.of(0xff, 0xfe, 0x0a));
      const utf8 = await raw.read() as { error: { code: number; message: string } };
      assert.equal(utf8.error.code, -32700);
      assert.match(utf8.error.message, /UTF-8/);
      await raw.write('"just a string"\n{"jsonrpc":"2.0","id":7}\n');
      assert.equal((await raw.read() as { error: { code: number } }).error.code, -32600);
      assert.deepEqual(await raw.read(), {
        jsonrpc: "2.0",
        id: 7,
        error: { code: -32600, message: "Invalid request: method must be a string" },
      });
      await raw.write('{"jsonrpc":"2.0","id":2,"method":"add","params":{"x":1,"y":2}}\n');
      assert.deepEqual(await raw.read(), {
        jsonrpc: "2.0",
        id: 2,
        result: { success: true, solution: 3 },
      });
    } finally {
      raw.close();
    }
  });

  Deno.test(`TCPServer (${name}) turns a throwing handler into HandlerFailedError and goes on`, async () => {
    await using t = await startFixtures({ threads });
    const client = t.client();
    const results = await Promise.allSettled([
      client.execute("boom"),
      client.execute("reject"),
      client.execute("notJson"),
      client.execute("add", { x: 1, y: 1 }),
    ]);
    for (const [i, message] of [[0, /kaboom/], [1, /async kaboom/], [2, /not JSON/]] as const) {
      const result = results[i];
      assert.equal(result.status, "rejected");
      assert.ok(result.reason instanceof HandlerFailedError);
      assert.equal(result.reason.code, -32603);
      assert.match(result.reason.message, message);
    }
    assert.deepEqual(results[3], { status: "fulfilled", value: { success: true, solution: 2 } });
  });

  Deno.test(`TCPServer (${name}) returns a handler's error() dictionary to TCPClient`, async () => {
    await using t = await startFixtures({ threads });
    const client = t.client();
    assert.deepEqual(await client.execute("refuse", { reason: "closed" }), {
      error: true,
      message: "refused",
      reason: "closed",
    });
    // Other JSON-RPC clients see a JSON-RPC error with the dictionary as data.
    const raw = await RawClient.connect(t.port);
    try {
      await raw.write('{"jsonrpc":"2.0","id":"r","method":"refuse","params":{"reason":"x"}}\n');
      assert.deepEqual(await raw.read(), {
        jsonrpc: "2.0",
        id: "r",
        error: {
          code: 1,
          message: "refused",
          data: { error: true, message: "refused", reason: "x" },
        },
      });
      await raw.write('{"jsonrpc":"2.0","id":"c","method":"refuse","params":{"code":409}}\n');
      assert.equal((await raw.read() as { error: { code: number } }).error.code, 409);
      await raw.write('{"jsonrpc":"2.0","id":"d","method":"refuse","params":{"code":-32601}}\n');
      assert.equal((await raw.read() as { error: { code: number } }).error.code, 1);
    } finally {
      raw.close();
    }
  });

  Deno.test(`TCPServer (${name}) refuses bad params with -32602`, async () => {
    await using t = await startFixtures({ threads });
    const client = t.client();
    await assert.rejects(client.execute("strict", { n: "two" }), InvalidParamsError);
    assert.deepEqual(await client.execute("strict", { n: 3 }), { success: true, square: 9 });
    const raw = await RawClient.connect(t.port);
    try {
      await raw.write('{"jsonrpc":"2.0","id":1,"method":"add","params":[1,2]}\n');
      assert.equal((await raw.read() as { error: { code: number } }).error.code, -32602);
    } finally {
      raw.close();
    }
  });

  Deno.test(`TCPServer (${name}) answers batches with one array and runs notifications silently`, async () => {
    await using t = await startFixtures({ threads: name === "pool" ? 1 : 0 });
    const raw = await RawClient.connect(t.port);
    try {
      await raw.write(
        JSON.stringify([
          { jsonrpc: "2.0", id: 1, method: "add", params: { x: 1, y: 2 } },
          { jsonrpc: "2.0", method: "count", params: { by: 10 } },
          { jsonrpc: "2.0", id: 2, method: "nope" },
          { foo: "bar" },
          { jsonrpc: "2.0", id: 3, method: "sleep", params: { ms: 20 } },
        ]) + "\n",
      );
      const replies = await raw.read() as {
        id: unknown;
        error?: { code: number };
        result?: unknown;
      }[];
      assert.ok(Array.isArray(replies));
      const byId = new Map(replies.map((r) => [r.id, r]));
      assert.equal(replies.length, 4);
      assert.deepEqual(byId.get(1), {
        jsonrpc: "2.0",
        id: 1,
        result: { success: true, solution: 3 },
      });
      assert.equal(byId.get(2)?.error?.code, -32601);
      assert.equal(byId.get(null)?.error?.code, -32600);
      assert.deepEqual(byId.get(3)?.result, { success: true, slept: 20 });
      // A batch of notifications gets no reply at all; the next call shows they ran.
      await raw.write('[{"jsonrpc":"2.0","method":"count"},{"jsonrpc":"2.0","method":"count"}]\n');
      await raw.write('{"jsonrpc":"2.0","id":9,"method":"count","params":{"by":0}}\n');
      const after = await raw.read() as { id: number; result: { counter: number } };
      assert.equal(after.id, 9);
      assert.ok(after.result.counter >= 12, `counter ${after.result.counter}`);
      await raw.write("[]\n");
      assert.equal((await raw.read() as { error: { code: number } }).error.code, -32600);
    } finally {
      raw.close();
    }
  });

  Deno.test(`TCPServer (${name}) refuses a second call with an id still in flight`, async () => {
    await using t = await startFixtures({ threads });
    const raw = await RawClient.connect(t.port);
    try {
      await raw.write('{"jsonrpc":"2.0","id":5,"method":"sleep","params":{"ms":100}}\n');
      await raw.write('{"jsonrpc":"2.0","id":5,"method":"add","params":{"x":1,"y":1}}\n');
      const first = await raw.read() as { id: number; error?: { code: number } };
      assert.equal(first.error?.code, -32600);
      const second = await raw.read() as { id: number; result?: unknown };
      assert.deepEqual(second.result, { success: true, slept: 100 });
    } finally {
      raw.close();
    }
  });

  Deno.test(`TCPServer (${name}) keeps params' __proto__ keys from changing any prototype`, async () => {
    await using t = await startFixtures({ threads });
    const raw = await RawClient.connect(t.port);
    try {
      await raw.write(
        '{"jsonrpc":"2.0","id":1,"method":"merge","params":{"__proto__":{"polluted":1},' +
          '"constructor":{"prototype":{"polluted":2}},"a":1}}\n',
      );
      const reply = await raw.read() as { result: Record<string, unknown> };
      assert.deepEqual(reply.result, {
        mergedProto: true,
        spreadProto: true,
        polluted: null,
        keys: ["__proto__", "a", "constructor"],
      });
      assert.equal(({} as Record<string, unknown>).polluted, undefined);
    } finally {
      raw.close();
    }
  });

  Deno.test(`TCPServer (${name}) answers requests sent before the client half-closes`, async () => {
    await using t = await startFixtures({ threads });
    const raw = await RawClient.connect(t.port);
    try {
      await raw.write('{"jsonrpc":"2.0","id":1,"method":"sleep","params":{"ms":50}}\n');
      await raw.write('{"jsonrpc":"2.0","id":2,"method":"add","params":{"x":1,"y":2}}'); // no \n, like nc + Ctrl-D
      await raw.conn.closeWrite();
      // End of input counts as the client leaving (a half-close cannot be
      // told from a close): the sleep, which stops on its signal, is
      // cancelled; add had finished. Both are answered.
      const replies = [await raw.read(), await raw.read()] as { id: number }[];
      assert.deepEqual(replies.sort((a, b) => a.id - b.id), [
        {
          jsonrpc: "2.0",
          id: 1,
          error: {
            code: -32005,
            message: "The client closed the connection before the call finished",
          },
        },
        { jsonrpc: "2.0", id: 2, result: { success: true, solution: 3 } },
      ]);
      assert.deepEqual(await raw.read(), { jsonrpc: "2.0", method: "tcpy.bye" });
      assert.equal(await raw.read(), undefined);
    } finally {
      raw.close();
    }
  });

  Deno.test(`TCPServer (${name}) rejects an oversized message with -32003, then closes`, async () => {
    await using t = await startFixtures({ threads, maxMessageBytes: 1024 });
    const raw = await RawClient.connect(t.port);
    const other = t.client();
    try {
      await raw.write(
        '{"jsonrpc":"2.0","id":1,"method":"echo","params":{"pad":"' + "x".repeat(4096),
      );
      const reply = await raw.read() as { id: null; error: { code: number } };
      assert.equal(reply.id, null);
      assert.equal(reply.error.code, ErrorCode.MESSAGE_TOO_LARGE);
      assert.equal(await raw.closedByPeer(), true);
      assert.deepEqual(await other.execute("add", { x: 1, y: 1 }), { success: true, solution: 2 });
    } finally {
      raw.close();
    }
  });

  Deno.test(`TCPServer (${name}) keeps serving others when a client vanishes mid-conversation`, async () => {
    await using t = await startFixtures({ threads });
    const leaver = t.client();
    const call = leaver.call("greet");
    assert.deepEqual(await call.recv(), { question: "name?" });
    await leaver.disconnect();
    await assert.rejects(call.result);
    const stayer = t.client();
    assert.deepEqual(await stayer.execute("add", { x: 4, y: 5 }), { success: true, solution: 9 });
  });

  Deno.test(`TCPServer (${name}) lets a call in flight finish during close()`, async () => {
    await using t = await startFixtures({ threads });
    const { server } = t;
    const client = t.client();
    const slow = client.execute("sleep", { ms: 200, value: "done" });
    await waitFor(() => server.inFlight === 1, { what: "the sleep call to be in flight" });
    const closing = server.close();
    assert.deepEqual(await slow, { success: true, slept: 200, value: "done" });
    await closing;
    assert.equal(server.listening, false);
    await assert.rejects(Deno.connect({ hostname: "127.0.0.1", port: t.port }));
  });
}

Deno.test("TCPServer runs handlers in its workers, and inline classes on the main thread", async () => {
  await using pooled = await startFixtures({ threads: 2 });
  const client = pooled.client();
  const threads = new Set<string>();
  const results = await Promise.all(Array.from({ length: 40 }, () => client.execute("where")));
  for (const result of results) threads.add((result as { thread: string }).thread);
  for (const thread of threads) assert.match(thread, /^tcpy-worker-[01]$/);
  assert.deepEqual(await client.execute("whereInline"), { thread: "main" });

  await using inline = await startFixtures({ threads: 0 });
  const other = inline.client();
  assert.deepEqual(await other.execute("where"), { thread: "main" });
});

Deno.test("measured placement: a cheap command moves out of the pool, and back once it turns slow", async () => {
  await using t = await startFixtures({ threads: 1 });
  const client = t.client();
  // Whether the call ran in the pool (else where it arrived: the main
  // thread, or an I/O thread when the test runs with --unstable-net).
  const pooled = async (spinMs = 0) =>
    ((await client.execute("shifty", { spinMs })) as { thread: string }).thread ===
      "tcpy-worker-0";
  // Pool runs until SAMPLES cheap ones are seen, then where the call arrives
  // (more runs if a busy machine made some look slow: bounded here).
  let poolRuns = 0;
  while (await pooled()) {
    poolRuns++;
    assert.ok(poolRuns <= 20 * SAMPLES, `still in the pool after ${poolRuns} cheap calls`);
  }
  assert.ok(poolRuns >= SAMPLES, `moved after only ${poolRuns} pool runs`);
  // Every read's dispatch is timed: the first slow run (3 ms; DEMOTE_US is
  // 1 ms) makes it suspect, whether or not it was one of the sampled runs;
  // the second sends it back.
  let slowInline = 0;
  while (!(await pooled(3))) assert.ok(++slowInline <= 2, `${slowInline} slow calls ran inline`);
  assert.ok(slowInline >= 1, "the first slow call did not run where it arrived");
  assert.equal(await pooled(), true, "not sent back after two slow calls");
});

Deno.test("measured placement: an async handler that awaits I/O moves out of the pool too", async () => {
  await using t = await startFixtures({ threads: 1 });
  const client = t.client();
  // Before, one run that returned a promise kept a command in the pool for good.
  let poolRuns = 0;
  while (((await client.execute("awaits")) as { thread: string }).thread === "tcpy-worker-0") {
    poolRuns++;
    assert.ok(poolRuns <= 20 * SAMPLES, `still in the pool after ${poolRuns} calls`);
  }
  assert.ok(poolRuns >= SAMPLES, `moved after only ${poolRuns} pool runs`);
});

Deno.test("measured placement cannot be gamed: cheap params to move a command, then heavy ones", async () => {
  await using t = await startFixtures({ threads: 1 });
  const client = t.client();
  const pooled = async (spinMs = 0) =>
    ((await client.execute("shifty", { spinMs })) as { thread: string }).thread ===
      "tcpy-worker-0";
  let warmUp = 0;
  while (await pooled()) assert.ok(++warmUp <= 20 * SAMPLES, "never moved");
  // Heavy runs (over HEAVY_US) stall the thread at most twice (once, if a
  // pre-empted dispatch already made it suspect)...
  let stalls = 0;
  while (!(await pooled(HEAVY_US / 1000 + 5))) {
    assert.ok(++stalls <= 2, `${stalls} heavy runs where calls arrive`);
  }
  assert.ok(stalls >= 1, "the first heavy call did not run where it arrived");
  // ...then the command stays in the pool for 16 x SAMPLES cheap runs (a
  // light strike: 2 x), and heavy ones among them keep it there.
  for (let i = 0; i < 8 * SAMPLES; i++) {
    assert.equal(await pooled(), true, `back where calls arrive after ${i} cheap runs`);
  }
});

Deno.test("TCPServer spreads a burst of CPU-bound calls from one client over the workers", async () => {
  await using t = await startFixtures({ threads: 4 });
  const client = t.client();
  // Unmeasured, then measured (~100 ms each): each burst must use four workers at once.
  for (let round = 0; round < 2; round++) {
    const results = await Promise.all(
      Array.from({ length: 4 }, () => client.execute("toil", { ms: 100 })),
    );
    const threads = new Set(results.map((r) => (r as { thread: string }).thread));
    assert.equal(threads.size, 4, `round ${round}: ran on ${[...threads]}`);
  }
});

Deno.test("TCPServer fails only the calls of a worker that dies, and replaces it", async () => {
  await using t = await startFixtures({ threads: 2 });
  const client = t.client();
  for (const killer of ["crash", "quit"]) {
    const doomed = client.execute(killer);
    const bystanders = Array.from({ length: 20 }, (_, i) => client.execute("add", { x: i, y: i }));
    await assert.rejects(
      doomed,
      (e: unknown) => e instanceof WorkerCrashedError && e.code === -32004,
    );
    const settled = await Promise.allSettled(bystanders);
    const ok = settled.filter((s) => s.status === "fulfilled").length;
    // Calls of one tick go to one worker in batches of up to 16, so at most
    // 15 bystanders share the killer's worker and may fail with it (never
    // hang); the rest ran on the other worker and succeed.
    assert.ok(ok >= 5, `${ok} of 20 bystanders succeeded`);
    for (const s of settled) {
      if (s.status === "rejected") assert.ok(s.reason instanceof WorkerCrashedError);
    }
    // The replacement takes calls once it has loaded: both workers answer again.
    const names = new Set<string>();
    await waitFor(async () => {
      const after = await Promise.all(Array.from({ length: 20 }, () => client.execute("where")));
      for (const r of after) names.add((r as { thread: string }).thread);
      return names.size === 2;
    }, { what: () => `both workers to answer (seen: ${[...names]})`, interval: 20 });
  }
});

Deno.test("TCPServer.listen rejects when the workers cannot find the handler classes", async () => {
  class Hidden extends AdditionHandler {}
  const server = new TCPServer({
    port: 0,
    threads: 1,
    commands: { hidden: Hidden },
    module: FIXTURES,
    onListen() {},
  });
  await assert.rejects(server.listen(), /Cannot find handler classes for hidden \(Hidden\)/);
  await server.close();
});

Deno.test("TCPServer refuses bad options and bad command maps with clear errors", async () => {
  assert.throws(
    () => new TCPServer({ port: -1 }),
    /port -1: port must be an integer from 0 to 65535/,
  );
  assert.throws(() => new TCPServer({ port: 70000 }), RangeError);
  assert.throws(() => new TCPServer({ threads: 1.5 }), RangeError);
  assert.throws(() => new TCPServer({ host: "" }), TypeError);
  assert.throws(() => new TCPServer({ maxMessageBytes: 0 }), RangeError);
  const notAClass = new TCPServer({ port: 0, threads: 0, onListen() {} });
  notAClass.commands = { add: (() => 3) as never };
  await assert.rejects(notAClass.listen(), /must map to a class that extends TCPHandler/);
  const reserved = new TCPServer({ port: 0, threads: 0, commands: { "tcpy.x": AdditionHandler } });
  await assert.rejects(reserved.listen(), /reserved prefix/);
});

Deno.test("TCPServer.listen reports a port already in use", async () => {
  await using first = await startFixtures({ threads: 0 });
  const second = new TCPServer({ host: "127.0.0.1", port: first.port, threads: 0, onListen() {} });
  await assert.rejects(second.listen(), Deno.errors.AddrInUse);
});

Deno.test("TCPServer logs where it listens by default", async () => {
  const logged: string[] = [];
  const original = console.log;
  console.log = (...args: unknown[]) => logged.push(args.join(" "));
  try {
    await using server = new TCPServer({ host: "127.0.0.1", port: 0, threads: 0 });
    const { port } = await server.listen();
    assert.deepEqual(logged, [`tcpy listening on 127.0.0.1:${port}`]);
  } finally {
    console.log = original;
  }
});

Deno.test("TCPServer answers tcpy.ping itself, and refuses it while shutting down", async () => {
  // A short linger: close() need not wait long for this client to hang up.
  await using t = await startFixtures({ threads: 1, linger: 50 });
  const { server } = t;
  const raw = await RawClient.connect(t.port);
  try {
    await raw.write('{"jsonrpc":"2.0","id":"hc","method":"tcpy.ping"}\n');
    assert.deepEqual(await raw.read(), { jsonrpc: "2.0", id: "hc", result: { pong: true } });
    await raw.write('{"jsonrpc":"2.0","id":1,"method":"sleep","params":{"ms":150}}\n');
    await waitFor(() => server.inFlight === 1, { what: "the sleep call to be in flight" });
    const closing = server.close();
    await raw.write('{"jsonrpc":"2.0","id":"hc2","method":"tcpy.ping"}\n');
    assert.deepEqual(await raw.read(), {
      jsonrpc: "2.0",
      id: "hc2",
      error: { code: -32007, message: "The server is shutting down" },
    });
    // Call 1 began before close(): it finishes with its result, not a refusal.
    assert.deepEqual(await raw.read(), {
      jsonrpc: "2.0",
      id: 1,
      result: { success: true, slept: 150 },
    });
    await closing;
  } finally {
    raw.close();
  }
});

Deno.test("a draining server says tcpy.bye, so the client knows unanswered calls never ran", async () => {
  // A short linger: after the bye, the server need not wait long for this client to hang up.
  await using t = await startFixtures({ threads: 0, linger: 50 });
  const { server } = t;
  const raw = await RawClient.connect(t.port);
  try {
    await raw.write('{"jsonrpc":"2.0","id":1,"method":"sleep","params":{"ms":100}}\n');
    await waitFor(() => server.inFlight === 1, { what: "the sleep call to be in flight" });
    const closing = server.close();
    assert.equal((await raw.read() as { id: number }).id, 1);
    assert.deepEqual(await raw.read(), { jsonrpc: "2.0", method: "tcpy.bye" });
    assert.equal(await raw.read(), undefined);
    await closing;
  } finally {
    raw.close();
  }
});

Deno.test("TCPServer answers a misspelt command with -32601 and the command it probably meant", async () => {
  await using t = await startFixtures({ threads: 0 });
  const raw = await RawClient.connect(t.port);
  try {
    await raw.write('{"jsonrpc":"2.0","id":1,"method":"ad","params":{}}\n');
    assert.deepEqual(await raw.read(), {
      jsonrpc: "2.0",
      id: 1,
      error: { code: -32601, message: 'Unknown command: ad (did you mean "add"?)' },
    });
    await raw.write('{"jsonrpc":"2.0","id":2,"method":"zzzzzz","params":{}}\n');
    assert.deepEqual(await raw.read(), {
      jsonrpc: "2.0",
      id: 2,
      error: { code: -32601, message: "Unknown command: zzzzzz" },
    });
  } finally {
    raw.close();
  }
});

Deno.test("TCPServer names the address when the port is taken", async () => {
  await using first = await startFixtures({ threads: 0 });
  const second = new TCPServer({ host: "127.0.0.1", port: first.port, threads: 0, onListen() {} });
  await assert.rejects(
    second.listen(),
    new RegExp(`Cannot listen on 127\\.0\\.0\\.1:${first.port}: the address is already in use`),
  );
  await second.close();
});

Deno.test("TCPServer answers a line of 100,000 nested arrays with -32600 and serves the next line", async () => {
  await using server = await startFixtures({ threads: 0 });
  const raw = await RawClient.connect(server.port);
  try {
    const deep = "[".repeat(100_000) + "]".repeat(100_000);
    await raw.write(`${deep}\n{"jsonrpc":"2.0","id":2,"method":"add","params":{"x":1,"y":2}}\n`);
    // A batch of one element that is no request: one -32600 in an array.
    const first = await raw.read() as { id: null; error: { code: number } }[];
    assert.equal(first.length, 1);
    assert.equal(first[0].error.code, -32600);
    assert.deepEqual(await raw.read(), {
      jsonrpc: "2.0",
      id: 2,
      result: { success: true, solution: 3 },
    });
  } finally {
    raw.close();
  }
});

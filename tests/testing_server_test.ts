/**
 * The `./testing` entry point against real servers: startTestServer, and
 * testHandler giving the same answers a real server gives TCPClient.
 */
import assert from "node:assert/strict";
import { AuthenticationError, ConnectionClosedError, TCPHandler, TcpyError } from "../mod.ts";
import { startTestServer, testHandler } from "../testing.ts";
import { commands } from "./fixtures/handlers.ts";

const FIXTURES = new URL("./fixtures/handlers.ts", import.meta.url);

/** Found by the workers in this very module (the default `module` under `deno test`). */
export class Here extends TCPHandler {
  execute() {
    return { thread: (globalThis as { name?: string }).name || "main" };
  }
}

/**
 * A newcomer's session store: a module-level Map. Each worker has its own
 * copy, so a session made in one worker is unknown in the others.
 */
const sessions = new Map<string, string>();

function thread(): string {
  return (globalThis as { name?: string }).name || "main";
}

export class Login extends TCPHandler<{ user: string }> {
  execute() {
    sessions.set("t1", this.params.user);
    return { token: "t1", thread: thread() };
  }
}

export class WhoAmI extends TCPHandler<{ token: string }> {
  execute() {
    return { user: sessions.get(this.params.token) ?? null, thread: thread() };
  }
}

/** Not exported, and mapped by no top-level server: a worker cannot find it. */
class Hidden extends TCPHandler {
  execute() {
    return null;
  }
}

/** What a call ended with, comparable across the two paths. */
function settled(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    (value) => ({ value }),
    (error) =>
      error instanceof TcpyError
        ? { name: error.name, code: error.code, message: error.message, data: error.data }
        : { thrown: String(error) },
  );
}

const CASES: [keyof typeof commands, Record<string, unknown>][] = [
  ["add", { x: 1, y: 2 }],
  ["echo", { date: "2024-01-01", list: [1, null, { a: "b" }], nothing: null }],
  ["refuse", { reason: "no" }],
  ["refuse", { reason: "no", code: 42 }],
  ["refuse", { code: -32601 }],
  ["boom", {}],
  ["reject", {}],
  ["strict", { n: "x" }],
  ["strict", { n: 3 }],
  ["notJson", {}],
];

for (const threads of [0, 1]) {
  Deno.test(`testHandler answers as a real server (threads: ${threads}) answers TCPClient`, async () => {
    await using t = await startTestServer({ commands, threads, module: FIXTURES });
    const client = t.client();
    for (const [command, params] of CASES) {
      const real = await settled(client.execute(command, params));
      const local = await settled(testHandler(commands[command], params).then((r) => r.result));
      assert.deepEqual(local, real, `${command}(${JSON.stringify(params)})`);
    }
  });
}

Deno.test("testHandler's scripted conversation matches a real conversation", async () => {
  await using t = await startTestServer({ commands, threads: 0 });
  const call = t.client().call("sum");
  const sent: unknown[] = [];
  for (const value of [4, 5]) {
    await call.send(value);
    sent.push(await call.recv());
  }
  await call.send("end");
  const run = await testHandler(commands.sum, {}, { conversation: [4, 5, "end"] });
  assert.deepEqual(run, { result: await call.result, sent, unread: [], warnings: [] });
});

Deno.test("startTestServer listens on 127.0.0.1 on a free port, without logging", async () => {
  const logged: unknown[][] = [];
  const log = console.log;
  console.log = (...args: unknown[]) => logged.push(args);
  try {
    await using t = await startTestServer({ commands, threads: 0 });
    assert.equal(t.hostname, "127.0.0.1");
    assert.ok(t.port > 0);
    assert.equal(t.server.port, t.port);
    assert.equal(t.server.listening, true);
    assert.deepEqual(await t.client().execute("add", { x: 2, y: 3 }), {
      success: true,
      solution: 5,
    });
  } finally {
    console.log = log;
  }
  assert.deepEqual(logged, []);
});

Deno.test("startTestServer disconnects its clients, then closes the server, on dispose", async () => {
  const t = await startTestServer({ commands, threads: 0 });
  const a = t.client();
  const b = t.client({ timeout: 5_000 });
  await Promise.all([a.execute("add", { x: 1, y: 1 }), b.execute("add", { x: 1, y: 1 })]);
  const waiting = b.call("greet");
  assert.deepEqual(await waiting.recv(), { question: "name?" });
  assert.equal(a.connected && b.connected, true);

  await t[Symbol.asyncDispose]();
  assert.equal(a.connected || b.connected, false);
  assert.equal(t.server.listening, false);
  await assert.rejects(waiting.result, ConnectionClosedError);
  await t.close(); // a second close is a no-op
  assert.throws(() => t.client(), /the test server is closed/);
  await assert.rejects(Deno.connect({ hostname: "127.0.0.1", port: t.port }));
});

Deno.test("startTestServer runs handlers in workers that load the test module by default", async () => {
  await using t = await startTestServer({ commands: { here: Here }, threads: 1 });
  assert.deepEqual(await t.client().execute("here"), { thread: "tcpy-worker-0" });
});

Deno.test("startTestServer rejects when the workers cannot find a handler class", async () => {
  await assert.rejects(
    startTestServer({ commands: { hidden: Hidden }, threads: 1 }),
    /Cannot find handler classes for hidden \(Hidden\)/,
  );
});

Deno.test("startTestServer checks the server's options as TCPServer does", async () => {
  await assert.rejects(startTestServer({ threads: -1 }), RangeError);
  await assert.rejects(
    startTestServer({ commands: { add: (() => {}) as unknown as typeof Here } }),
    TypeError,
  );
});

Deno.test("startTestServer's clients use the server's secret", async () => {
  await using t = await startTestServer({ commands, threads: 0, secret: "s3cret" });
  assert.deepEqual(await t.client().execute("add", { x: 1, y: 1 }), { success: true, solution: 2 });
  await assert.rejects(
    t.client({ secret: "wrong" }).execute("add", { x: 1, y: 1 }),
    AuthenticationError,
  );
});

Deno.test("startTestServer runs handlers in 2 workers unless told otherwise", async () => {
  await using t = await startTestServer({ commands: { here: Here } });
  assert.equal(t.server.threads, 2);
  await using inline = await startTestServer({ commands: { here: Here }, threads: 0 });
  assert.equal(inline.server.threads, 0);
});

// Needs the pool to spread consecutive calls over idle workers (round-robin
// among equally loaded workers): until then both calls run in worker 0 and
// the session is found, which is the bug this test is about.
Deno.test("startTestServer shows module-level state is per worker: a session stored in one call is gone in the next", async () => {
  await using t = await startTestServer({ commands: { login: Login, whoami: WhoAmI } });
  await using client = t.client();
  const login = await client.execute("login", { user: "ada" });
  const whoami = await client.execute("whoami", { token: login.token });
  assert.notEqual(whoami.thread, login.thread, "the two calls ran in the same worker");
  // As on a production server with several threads: the session is not there.
  assert.equal(whoami.user, null);
});

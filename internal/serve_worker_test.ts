/**
 * The worker's side without a thread: `serveWorker` on a fake scope. This
 * file is also the handler module the fake worker imports (as a pool
 * worker imports the server's module).
 */
import assert from "node:assert/strict";
import { TCPHandler } from "../handler.ts";
import type { CallLimits } from "./executor.ts";
import { serveWorker } from "./serve_worker.ts";
import type { FromWorker, InitMessage, ToWorker, WorkerScope } from "./worker_messages.ts";

/** What `Deno` looks like to the worker under test; its handlers exit through it. */
let deno: { exit(code?: number): never };

/** Adds x and y. */
export class Add extends TCPHandler<{ x: number; y: number }> {
  execute() {
    return { sum: this.params.x + this.params.y };
  }
}

/** Ends the worker's process, as a handler calling Deno.exit() would. */
export class Quit extends TCPHandler {
  execute() {
    deno.exit(3);
    return null;
  }
}

/** Sends `size` characters in one message, then says it was sent. */
export class Blurt extends TCPHandler<{ size: number }> {
  async execute() {
    await this.send("x".repeat(this.params.size));
    return "sent";
  }
}

/** Waits for one message from its client. */
export class Listen extends TCPHandler {
  async execute() {
    try {
      return await this.recv();
    } catch (error) {
      return `recv: ${(error as Error).message}`;
    }
  }
}

const COMMANDS = { add: "Add", quit: "Quit", blurt: "Blurt", listen: "Listen" };
const LIMITS: CallLimits = { unread: { messages: 1, bytes: 1_000 }, maxSendBytes: Infinity };

/** Serves a fake scope, sends init, and waits for the worker's first answer. */
async function start(module = import.meta.url) {
  const batches: FromWorker[][] = [];
  const exits: (number | undefined)[] = [];
  let closed = 0;
  const scope: WorkerScope = {
    onmessage: null,
    postMessage: (batch) => batches.push(batch),
    close: () => closed++,
  };
  deno = {
    exit: (code) => {
      exits.push(code);
      return undefined as never;
    },
  };
  serveWorker(scope, deno);
  const post = (data: InitMessage | ToWorker[]) =>
    scope.onmessage!(new MessageEvent("message", { data }));
  const run = (job: number, command: string, params: unknown = {}): ToWorker => ({
    type: "run",
    job,
    command,
    params,
    conversational: true,
  });
  const messages = () => batches.flat();
  post({ type: "init", module, commands: COMMANDS, limits: LIMITS });
  await until(() => batches.length > 0);
  return { scope, batches, messages, exits, closed: () => closed, post, run };
}

/** Waits until `done()` holds (up to 2 s). */
async function until(done: () => boolean): Promise<void> {
  const deadline = Date.now() + 2_000;
  while (!done()) {
    if (Date.now() > deadline) throw new Error("timed out waiting");
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
}

/** The JSON result of a `done` message. */
function result(message: FromWorker | undefined): unknown {
  assert.equal(message?.type, "done");
  const { outcome } = message as Extract<FromWorker, { type: "done" }>;
  assert.ok("json" in outcome, JSON.stringify(outcome));
  return JSON.parse(outcome.json);
}

Deno.test("serveWorker loads the handlers, says ready, and answers a batch of calls in one batch", async () => {
  const w = await start();
  assert.deepEqual(w.batches, [[{ type: "ready" }]]);
  w.post([w.run(1, "add", { x: 1, y: 2 }), w.run(2, "add", { x: 3, y: 4 })]);
  await until(() => w.batches.length > 1);
  assert.equal(w.batches.length, 2);
  assert.deepEqual(w.batches[1].map(result), [{ sum: 3 }, { sum: 7 }]);
  const cost = (w.batches[1][0] as { cost: number }).cost;
  assert.ok(cost >= 0, "a synchronous handler reports what it cost");
});

Deno.test("serveWorker says failed when it cannot find the handler classes", async () => {
  const w = await start("data:text/javascript,export const nothing = 1;");
  assert.equal(w.batches[0][0].type, "failed");
  assert.match(
    (w.batches[0][0] as { message: string }).message,
    /^Cannot find handler classes for add \(Add\), quit \(Quit\)/,
  );
});

Deno.test("serveWorker runs calls that arrive before the handlers loaded once they have", async () => {
  const batches: FromWorker[][] = [];
  const scope: WorkerScope = { onmessage: null, postMessage: (b) => batches.push(b), close() {} };
  serveWorker(scope, { exit: () => undefined as never });
  const post = (data: InitMessage | ToWorker[]) =>
    scope.onmessage!(new MessageEvent("message", { data }));
  post({ type: "init", module: import.meta.url, commands: COMMANDS, limits: LIMITS });
  post([{ type: "ping", ping: 7 }]);
  post([{ type: "run", job: 1, command: "add", params: { x: 2, y: 2 }, conversational: false }]);
  await until(() => batches.flat().length >= 3);
  const messages = batches.flat();
  assert.deepEqual(messages.slice(0, 2), [{ type: "ready" }, { type: "pong", ping: 7 }]);
  assert.deepEqual(result(messages[2]), { sum: 4 });
});

Deno.test("serveWorker tells the pool which call ended the worker, before it exits", async () => {
  const w = await start();
  w.post([w.run(5, "quit")]);
  // Said at once, not a tick later: the process may be gone by then.
  assert.deepEqual(w.batches.at(-1), [{ type: "exit", job: 5 }]);
  assert.deepEqual(w.exits, [3]);
  // Outside any call (the fake exit returned, so the handler went on and finished).
  w.scope.close();
  assert.deepEqual(w.batches.at(-1)!.at(-1), { type: "exit", job: undefined });
  assert.equal(w.closed(), 1);
});

Deno.test("serveWorker holds a handler's send() past the send window until the pool acknowledges", async () => {
  const w = await start();
  w.post([w.run(1, "blurt", { size: 100 }), w.run(2, "blurt", { size: 300_000 })]);
  await until(() => w.messages().filter((m) => m.type === "done").length === 1);
  const sends = w.messages().filter((m) => m.type === "send");
  assert.deepEqual(sends.map((m) => m.job), [1, 2]);
  assert.deepEqual(result(w.messages().find((m) => m.type === "done")), "sent");
  // Job 2 is past the window: it waits for the ack (a task later, all microtasks have run).
  await new Promise((resolve) => setTimeout(resolve, 0));
  assert.equal(w.messages().filter((m) => m.type === "done").length, 1);
  w.post([{ type: "sent", job: 2, bytes: 300_002 }]);
  await until(() => w.messages().filter((m) => m.type === "done").length === 2);
});

Deno.test("serveWorker hands client data to a call, and ends one whose client overflows its inbox", async () => {
  const w = await start();
  w.post([w.run(1, "listen"), { type: "msg", job: 1, data: "hello", bytes: 7 }]);
  await until(() => w.messages().some((m) => m.type === "done"));
  assert.equal(result(w.messages().at(-1)), "hello");
  // The first message goes to the waiting recv(), one more may wait unread,
  // a third is one too many: the pool is told.
  w.post([w.run(2, "listen")]);
  w.post([1, 2, 3].map((data): ToWorker => ({ type: "msg", job: 2, data, bytes: 1 })));
  await until(() => w.messages().filter((m) => m.type === "done").length === 2);
  assert.deepEqual(w.messages().filter((m) => m.type === "overflow"), [
    { type: "overflow", job: 2, message: w.messages().find((m) => m.type === "overflow")!.message },
  ]);
  assert.match(
    (w.messages().find((m) => m.type === "overflow") as { message: string }).message,
    /unread/,
  );
});

Deno.test("serveWorker cancels a call's recv() when its client is gone", async () => {
  const w = await start();
  w.post([w.run(1, "listen")]);
  w.post([{ type: "cancel", job: 1, message: "the client went away" }]);
  await until(() => w.messages().some((m) => m.type === "done"));
  assert.equal(result(w.messages().at(-1)), "recv: the client went away");
});

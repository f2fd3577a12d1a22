/**
 * The pool without threads: each worker is a {@linkcode FakeWorker} in
 * memory that plays the worker's side, and time is a {@linkcode ManualClock}.
 */
import assert from "node:assert/strict";
import { ErrorCode } from "../errors.ts";
import { STICKY_US } from "./balancer.ts";
import { COOL_DOWN_MS, STRIKES } from "./crash_breaker.ts";
import type { Invocation, Task } from "./executor.ts";
import { type PoolClock, type PoolOptions, WorkerPool } from "./pool.ts";
import type { Outcome } from "./run_handler.ts";
import type { FromWorker, InitMessage, ToWorker, WorkerEndpoint } from "./worker_messages.ts";

/** A worker in memory: answers init with ready (unless told otherwise) and pings with pongs. */
class FakeWorker implements WorkerEndpoint {
  onmessage: ((event: MessageEvent<FromWorker[]>) => void) | null = null;
  onerror: ((event: ErrorEvent) => void) | null = null;
  onmessageerror: ((event: MessageEvent) => void) | null = null;
  init: InitMessage | undefined;
  /** Every batch the pool posted after init. */
  readonly batches: ToWorker[][] = [];
  terminated = false;
  /** What it answers to init; `undefined`: nothing. */
  onInit: FromWorker | undefined = { type: "ready" };
  /** Whether it answers pings (a worker stuck in a CPU loop does not). */
  answersPings = true;
  /** Throws on a batch holding this (as a structured-clone failure would). */
  cannotClone: unknown;
  /**
   * Reports every call's synchronous part over at once (as for async
   * handlers), so the pool's window never fills; false: calls hold the
   * worker until they finish, as synchronous handlers do.
   */
  eager = true;

  constructor(readonly name: string) {}

  postMessage(message: InitMessage | ToWorker[]): void {
    if (!Array.isArray(message)) {
      this.init = message;
      if (this.onInit) this.reply(this.onInit);
      return;
    }
    if (message.some((m) => m.type === "run" && m.params === this.cannotClone)) {
      throw new DOMException("could not be cloned", "DataCloneError");
    }
    this.batches.push(message);
    for (const m of message) {
      if (m.type === "ping" && this.answersPings) this.reply({ type: "pong", ping: m.ping });
      if (m.type === "run" && this.eager) this.reply({ type: "began", job: m.job, cost: 1 });
    }
  }

  terminate(): void {
    this.terminated = true;
  }

  /** The calls it was given, in order. */
  get runs(): Extract<ToWorker, { type: "run" }>[] {
    return this.batches.flat().flatMap((m) => m.type === "run" ? [m] : []);
  }

  /** Answers the pool, a turn later as a real worker would. */
  reply(...batch: FromWorker[]): void {
    queueMicrotask(() => this.onmessage?.(new MessageEvent("message", { data: batch })));
  }

  /** Ends `job` with `result`. */
  finish(job: number, result: unknown = null): void {
    this.reply({ type: "done", job, outcome: { json: JSON.stringify(result) }, cost: 1 });
  }

  /** Throws an uncaught error; returns whether the pool kept it from ending the process. */
  crash(message = "boom"): boolean {
    const event = new ErrorEvent("error", { message, cancelable: true });
    this.onerror?.(event);
    return event.defaultPrevented;
  }
}

/** Time that moves only when told; records the delays asked for. */
class ManualClock implements PoolClock {
  time = 1_000_000;
  #timers: { at: number; fn: () => void; cancelled: boolean }[] = [];

  now(): number {
    return this.time;
  }

  after(ms: number, fn: () => void): () => void {
    const timer = { at: this.time + ms, fn, cancelled: false };
    this.#timers.push(timer);
    return () => timer.cancelled = true;
  }

  /** Moves time on by `ms`, running the timers that fall due on the way, in order. */
  advance(ms: number): void {
    const end = this.time + ms;
    for (;;) {
      const due = this.#timers.filter((t) => !t.cancelled && t.at <= end);
      if (due.length === 0) break;
      const next = due.reduce((a, b) => b.at < a.at ? b : a);
      next.cancelled = true;
      this.time = next.at;
      next.fn();
    }
    this.time = end;
  }
}

/** A call that records what the pool did with it. */
class FakeCall implements Invocation {
  readonly handler = class {} as never;
  readonly sent: string[] = [];
  outcome: Outcome | undefined;
  finishes = 0;
  /** What `send` returns (a promise: the connection has no room). */
  room: Promise<void> | undefined;

  constructor(
    readonly command = "add",
    readonly params: unknown = {},
    readonly conversational = false,
  ) {}

  send(json: string): Promise<void> | undefined {
    this.sent.push(json);
    return this.room;
  }

  finish(outcome: Outcome): void {
    this.outcome = outcome;
    this.finishes++;
  }

  get code(): number | undefined {
    return this.outcome && "error" in this.outcome ? this.outcome.error.code : undefined;
  }

  /** The error message it ended with ("" if none). */
  get message(): string {
    return this.outcome && "error" in this.outcome ? this.outcome.error.message : "";
  }
}

/** Lets queued microtasks (the pool's and the fakes' batches) run. */
function settle(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

/**
 * Starts a pool of `size` fake workers on a manual clock; `setup` may change
 * each fake (the `index`th spawned) before the pool talks to it.
 */
async function startPool(
  size: number,
  options: Partial<PoolOptions> = {},
  setup: (worker: FakeWorker, index: number) => void = () => {},
) {
  const workers: FakeWorker[] = [];
  const clock = new ManualClock();
  const logged: string[] = [];
  const pool = new WorkerPool({
    size,
    module: "file:///app.ts",
    commands: new Map(),
    clock,
    log: (line) => logged.push(line),
    spawn: (name) => {
      const worker = new FakeWorker(name);
      setup(worker, workers.length);
      workers.push(worker);
      return worker;
    },
    ...options,
  });
  await pool.start();
  /** Runs a call and waits for the pool to post it; returns it with its task. */
  const run = async (call = new FakeCall()): Promise<{ call: FakeCall; task: Task }> => {
    const task = pool.run(call);
    await settle();
    return { call, task };
  };
  /** The worker `call` went to (found by its params). */
  const workerOf = (call: FakeCall) =>
    workers.find((w) => w.runs.some((r) => r.params === call.params))!;
  return { pool, workers, clock, run, workerOf, logged };
}

/** Advances `clock` a ms at a time until `workers` grows; returns the ms it took. */
async function respawnDelay(clock: ManualClock, workers: FakeWorker[]): Promise<number> {
  const before = workers.length;
  for (let ms = 0; ms <= 10_000; ms++) {
    if (ms > 0) clock.advance(1);
    else clock.advance(0);
    if (workers.length > before) {
      await settle(); // the replacement says ready
      return ms;
    }
  }
  throw new Error("no replacement within 10 s");
}

Deno.test("WorkerPool starts size workers, names them, and sends each the command map", async () => {
  const { pool, workers } = await startPool(3);
  assert.deepEqual(workers.map((w) => w.name), ["tcpy-worker-0", "tcpy-worker-1", "tcpy-worker-2"]);
  assert.deepEqual(workers[0].init?.module, "file:///app.ts");
  await pool.close();
  assert.ok(workers.every((w) => w.terminated));
});

Deno.test("WorkerPool sends the calls of one tick to one worker in one postMessage", async () => {
  const { pool, workers } = await startPool(2);
  // Once "add" is known to be cheap (the fake reports 1 µs); unmeasured calls spread out.
  const warm = new FakeCall("add", "warm");
  pool.run(warm);
  await settle();
  for (const w of workers) for (const run of w.runs) w.finish(run.job);
  await settle();
  for (const w of workers) w.batches.length = 0;
  const calls = Array.from({ length: 5 }, (_, i) => new FakeCall("add", { i }));
  for (const call of calls) pool.run(call);
  assert.ok(workers.every((w) => w.batches.length === 0), "nothing is posted within the tick");
  await settle();
  const [used, unused] = workers[0].batches.length > 0 ? workers : workers.toReversed();
  assert.equal(used.batches.length, 1);
  assert.deepEqual(used.runs.map((r) => r.params), calls.map((c) => c.params));
  assert.equal(unused.batches.length, 0);
  assert.equal(pool.inFlight, 5);
  for (const run of used.runs) used.finish(run.job, run.job);
  await settle();
  assert.deepEqual(calls.map((c) => c.outcome), used.runs.map((r) => ({ json: `${r.job}` })));
  assert.equal(pool.inFlight, 0);
  await pool.close();
});

const synchronous = (worker: FakeWorker) => worker.eager = false;

Deno.test("WorkerPool spreads a burst of unmeasured calls one per worker; the rest wait for room", async () => {
  const { pool, workers } = await startPool(4, {}, synchronous);
  const calls = Array.from({ length: 8 }, () => new FakeCall("cpu"));
  for (const call of calls) pool.run(call);
  await settle();
  // None of the four idle workers holds a second call while another is idle.
  assert.deepEqual(workers.map((w) => w.runs.length), [1, 1, 1, 1]);
  assert.equal(pool.waiting, 4);
  assert.equal(pool.inFlight, 8);
  // Each worker that finishes gets the next waiting call, in turn.
  workers[2].finish(workers[2].runs[0].job);
  await settle();
  assert.deepEqual(workers.map((w) => w.runs.length), [1, 1, 2, 1]);
  assert.equal(pool.waiting, 3);
  for (const w of workers) w.finish(w.runs.at(-1)!.job);
  await settle();
  await settle();
  assert.equal(pool.waiting, 0);
  for (const w of workers) for (const run of w.runs) w.finish(run.job);
  await settle();
  assert.equal(calls.filter((c) => c.outcome && "json" in c.outcome).length, 8);
  assert.equal(pool.inFlight, 0);
  await pool.close();
});

Deno.test("WorkerPool sends a tick's cheap measured calls to one worker in one batch", async () => {
  const { pool, workers } = await startPool(2, {}, synchronous);
  // Teach the pool that "add" costs 1 µs (FakeWorker.finish reports 1).
  pool.run(new FakeCall());
  await settle();
  const first = workers.find((w) => w.runs.length === 1)!;
  first.finish(first.runs[0].job);
  await settle();
  const before = workers.map((w) => w.batches.length);
  for (let i = 0; i < 20; i++) pool.run(new FakeCall());
  await settle();
  const after = workers.map((w, i) => w.batches.length - before[i]);
  assert.deepEqual(after.toSorted(), [0, 1], `batches per worker: ${after}`);
  assert.ok(20 <= STICKY_US, "the test assumes 20 calls of 1 µs fit the sticky window");
  await pool.close();
});

Deno.test("WorkerPool serves waiting calls round-robin by connection, not first come first served", async () => {
  const { pool, workers } = await startPool(1, {}, synchronous);
  const flood = Array.from(
    { length: 50 },
    (_, i) => Object.assign(new FakeCall("cpu", i), { owner: "flood" }),
  );
  for (const call of flood) pool.run(call);
  const mine = Object.assign(new FakeCall("cpu", "mine"), { owner: "bystander" });
  pool.run(mine);
  await settle();
  const [worker] = workers;
  // The flood's first call runs; then one more of the flood's (its turn), then mine.
  for (let i = 0; i < 3; i++) {
    worker.finish(worker.runs.at(-1)!.job);
    await settle();
  }
  assert.ok(mine.outcome, `the bystander's call still waits behind ${pool.waiting} calls`);
  assert.equal(pool.waiting, 47);
  await pool.close();
});

Deno.test("WorkerPool drops a waiting call whose client is gone: it never reaches a worker", async () => {
  const { pool, workers } = await startPool(1, {}, synchronous);
  pool.run(new FakeCall("cpu"));
  await settle();
  const gone = new FakeCall("cpu", "gone", true);
  const task = pool.run(gone);
  assert.equal(pool.waiting, 1);
  task.deliver("hello", 7); // held while it waits
  task.cancel(new Error("client gone"), true);
  assert.equal(gone.code, ErrorCode.CONNECTION_CLOSED);
  assert.equal(pool.inFlight, 1);
  workers[0].finish(workers[0].runs[0].job);
  await settle();
  assert.equal(workers[0].runs.length, 1, "the dropped call was run");
  assert.equal(pool.waiting, 0);
  await pool.close();
});

Deno.test("WorkerPool still runs a waiting call whose client only stopped sending, and tells it", async () => {
  const { pool, workers } = await startPool(1, {}, synchronous);
  pool.run(new FakeCall("cpu"));
  await settle();
  const halfClosed = new FakeCall("talk", "half", true);
  pool.run(halfClosed).cancel(new Error("client gone")); // end of input: no drop
  assert.equal(halfClosed.outcome, undefined);
  workers[0].finish(workers[0].runs[0].job);
  await settle();
  const last = workers[0].batches.at(-1)!;
  assert.deepEqual(last.map((m) => m.type), ["run", "cancel"]);
  await pool.close();
});

Deno.test("WorkerPool passes messages that arrived while a call waited, and bounds them", async () => {
  const limits = { unread: { messages: 2, bytes: 100 }, maxSendBytes: 1000 };
  const { pool, workers } = await startPool(1, { limits }, synchronous);
  pool.run(new FakeCall("cpu"));
  await settle();
  const talk = new FakeCall("talk", {}, true);
  const task = pool.run(talk);
  task.deliver("a", 3);
  task.deliver("b", 3);
  workers[0].finish(workers[0].runs[0].job);
  await settle();
  const sent = workers[0].batches.flat().filter((m) => m.type === "msg");
  assert.deepEqual(sent.map((m) => m.type === "msg" && m.data), ["a", "b"]);
  // A third early message is over the limit: the call ends without running.
  pool.run(new FakeCall("cpu"));
  const flooded = new FakeCall("talk", {}, true);
  const flood = pool.run(flooded);
  for (let i = 0; i < 3; i++) flood.deliver("x", 3);
  assert.equal(flooded.code, ErrorCode.SERVER_BUSY);
  await pool.close();
});

Deno.test("WorkerPool gives calls made one at a time to equally loaded workers in turn", async () => {
  const { pool, run, workerOf } = await startPool(3);
  const names: string[] = [];
  for (let i = 0; i < 6; i++) {
    const { call } = await run(new FakeCall("add", { i }));
    const worker = workerOf(call);
    names.push(worker.name.at(-1)!);
    worker.finish(worker.runs.at(-1)!.job);
    await settle();
    assert.ok(call.outcome);
  }
  assert.deepEqual(names, ["0", "1", "2", "0", "1", "2"]);
  await pool.close();
});

Deno.test("WorkerPool gives a new call to the least loaded worker, wherever the turn is", async () => {
  const { pool, run, workerOf } = await startPool(3);
  const calls = [];
  for (let i = 0; i < 3; i++) calls.push((await run(new FakeCall("add", i))).call);
  assert.deepEqual(calls.map((c) => workerOf(c).name.at(-1)), ["0", "1", "2"]);
  const idle = workerOf(calls[2]);
  idle.finish(idle.runs[0].job);
  await settle();
  // It is worker 0's turn, but worker 2 is the only idle one.
  const { call } = await run(new FakeCall("add", 3));
  assert.equal(workerOf(call), idle);
  await pool.close();
});

Deno.test("WorkerPool fails only a crashed worker's calls with -32004 and starts a replacement", async () => {
  const { pool, workers, clock, run, workerOf, logged } = await startPool(2);
  const a = await run(new FakeCall("add", "a"));
  const b = await run(new FakeCall("add", "b"));
  const crashed = workerOf(a.call);
  assert.notEqual(crashed, workerOf(b.call));
  assert.equal(crashed.crash("boom"), true, "the pool prevents the default (ending the process)");
  assert.deepEqual(a.call.outcome, {
    error: { code: ErrorCode.WORKER_CRASHED, message: "Worker crashed: boom" },
  });
  assert.equal(b.call.outcome, undefined);
  assert.equal(crashed.terminated, true);
  assert.deepEqual(logged, [
    `tcpy: worker ${
      workers.indexOf(crashed)
    } crashed (boom) running "add"; 1 call failed with -32004; a replacement starts`,
  ]);
  assert.equal(pool.inFlight, 1);
  // It ran only "add", so "add" is blamed (the breaker counts it) and the
  // replacement starts at once: backoff is for crashes nobody is blamed for.
  assert.equal(await respawnDelay(clock, workers), 0);
  assert.equal(workers[2].name, crashed.name);
  workerOf(b.call).finish(workerOf(b.call).runs[0].job, "b");
  await settle();
  assert.deepEqual(b.call.outcome, { json: '"b"' });
  // The replacement takes calls.
  const c = await run(new FakeCall("add", "c"));
  assert.equal(workerOf(c.call), workers[2]);
  await pool.close();
});

Deno.test("WorkerPool backs off longer while replacements keep crashing quickly, not after a long run", async () => {
  const { pool, workers, clock } = await startPool(1);
  const delays: number[] = [];
  for (let i = 0; i < 5; i++) {
    workers.at(-1)!.crash();
    delays.push(await respawnDelay(clock, workers));
  }
  assert.deepEqual(delays, [100, 200, 400, 800, 1600]);
  // A worker that ran a while is replaced at once, and the backoff starts over.
  clock.advance(2_000);
  workers.at(-1)!.crash();
  assert.equal(await respawnDelay(clock, workers), 0);
  workers.at(-1)!.crash();
  assert.equal(await respawnDelay(clock, workers), 100);
  await pool.close();
});

Deno.test("WorkerPool backs off up to 5 s while replacements fail to load", async () => {
  const { pool, workers, clock } = await startPool(1, {}, (worker, index) => {
    if (index > 0) worker.onInit = { type: "failed", message: "Module not found" };
  });
  workers[0].crash();
  const delays: number[] = [];
  for (let i = 0; i < 8; i++) delays.push(await respawnDelay(clock, workers));
  assert.deepEqual(delays, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
  await pool.close();
});

Deno.test("WorkerPool refuses a command for a while after it crashed STRIKES workers", async () => {
  const { pool, workers, clock, run } = await startPool(1);
  for (let i = 0; i < STRIKES; i++) {
    const { call } = await run(new FakeCall("boom"));
    // The worker says which call ended it (a handler called Deno.exit()).
    workers.at(-1)!.reply({ type: "exit", job: workers.at(-1)!.runs[0].job });
    await settle();
    assert.equal(call.code, ErrorCode.WORKER_CRASHED);
    assert.match(
      call.message,
      /^Worker crashed: the worker exited$/,
    );
    clock.advance(1_000);
    await settle();
  }
  // The third crash was 1 s ago.
  const refused = await run(new FakeCall("boom"));
  assert.equal(refused.call.code, ErrorCode.WORKER_CRASHED);
  assert.match(
    refused.call.message,
    /^Command "boom" is refused for 4 s: it crashed 3 workers within 10 s$/,
  );
  assert.equal(workers.at(-1)!.runs.length, 0, "a refused call never reaches a worker");
  const other = await run(new FakeCall("add"));
  assert.equal(other.call.outcome, undefined);
  assert.equal(workers.at(-1)!.runs.length, 1, "other commands still run");
  clock.advance(COOL_DOWN_MS);
  await run(new FakeCall("boom"));
  assert.equal(workers.at(-1)!.runs.length, 2, "taken again after the cool-down");
  await pool.close();
});

Deno.test("WorkerPool blames a crash on a command only when it is all the worker ran", async () => {
  const { pool, workers, clock, run } = await startPool(1);
  for (let i = 0; i < STRIKES; i++) {
    pool.run(new FakeCall("boom"));
    await run(new FakeCall("add"));
    workers.at(-1)!.crash();
    clock.advance(1_000);
    await settle();
  }
  const { call } = await run(new FakeCall("boom"));
  assert.equal(call.outcome, undefined, "not refused: no crash could be pinned on it");
  await pool.close();
});

Deno.test("WorkerPool writes off a worker that does not answer a ping after a call timed out", async () => {
  const { pool, workers, clock, run } = await startPool(1, { stuckAfter: 50 });
  const stuck = workers[0];
  stuck.answersPings = false;
  const slow = await run(new FakeCall("spin"));
  const queued = await run(new FakeCall("add"));
  slow.task.abandon(new Error("Handler timed out"));
  await settle();
  assert.equal(pool.inFlight, 1);
  const sent = stuck.batches.at(-1)!;
  assert.deepEqual(sent.map((m) => m.type), ["cancel", "ping"]);
  clock.advance(49);
  assert.equal(stuck.terminated, false);
  clock.advance(1);
  assert.equal(stuck.terminated, true);
  assert.equal(queued.call.code, ErrorCode.WORKER_CRASHED);
  assert.match(
    queued.call.message,
    /^Worker crashed: written off: a "spin" call ran past the handler timeout and the worker did not answer a ping within 50 ms$/,
  );
  assert.equal(slow.call.outcome, undefined, "its caller was answered already");
  // "spin" is blamed, not the queued "add": the replacement starts at once.
  await settle();
  assert.equal(workers.length, 2);
  await pool.close();
});

Deno.test("WorkerPool keeps a worker that answers the ping, counting the abandoned call as load", async () => {
  const { pool, clock, run, workerOf } = await startPool(2, { stuckAfter: 50 });
  const slow = await run(new FakeCall("spin", "slow"));
  const busy = workerOf(slow.call);
  slow.task.abandon(new Error("Handler timed out"));
  await settle();
  clock.advance(1_000);
  assert.equal(busy.terminated, false);
  // Still running there: new calls go to the other worker, whatever the rotation.
  for (let i = 0; i < 3; i++) {
    const { call } = await run(new FakeCall("add", i));
    assert.notEqual(workerOf(call), busy);
    workerOf(call).finish(workerOf(call).runs.at(-1)!.job);
    await settle();
  }
  // Its late answer is dropped, and the worker counts as idle again.
  busy.finish(busy.runs[0].job, "late");
  await settle();
  assert.equal(slow.call.outcome, undefined);
  const names = [];
  for (let i = 0; i < 2; i++) {
    const { call } = await run(new FakeCall("add", `again${i}`));
    names.push(workerOf(call).name);
    workerOf(call).finish(workerOf(call).runs.at(-1)!.job);
    await settle();
  }
  assert.ok(names.includes(busy.name));
  await pool.close();
});

Deno.test("WorkerPool ends a call whose client overflowed its inbox with -32001, and ignores its late result", async () => {
  const { pool, workers, run } = await startPool(1);
  const { call } = await run(new FakeCall("chat", {}, true));
  const job = workers[0].runs[0].job;
  workers[0].reply({ type: "overflow", job, message: "Too much unread data" });
  await settle();
  assert.deepEqual(call.outcome, {
    error: { code: ErrorCode.SERVER_BUSY, message: "Too much unread data" },
  });
  assert.equal(pool.inFlight, 0);
  workers[0].finish(job, "late");
  await settle();
  assert.equal(call.finishes, 1);
  await pool.close();
});

Deno.test("WorkerPool passes a handler's sent data on, and acknowledges it once the connection has room", async () => {
  const { pool, workers, run } = await startPool(1);
  const { call } = await run(new FakeCall("chat", {}, true));
  const job = workers[0].runs[0].job;
  workers[0].reply({ type: "send", job, json: '"hi"' });
  await settle();
  assert.deepEqual(call.sent, ['"hi"']);
  assert.deepEqual(workers[0].batches.at(-1), [{ type: "sent", job, bytes: 4 }]);
  // A connection without room: the ack waits until it has.
  const room = Promise.withResolvers<void>();
  call.room = room.promise;
  workers[0].reply({ type: "send", job, json: '"more"' });
  await settle();
  assert.deepEqual(call.sent, ['"hi"', '"more"']);
  assert.equal(workers[0].batches.length, 2, "no ack yet");
  room.resolve();
  await settle();
  assert.deepEqual(workers[0].batches.at(-1), [{ type: "sent", job, bytes: 6 }]);
  await pool.close();
});

Deno.test("WorkerPool passes client data and cancellation to a running call only", async () => {
  const { pool, workers, run } = await startPool(1);
  const { task } = await run(new FakeCall("chat", {}, true));
  const job = workers[0].runs[0].job;
  task.deliver({ n: 1 }, 7);
  task.cancel(new Error("client gone"));
  await settle();
  assert.deepEqual(workers[0].batches.at(-1), [
    { type: "msg", job, data: { n: 1 }, bytes: 7 },
    { type: "cancel", job, message: "client gone" },
  ]);
  workers[0].finish(job);
  await settle();
  task.deliver({ n: 2 }, 7);
  task.cancel(new Error("again"));
  await settle();
  assert.equal(workers[0].batches.length, 2, "nothing for a finished call");
  await pool.close();
});

Deno.test("WorkerPool fails only the call whose params cannot be cloned, with -32602", async () => {
  const { pool, workers } = await startPool(1);
  const bad = new FakeCall("add", { f: "not cloneable" });
  workers[0].cannotClone = bad.params;
  const good = [new FakeCall("add", 1), new FakeCall("add", 2)];
  pool.run(good[0]);
  pool.run(bad);
  pool.run(good[1]);
  for (let i = 0; i < 4; i++) await settle(); // one unmeasured call at a time
  assert.equal(bad.code, ErrorCode.INVALID_PARAMS);
  assert.match(
    bad.message,
    /^Invalid params: cannot pass them to a worker: could not be cloned$/,
  );
  assert.deepEqual(workers[0].runs.map((r) => r.params), [1, 2]);
  assert.equal(pool.inFlight, 2);
  await pool.close();
});

Deno.test("WorkerPool refuses calls while every worker is down, and queues them for one starting", async () => {
  const { pool, workers, clock, run } = await startPool(1, {}, (worker, index) => {
    if (index > 0) worker.onInit = undefined;
  });
  workers[0].crash();
  const refused = await run();
  assert.deepEqual(refused.call.outcome, {
    error: { code: ErrorCode.WORKER_CRASHED, message: "No worker is running: all are restarting" },
  });
  clock.advance(100);
  assert.equal(workers.length, 2, "the replacement is starting");
  await run(new FakeCall("add", "early"));
  await run(new FakeCall("add", "later"));
  assert.equal(workers[1].batches.length, 0, "nothing is sent before it is ready");
  workers[1].reply({ type: "ready" });
  await settle();
  await settle();
  assert.deepEqual(workers[1].runs.map((m) => m.params), ["early", "later"]);
  await pool.close();
});

Deno.test("WorkerPool.start rejects and stops every worker when one cannot load the handlers", async () => {
  const workers: FakeWorker[] = [];
  const clock = new ManualClock();
  const pool = new WorkerPool({
    size: 2,
    module: "file:///app.ts",
    commands: new Map(),
    clock,
    spawn: (name) => {
      const worker = new FakeWorker(name);
      if (workers.length === 1) worker.onInit = { type: "failed", message: "Module not found" };
      workers.push(worker);
      return worker;
    },
  });
  await assert.rejects(pool.start(), /^Error: Worker could not start: Module not found$/);
  assert.ok(workers.every((w) => w.terminated));
  clock.advance(10_000);
  assert.equal(workers.length, 2, "no replacement for a worker that failed start()");
});

Deno.test("WorkerPool.start rejects when a worker does not load within startTimeout", async () => {
  const clock = new ManualClock();
  const pool = new WorkerPool({
    size: 1,
    module: "file:///app.ts",
    commands: new Map(),
    startTimeout: 300,
    clock,
    spawn: (name) => Object.assign(new FakeWorker(name), { onInit: undefined }),
  });
  const started = pool.start();
  clock.advance(300);
  await assert.rejects(
    started,
    /^Error: Worker could not start: did not load file:\/\/\/app\.ts within 300 ms$/,
  );
});

Deno.test("WorkerPool.close fails running calls with -32007 and stops pending replacements", async () => {
  const { pool, workers, clock, run } = await startPool(2);
  const { call } = await run();
  workers[1].crash();
  await pool.close();
  assert.deepEqual(call.outcome, {
    error: {
      code: ErrorCode.SHUTTING_DOWN,
      message: "The server shut down before the call finished",
    },
  });
  clock.advance(10_000);
  assert.equal(workers.length, 2, "no replacement after close");
});

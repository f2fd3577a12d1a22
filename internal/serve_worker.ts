/**
 * The worker's side of `pool.ts`: imports the module that defines the
 * handlers (so users write no second file), rebuilds the command map, then
 * runs batches of calls and answers in batches. A function of the scope it
 * serves, so it runs without a thread in tests; `worker.ts` is the entry.
 *
 * @module
 */

import { ConnectionClosedError } from "../errors.ts";
import type { HandlerClass } from "../handler.ts";
import { Cancellation } from "./channel.ts";
import { callEnded, type CallLimits, refuseOversized, unreadOverflow } from "./executor.ts";
import { jsonSender } from "./json_text.ts";
import { Inbox } from "./inbox.ts";
import { importHandlers, resolveCommands } from "./resolve.ts";
import { type Outcome, runHandler } from "./run_handler.ts";
import type { FromWorker, InitMessage, ToWorker, WorkerScope } from "./worker_messages.ts";

/**
 * Sent bytes a call may have on their way to its connection before `send()`
 * waits for the connection to take them: backpressure across the thread hop.
 */
const SEND_WINDOW = 256 * 1024;

/** One running call, as its worker sees it. */
interface Job {
  readonly inbox: Inbox | undefined;
  readonly cancel: Cancellation;
  /** Sent bytes not yet taken by the connection. */
  unacked: number;
  /** `send()`s waiting for the window to open. */
  readonly waiting: (() => void)[];
}

/**
 * Serves the pool from `scope` (a worker's global scope): answers `init`
 * with `ready` or `failed`, then runs calls. It replaces `scope.close` and
 * `deno.exit` with versions that first tell the pool which call ended the
 * worker.
 *
 * @param deno Where `exit` lives: `Deno` in a worker.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { serveWorker } from "./serve_worker.ts";
 * import type { FromWorker, WorkerScope } from "./worker_messages.ts";
 *
 * const posted: FromWorker[][] = [];
 * const scope: WorkerScope = { onmessage: null, postMessage: (b) => posted.push(b), close() {} };
 * serveWorker(scope, { exit: () => undefined as never });
 * // Pings wait until the handlers are loaded: here the module cannot be.
 * scope.onmessage!(new MessageEvent("message", { data: [{ type: "ping", ping: 1 }] }));
 * scope.onmessage!(new MessageEvent("message", {
 *   data: { type: "init", module: "data:text/javascript,", commands: { add: "Add" }, limits: {
 *     unread: { messages: 1, bytes: 1 },
 *     maxSendBytes: 1,
 *   } },
 * }));
 * while (posted.length === 0) await new Promise((resolve) => setTimeout(resolve, 1));
 * assert.equal(posted[0][0].type, "failed");
 * ```
 */
export function serveWorker(scope: WorkerScope, deno: { exit(code?: number): never }): void {
  let commands: Map<string, HandlerClass> | undefined;
  let limits: CallLimits;
  const early: ToWorker[][] = [];
  const jobs = new Map<number, Job>();
  let outbox: FromWorker[] = [];
  let scheduled = false;
  /** The job whose handler is running synchronously right now, if any. */
  let current: number | undefined;

  function flush(): void {
    scheduled = false;
    const batch = outbox;
    outbox = [];
    scope.postMessage(batch);
  }

  function post(message: FromWorker): void {
    outbox.push(message);
    if (!scheduled) {
      scheduled = true;
      queueMicrotask(flush);
    }
  }

  // A handler that ends its own worker takes its calls with it: say so first,
  // so the pool fails them at once (and knows which command did it).
  const closeWorker = scope.close.bind(scope);
  scope.close = () => {
    outbox.push({ type: "exit", job: current });
    flush();
    closeWorker();
  };
  const exitProcess = deno.exit;
  deno.exit = (code?: number): never => {
    outbox.push({ type: "exit", job: current });
    flush();
    return exitProcess(code);
  };

  async function init(message: InitMessage): Promise<void> {
    try {
      limits = message.limits;
      const { mod, registry } = await importHandlers(message.module);
      commands = resolveCommands(mod, registry, message.commands);
      post({ type: "ready" });
      for (const batch of early.splice(0)) handle(batch);
    } catch (error) {
      post({ type: "failed", message: error instanceof Error ? error.message : String(error) });
    }
  }

  function done(id: number, outcome: Outcome, cost: number): void {
    const job = jobs.get(id);
    if (job) {
      jobs.delete(id);
      job.inbox?.close(callEnded());
      for (const wake of job.waiting.splice(0)) wake();
    }
    // A result the connection would refuse anyway is not copied to it.
    post({ type: "done", job: id, outcome: refuseOversized(outcome, limits.maxSendBytes), cost });
  }

  function stop(job: Job | undefined, reason: Error): void {
    if (!job) return;
    job.inbox?.close(reason);
    job.cancel.stop(reason);
  }

  function send(id: number, json: string): Promise<void> | undefined {
    const job = jobs.get(id);
    if (!job) return Promise.reject(callEnded());
    post({ type: "send", job: id, json });
    job.unacked += json.length;
    if (job.unacked <= SEND_WINDOW) return undefined;
    return new Promise((resolve) => job.waiting.push(resolve));
  }

  function run(id: number, command: string, params: unknown, conversational: boolean): void {
    const cls = commands!.get(command)!;
    const job: Job = {
      inbox: conversational ? new Inbox(limits.unread) : undefined,
      cancel: new Cancellation(),
      unacked: 0,
      waiting: [],
    };
    jobs.set(id, job);
    const channel = conversational
      ? {
        send: jsonSender((json) => send(id, json), limits.maxSendBytes),
        // After the call ended its inbox is closed: a late recv() fails at once.
        recv: (signal?: AbortSignal) => job.inbox!.recv(signal),
      }
      : undefined;
    current = id;
    const started = performance.now();
    let outcome: Outcome | Promise<Outcome>;
    try {
      outcome = runHandler(cls, params, channel, job.cancel);
    } finally {
      current = undefined;
    }
    // What it cost lets the pool size its windows and the server run cheap
    // commands where calls arrive. An async handler's synchronous slice is
    // reported at once ("began"): its worker has room for more calls.
    const cost = (performance.now() - started) * 1000;
    if (outcome instanceof Promise) {
      post({ type: "began", job: id, cost });
      outcome.then((o) => done(id, o, -1));
    } else done(id, outcome, cost);
  }

  function deliver(id: number, data: unknown, bytes: number): void {
    const job = jobs.get(id);
    if (!job?.inbox || job.inbox.push(data, bytes)) return;
    const error = unreadOverflow(limits.unread);
    post({ type: "overflow", job: id, message: error.message });
    stop(job, error);
  }

  function acknowledge(id: number, bytes: number): void {
    const job = jobs.get(id);
    if (!job) return;
    job.unacked -= bytes;
    if (job.unacked <= SEND_WINDOW) { for (const wake of job.waiting.splice(0)) wake(); }
  }

  function handle(batch: ToWorker[]): void {
    for (const message of batch) {
      switch (message.type) {
        case "run":
          run(message.job, message.command, message.params, message.conversational);
          break;
        case "msg":
          deliver(message.job, message.data, message.bytes);
          break;
        case "sent":
          acknowledge(message.job, message.bytes);
          break;
        case "cancel":
          stop(jobs.get(message.job), new ConnectionClosedError(message.message));
          break;
        case "ping":
          post({ type: "pong", ping: message.ping });
          break;
      }
    }
  }

  scope.onmessage = (event) => {
    const data = event.data;
    if (!Array.isArray(data)) init(data);
    else if (commands) handle(data);
    else early.push(data);
  };
}

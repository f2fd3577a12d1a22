/**
 * Worker entry: the other side of `pool.ts`. Imports the module that defines
 * the handlers (so users write no second file), rebuilds the command map,
 * then runs batches of calls and answers in batches.
 *
 * @module
 */

import { ConnectionClosedError } from "../errors.ts";
import type { HandlerClass } from "../handler.ts";
import { callEnded, jsonSender } from "./executor.ts";
import { Inbox } from "./inbox.ts";
import { importHandlers, resolveCommands } from "./resolve.ts";
import { type Outcome, runHandler } from "./run_handler.ts";
import type { FromWorker, InitMessage, ToWorker } from "./worker_messages.ts";

// The worker's global scope, typed by hand: JSR refuses
// `/// <reference lib="deno.worker" />`, which would change globals for users.
const scope = globalThis as unknown as {
  postMessage(message: unknown): void;
  close(): void;
  onmessage: ((event: MessageEvent<InitMessage | ToWorker[]>) => void) | null;
};

let commands: Map<string, HandlerClass> | undefined;
const early: ToWorker[][] = [];
const inboxes = new Map<number, Inbox>();
let outbox: FromWorker[] = [];
let scheduled = false;

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
// so the pool fails them at once instead of waiting for a timeout.
const closeWorker = scope.close.bind(scope);
scope.close = () => {
  outbox.push({ t: "exit" });
  flush();
  closeWorker();
};
const exitProcess = Deno.exit;
Deno.exit = (code?: number): never => {
  outbox.push({ t: "exit" });
  flush();
  return exitProcess(code);
};

async function init(message: InitMessage): Promise<void> {
  try {
    const { mod, registry } = await importHandlers(message.module);
    commands = resolveCommands(mod, registry, message.commands);
    post({ t: "ready" });
    for (const batch of early.splice(0)) handle(batch);
  } catch (error) {
    post({ t: "failed", message: error instanceof Error ? error.message : String(error) });
  }
}

function done(job: number, outcome: Outcome): void {
  inboxes.get(job)?.close(callEnded());
  inboxes.delete(job);
  post({ t: "done", job, outcome });
}

function run(job: number, command: string, params: unknown, talk: boolean): void {
  const cls = commands!.get(command)!;
  const channel = talk
    ? {
      send: jsonSender((json) => post({ t: "send", job, json })),
      // After the call ended its inbox is gone: a late recv() fails at once.
      recv: () => inboxes.get(job)?.recv() ?? Promise.reject(callEnded()),
    }
    : undefined;
  if (talk) inboxes.set(job, new Inbox());
  const outcome = runHandler(cls, params, channel);
  if (outcome instanceof Promise) outcome.then((o) => done(job, o));
  else done(job, outcome);
}

function handle(batch: ToWorker[]): void {
  for (const message of batch) {
    switch (message.t) {
      case "run":
        run(message.job, message.command, message.params, message.talk);
        break;
      case "msg":
        inboxes.get(message.job)?.push(message.data);
        break;
      case "cancel":
        inboxes.get(message.job)?.close(new ConnectionClosedError(message.message));
        break;
      case "ping":
        post({ t: "pong", n: message.n });
        break;
    }
  }
}

scope.onmessage = (event: MessageEvent<InitMessage | ToWorker[]>) => {
  const data = event.data;
  if (!Array.isArray(data)) init(data);
  else if (commands) handle(data);
  else early.push(data);
};

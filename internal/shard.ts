/**
 * I/O thread entry ("shard"): a Web Worker that listens on the server's
 * port with SO_REUSEPORT, so the kernel spreads connections over the
 * shards, and serves its connections exactly as the main thread would:
 * inline commands run here, pooled ones go to the main thread's pool.
 *
 * @module
 */

import type { HandlerClass } from "../handler.ts";
import type { CallFailure, CallRecord } from "./observe.ts";
import { Acceptor, bind, connectionContext } from "./acceptor.ts";
import { guardThread } from "./guard.ts";
import { perThread, type ResolvedServerOptions } from "./options.ts";
import { StatsTable } from "./observe.ts";
import { RemoteExecutor } from "./remote_executor.ts";
import { importHandlers, resolveCommands } from "./resolve.ts";
import type { FromShard, ShardInit, ShardStatus, ToShard } from "./shard_messages.ts";

const scope = globalThis as unknown as {
  postMessage(message: unknown): void;
  close(): void;
  onmessage: ((event: MessageEvent<ShardInit | ToShard[]>) => void) | null;
};

/** How often a shard reports its connection and call counts, when they changed. */
const STATS_EVERY_MS = 50;

let acceptor: Acceptor | undefined;
let remote: RemoteExecutor | undefined;
let stats: StatsTable | undefined;
/** Call records and failures for the main thread's hooks, sent once per tick. */
let outbox: FromShard[] = [];

function report(message: FromShard): void {
  if (outbox.length === 0) {
    queueMicrotask(() => {
      const batch = outbox;
      outbox = [];
      try {
        scope.postMessage(batch);
      } catch {
        // One record that cannot be copied must not take the others with it.
        for (const message of batch) {
          try {
            scope.postMessage([message]);
          } catch (error) {
            console.error("tcpy: an I/O thread could not pass on a record:", error);
          }
        }
      }
    });
  }
  outbox.push(message);
}

function status(message: ShardStatus): void {
  scope.postMessage(message);
}

async function init(message: ShardInit): Promise<void> {
  try {
    const { mod, registry } = await importHandlers(message.module);
    const commands: Map<string, HandlerClass> = resolveCommands(mod, registry, message.commands);
    if (message.pooled) {
      remote = new RemoteExecutor((batch: FromShard[]) => scope.postMessage(batch));
    }
    const options = message.options as ResolvedServerOptions;
    stats = options.stats ? new StatsTable() : undefined;
    // The hooks are functions and stay on the main thread: send them what they need.
    const observer = {
      onCall: message.calls ? (record: CallRecord) => report({ type: "call", record }) : undefined,
      onError: (event: CallFailure) => report({ type: "failure", event }),
      stats,
      exposeErrors: options.exposeErrors,
      warned: new Set<string>(),
    };
    const listener = bind(options, message.port, true);
    acceptor = new Acceptor(
      listener,
      connectionContext(options, commands, remote, observer, message.shards),
      // Each I/O thread takes its share; the total never passes the limit.
      { maxConnections: perThread(options.maxConnections, message.shards) },
    );
    status({ type: "listening", port: (listener.addr as Deno.NetAddr).port });
    let last = "";
    setInterval(() => {
      const connections = acceptor!.connections;
      const inFlight = acceptor!.inFlight;
      const now = `${connections},${inFlight}`;
      if (now === last) return;
      last = now;
      scope.postMessage([{ type: "stats", connections, inFlight }]);
    }, STATS_EVERY_MS);
  } catch (error) {
    status({
      type: "failed",
      message: error instanceof Error ? error.message : String(error),
      name: error instanceof Error ? error.name : "Error",
    });
  }
}

async function close(grace: number): Promise<void> {
  await acceptor?.close(grace);
  scope.postMessage([{ type: "stats", connections: 0, inFlight: 0 }]);
  status({ type: "closed" });
}

guardThread();

// An inline handler that ends this thread (self.close(), Deno.exit()) takes
// its connections with it: say so first, so the main thread replaces it
// instead of counting it as live.
function ending(how: string): void {
  status({
    type: "failed",
    message: `an inline handler ended the I/O thread (${how})`,
    name: "Error",
  });
}
const closeThread = scope.close.bind(scope);
scope.close = () => {
  ending("self.close()");
  closeThread();
};
const exitThread = Deno.exit;
Deno.exit = (code?: number): never => {
  ending("Deno.exit()");
  return exitThread(code);
};
scope.onmessage = (event) => {
  const data = event.data;
  if (!Array.isArray(data)) {
    init(data);
    return;
  }
  for (const message of data) {
    if (message.type === "close") close(message.grace);
    else if (message.type === "stats") {
      report({ type: "counters", request: message.request, rows: [...(stats?.counters ?? [])] });
    } else remote?.receive(message);
  }
};

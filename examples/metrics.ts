/**
 * Observing a server: an access log through `onCall`, failures through
 * `onError` (the default logs them; here they are counted), and the
 * built-in per-command table from `server.stats()`.
 *
 * ```sh
 * deno run --allow-net=127.0.0.1 --allow-read examples/metrics.ts [calls]
 * ```
 *
 * Prints one access-log line for the first few calls, then a table:
 *
 * ```text
 * command  calls  errors  failures  mean ms  p50 ms  p99 ms
 * add        200       0         0    0.021   0.032   0.128
 * ...
 * ```
 *
 * @module
 */
import { type CallRecord, type CommandStats, TCPClient, TCPHandler, TCPServer } from "../mod.ts";

/** Adds: cheap, so it soon runs where calls arrive. */
export class Add extends TCPHandler<{ x: number; y: number }> {
  execute() {
    return this.success({ solution: this.params.x + this.params.y });
  }
}

/** Divides, refusing 0 with a handler error (counted as an error, not a failure). */
export class Divide extends TCPHandler<{ a: number; b: number }> {
  execute() {
    if (this.params.b === 0) return this.error("division by zero");
    return this.success({ quotient: this.params.a / this.params.b });
  }
}

/** Fails every tenth call by throwing: a failure the server logs. */
export class Flaky extends TCPHandler<{ n: number }> {
  execute() {
    if (this.params.n % 10 === 0) throw new Error(`flaky failure on ${this.params.n}`);
    return this.success({ n: this.params.n });
  }
}

/** The commands, exported so the workers find them. */
export const commands = { add: Add, divide: Divide, flaky: Flaky };

/** Formats `server.stats()` as a fixed-width table. */
export function statsTable(stats: Record<string, CommandStats>): string {
  const head = ["command", "calls", "errors", "failures", "mean ms", "p50 ms", "p99 ms"];
  const rows = Object.entries(stats).map(([command, s]) => [
    command,
    String(s.calls),
    String(s.errors),
    String(s.failures),
    s.meanMs.toFixed(3),
    s.p50Ms.toFixed(3),
    s.p99Ms.toFixed(3),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  return [head, ...rows]
    .map((row) =>
      row.map((cell, i) => i === 0 ? cell.padEnd(widths[i]) : cell.padStart(widths[i])).join("  ")
    )
    .join("\n");
}

if (import.meta.main) {
  const calls = Number(Deno.args[0] ?? 200);
  let logged = 0;
  let failures = 0;
  const server = new TCPServer({
    host: "127.0.0.1",
    port: 0,
    threads: 2,
    commands,
    stats: true,
    onCall(call: CallRecord) {
      if (logged++ < 3) {
        const outcome = call.ok ? "ok" : `error ${call.code}`;
        console.log(`access: ${call.command} ${outcome} ${call.durationMs.toFixed(3)} ms`);
      }
    },
    onError() {
      failures++;
    },
    onListen() {},
  });
  const { port } = await server.listen();
  const client = new TCPClient({ port });
  for (let i = 0; i < calls; i++) {
    await client.execute("add", { x: i, y: 1 });
    await client.execute("divide", { a: i, b: i % 4 });
    await client.execute("flaky", { n: i }).catch(() => {});
  }
  await client.disconnect();
  console.log(statsTable(await server.stats()));
  console.log(`failures reported to onError: ${failures}`);
  await server.close();
}

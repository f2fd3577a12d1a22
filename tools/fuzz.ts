/**
 * The long protocol fuzzer (`deno task fuzz`): the generator of
 * `tests/fuzz_test.ts`, for more cases, against three servers in this
 * process: inline and a pool of 2 with `maxMessageBytes` 4096, and a pool of
 * 2 with the default 1 MiB limit (deep nesting and long lines get parsed).
 *
 * Environment:
 * - `FUZZ_SEED`: the seed (default: random, printed).
 * - `FUZZ_CASES`: connections per server (default 5000).
 * - `FUZZ_SECONDS`: time budget for the whole run (default 120); each server
 *   gets a third, and stops starting cases when its share is used.
 * - `FUZZ_ONLY`: comma-separated case indexes to replay.
 *
 * Exits 1 on any violation: a reply line that is not JSON-RPC 2.0, a
 * connection the server neither answers nor closes, a valid call lost after
 * junk, a server that no longer answers or keeps connections afterwards.
 */
import { TCPClient } from "../mod.ts";
import { startTestServer } from "../testing.ts";
import { commands } from "../tests/fixtures/handlers.ts";
import { waitFor } from "./_process.ts";
import {
  emptyStats,
  type FuzzStats,
  onlyFromEnv,
  runFuzz,
  seedFromEnv,
  summary,
} from "../tests/fuzz_cases.ts";

function positive(name: string, fallback: number): number {
  const given = Deno.env.get(name);
  if (given === undefined || given === "") return fallback;
  const value = Number(given);
  if (!(value > 0) || !Number.isFinite(value)) {
    console.error(`${name} must be a positive number, got ${given}`);
    Deno.exit(2);
  }
  return value;
}

const seed = seedFromEnv();
const cases = Math.floor(positive("FUZZ_CASES", 5000));
const seconds = positive("FUZZ_SECONDS", 120);
const only = onlyFromEnv();

const MODES = [
  { name: "inline, 4 KiB limit", threads: 0, limit: 4096 },
  { name: "pool of 2, 4 KiB limit", threads: 2, limit: 4096 },
  { name: "pool of 2, 1 MiB limit", threads: 2, limit: 1024 * 1024 },
];

console.log(
  `fuzz seed ${seed} (replay with FUZZ_SEED=${seed}), up to ${cases} cases per server, ` +
    `${seconds} s in all`,
);
const total: FuzzStats = emptyStats();
const problems: string[] = [];
const started = Date.now();

for (const [i, mode] of MODES.entries()) {
  const share = (seconds * 1000) / MODES.length;
  const deadline = started + share * (i + 1) - 3_000; // leave time to settle
  const t = await startTestServer({
    commands,
    module: new URL("../tests/fixtures/handlers.ts", import.meta.url),
    threads: mode.threads,
    maxMessageBytes: mode.limit,
  });
  const { server, port } = t;
  try {
    const t0 = Date.now();
    const stats = await runFuzz({
      port,
      seed,
      cases,
      limit: mode.limit,
      concurrency: 16,
      deadline,
      only,
      first: i * 1_000_000, // each server gets its own cases
    });
    console.log(`[${mode.name}] ${((Date.now() - t0) / 1000).toFixed(1)} s: ${summary(stats)}`);
    for (const v of stats.violations) problems.push(`[${mode.name}] ${v}`);
    merge(total, stats);

    await waitFor(() => server.connections === 0, { what: "connections to close", timeout: 5_000 })
      .catch(() => {}); // reported below
    if (server.connections !== 0) {
      problems.push(`[${mode.name}] ${server.connections} connections still open after the fuzz`);
    }
    if (server.inFlight !== 0) {
      problems.push(`[${mode.name}] ${server.inFlight} calls still in flight after the fuzz`);
    }
    try {
      await using client = new TCPClient({ port, timeout: 5_000 });
      const reply = await client.execute("add", { x: 20, y: 22 });
      if ((reply as { solution?: number }).solution !== 42) {
        problems.push(`[${mode.name}] add after the fuzz answered ${JSON.stringify(reply)}`);
      }
    } catch (error) {
      problems.push(`[${mode.name}] add after the fuzz failed: ${(error as Error).message}`);
    }
  } finally {
    await t.close();
  }
}

console.log(`total: ${summary(total)}`);
console.log(
  `cases run: ${total.cases}, replies seen: ${total.responses}, closes seen: ${
    total.closes + total.resets
  } (${total.resets} resets), in ${((Date.now() - started) / 1000).toFixed(1)} s`,
);
if (problems.length > 0) {
  console.error(`\n${problems.length} violations:\n${problems.join("\n")}`);
  Deno.exit(1);
}
console.log("no violations");

function merge(into: FuzzStats, from: FuzzStats): void {
  into.cases += from.cases;
  into.bytesSent += from.bytesSent;
  into.replyLines += from.replyLines;
  into.responses += from.responses;
  into.notifications += from.notifications;
  into.closes += from.closes;
  into.resets += from.resets;
  into.clientCloses += from.clientCloses;
  into.sentinels += from.sentinels;
  into.byes += from.byes;
  for (const [code, n] of from.codes) into.codes.set(code, (into.codes.get(code) ?? 0) + n);
}

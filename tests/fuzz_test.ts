/**
 * Protocol fuzzing over real sockets, inline and with a pool of 2 workers:
 * hostile bytes in random splits must get well-formed JSON-RPC replies or a
 * clean close, and leave the server answering and with no connection left.
 *
 * The seed is printed; replay a run with `FUZZ_SEED=<seed>` (and one case
 * with `FUZZ_ONLY=<index>`). `deno task fuzz` runs the same generator longer.
 */
import assert from "node:assert/strict";
import { startFixtures, waitFor } from "./_helpers.ts";
import { sleepsRunning } from "./fixtures/handlers.ts";
import { onlyFromEnv, runFuzz, seedFromEnv, summary } from "./fuzz_cases.ts";

const LIMIT = 4096;
const CASES = 150;
const seed = seedFromEnv();
const only = onlyFromEnv();

for (const { name, threads } of [{ name: "inline", threads: 0 }, { name: "pool", threads: 2 }]) {
  Deno.test(`fuzz (${name}): hostile input gets JSON-RPC replies or a clean close`, async () => {
    console.log(`fuzz seed ${seed} (replay with FUZZ_SEED=${seed})`);
    await using t = await startFixtures({ threads, maxMessageBytes: LIMIT });
    const { server } = t;
    const stats = await runFuzz({
      port: t.port,
      seed,
      cases: CASES,
      limit: LIMIT,
      concurrency: 12,
      only,
      first: threads === 0 ? 0 : CASES, // each mode gets its own cases
    });
    console.log(`fuzz (${name}): ${summary(stats)}`);
    assert.deepEqual(stats.violations, [], stats.violations.join("\n"));

    // Every fuzz connection is gone once its client left.
    await waitFor(() => server.connections === 0, {
      what: () => `the fuzz connections to close (${server.connections} open)`,
    });
    assert.equal(server.inFlight, 0);

    // And the server still listens and answers a well-behaved client.
    assert.equal(server.listening, true);
    assert.deepEqual(await t.client({ timeout: 5_000 }).execute("add", { x: 20, y: 22 }), {
      success: true,
      solution: 42,
    });
    // Inline `sleep` notifications of clients that left run on (a call's
    // sleep stops when its client leaves): let their timers end.
    await waitFor(() => sleepsRunning() === 0, { what: "the inline sleeps to end" });
  });
}

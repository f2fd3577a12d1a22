/**
 * Several `tcpy serve` processes on one port (`--reuse-port`, Linux
 * SO_REUSEPORT, needs `deno run --unstable-net`): both take connections, and
 * restarting them one at a time loses no call of a TCPClusterClient pointed
 * at the one port. Elsewhere Deno ignores `reusePort`, so the test is Linux
 * only (docs/cli.md, deploy/README.md).
 */
import assert from "node:assert/strict";
import { TCPClient } from "../mod.ts";
import { TCPClusterClient } from "../cluster.ts";
import type { commands } from "./fixtures/cluster_handlers.ts";
import {
  assertNothingLost,
  freePort,
  HOST,
  killAll,
  Load,
  rollingRestart,
  Runs,
  startServe,
} from "./_processes.ts";

Deno.test({
  name:
    "tcpy serve --reuse-port: two processes share a port and restart in turn without losing a call",
  ignore: Deno.build.os !== "linux",
}, async () => {
  const runs = new Runs();
  const port = freePort();
  let load: Load | undefined;
  try {
    const servers = [
      await startServe({ port, runs, reusePort: true }),
      await startServe({ port, runs, reusePort: true }),
    ];
    // The kernel spreads new connections over both processes.
    const pids = new Set<number>();
    for (let i = 0; i < 100 && pids.size < 2; i++) {
      await using client = new TCPClient<typeof commands>({ host: HOST, port });
      pids.add((await client.execute("pid")).pid);
    }
    assert.equal(pids.size, 2, "only one process took connections");

    await using cluster = new TCPClusterClient<typeof commands>({
      endpoints: [{ host: HOST, port }],
      connections: 4,
      retry: { retries: 8, baseDelay: 50, maxDelay: 1_000 },
      onRetry: Load.onRetry(() => load),
    });
    load = new Load(cluster, 4);
    await load.until(200);
    await rollingRestart(servers, [port, port], load, {
      serve: { runs, reusePort: true },
      calls: 200,
    });
    const report = await load.stop();
    await cluster.close();
    for (const server of servers) assert.equal((await server.stop()).code, 0);
    assertNothingLost("--reuse-port, 2 processes on one port", report, runs);
  } finally {
    await killAll();
  }
});

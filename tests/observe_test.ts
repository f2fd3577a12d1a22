/** What an operator sees: failures logged with a reference, call records, stats. */
import assert from "node:assert/strict";
import {
  type CallFailure,
  type CallRecord,
  HandlerFailedError,
  TCPClient,
  TCPServer,
} from "../mod.ts";
import { commands } from "./fixtures/observe_handlers.ts";

const MODULE = new URL("./fixtures/observe_handlers.ts", import.meta.url);

async function serve(options: ConstructorParameters<typeof TCPServer>[0]) {
  const server = new TCPServer({
    host: "127.0.0.1",
    port: 0,
    commands,
    module: MODULE,
    onListen() {},
    ...options,
  });
  const { port } = await server.listen();
  return { server, client: new TCPClient({ port }) };
}

/** Runs `body` with console.error captured. */
async function capturingStderr(body: () => Promise<void>): Promise<string[]> {
  const lines: string[] = [];
  const original = console.error;
  console.error = (...args: unknown[]) => lines.push(args.map(String).join(" "));
  try {
    await body();
  } finally {
    console.error = original;
  }
  return lines;
}

for (const threads of [0, 1]) {
  Deno.test(`TCPServer (threads: ${threads}) logs a handler failure with command, id, stack and reference`, async () => {
    const logged = await capturingStderr(async () => {
      const { server, client } = await serve({ threads });
      try {
        await assert.rejects(client.execute("leak"), /hunter2/);
      } finally {
        await client.disconnect();
        await server.close();
      }
    });
    const line = logged.find((l) => l.startsWith("tcpy: call"));
    assert.ok(line, `no failure logged: ${logged.join("\n")}`);
    assert.match(
      line,
      /^tcpy: call 1 to "leak" failed \(-32603, [\d.]+ ms, ref [0-9a-f]{8}\): Error: database password is hunter2\n\s+at /,
    );
  });

  Deno.test(`TCPServer (threads: ${threads}) with exposeErrors: false sends a reference, not the handler's text`, async () => {
    const failures: CallFailure[] = [];
    const { server, client } = await serve({
      threads,
      exposeErrors: false,
      onError: (e) => failures.push(e),
    });
    try {
      const error = await client.execute("leak").catch((e) => e);
      assert.ok(error instanceof HandlerFailedError);
      assert.doesNotMatch(error.message, /hunter2/);
      assert.equal(failures.length, 1);
      const [failure] = failures;
      assert.equal(error.message, `Internal error (reference ${failure.reference})`);
      assert.equal(failure.command, "leak");
      assert.equal(failure.id, 1);
      assert.equal(failure.code, -32603);
      assert.equal(failure.error.message, "Handler failed: database password is hunter2");
      assert.match(failure.error.stack ?? "", /observe_handlers\.ts/);
      assert.ok(failure.paramsBytes > 0);
      assert.ok(failure.durationMs >= 0);
      assert.equal(failure.remote?.hostname, "127.0.0.1");
      // Other calls are unaffected.
      assert.deepEqual(await client.execute("add", { x: 1, y: 2 }), { success: true, solution: 3 });
    } finally {
      await client.disconnect();
      await server.close();
    }
  });

  Deno.test(`TCPServer (threads: ${threads}) tells onCall of every call and keeps per-command stats`, async () => {
    const records: CallRecord[] = [];
    const { server, client } = await serve({
      threads,
      stats: true,
      onCall: (r) => records.push(r),
      onError() {},
    });
    try {
      for (let i = 0; i < 5; i++) await client.execute("add", { x: i, y: 1 });
      await client.execute("leak").catch(() => {});
      const stats = await server.stats();
      assert.equal(stats.add.calls, 5);
      assert.equal(stats.add.errors, 0);
      assert.equal(stats.leak.calls, 1);
      assert.equal(stats.leak.failures, 1);
      assert.ok(stats.add.p99Ms >= stats.add.p50Ms);
      assert.equal(records.length, 6);
      assert.deepEqual(records.map((r) => [r.command, r.ok, r.code]), [
        ...Array(5).fill(["add", true, undefined]),
        ["leak", false, -32603],
      ]);
      assert.equal(new Set(records.map((r) => r.connection)).size, 1);
    } finally {
      await client.disconnect();
      await server.close();
    }
  });

  Deno.test(`TCPServer (threads: ${threads}) warns once per command when execute() returns undefined`, async () => {
    const logged = await capturingStderr(async () => {
      const { server, client } = await serve({ threads });
      try {
        assert.equal(await client.execute("forgetful"), null);
        assert.equal(await client.execute("forgetful"), null);
      } finally {
        await client.disconnect();
        await server.close();
      }
    });
    const warnings = logged.filter((l) => l.includes("returned undefined"));
    assert.equal(warnings.length, 1, logged.join("\n"));
    assert.match(warnings[0], /"forgetful" returned undefined from execute\(\).*forget to return/);
  });
}

Deno.test("server.stats() needs the stats option", async () => {
  const { server, client } = await serve({ threads: 0 });
  try {
    await assert.rejects(server.stats(), /create the server with stats: true/);
  } finally {
    await client.disconnect();
    await server.close();
  }
});

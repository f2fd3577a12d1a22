/** Handlers that misbehave inside a worker: the pool contains the damage. */
import assert from "node:assert/strict";
import { WorkerCrashedError } from "../mod.ts";
import { startTestServer } from "../testing.ts";
import { waitFor } from "./_helpers.ts";
import { commands } from "./fixtures/fault_handlers.ts";

const FAULTS = new URL("./fixtures/fault_handlers.ts", import.meta.url);

Deno.test("a handler that calls Deno.exit() in a worker fails only its call; a new worker takes over", async () => {
  await using t = await startTestServer({ commands, threads: 1, module: FAULTS });
  const client = t.client({ timeout: 10_000 });
  await assert.rejects(client.execute("exit"), WorkerCrashedError);
  // Calls made while the replacement starts may be refused with -32004 too;
  // once it is up, the server answers from a worker again.
  const reply = await waitFor(async () => {
    try {
      return await client.execute("where");
    } catch (error) {
      assert.ok(error instanceof WorkerCrashedError, String(error));
      return undefined;
    }
  }, { what: "the replacement worker to answer", interval: 20 });
  assert.deepEqual(reply, { thread: "tcpy-worker-0" });
});

Deno.test("send() in a worker refuses data JSON cannot carry, and the handler can go on", async () => {
  await using t = await startTestServer({ commands, threads: 1, module: FAULTS });
  assert.deepEqual(await t.client().execute("sendBigInt"), {
    refused:
      "TypeError: Cannot send(): data is not JSON-serializable: Do not know how to serialize a BigInt",
  });
});

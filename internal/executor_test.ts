/** The inline executor on its own: conversation plumbing and refusals. */
import assert from "node:assert/strict";
import { TCPHandler } from "../handler.ts";
import { InlineExecutor, type Invocation } from "./executor.ts";
import { encodeSent } from "./json_text.ts";
import type { Outcome } from "./run_handler.ts";

class Echo extends TCPHandler {
  async execute() {
    const data = await this.recv();
    await this.send(data);
    try {
      await this.send(1n);
    } catch (error) {
      return { echoed: data, refused: (error as Error).message };
    }
  }
}

function call(conversational: boolean) {
  const sent: string[] = [];
  const finished = Promise.withResolvers<Outcome>();
  const c: Invocation = {
    command: "echo",
    handler: Echo,
    params: {},
    conversational,
    send: (json) => {
      sent.push(json);
      return undefined;
    },
    finish: (outcome) => finished.resolve(outcome),
  };
  return { c, sent, outcome: finished.promise };
}

Deno.test("InlineExecutor delivers data both ways and refuses what JSON cannot carry", async () => {
  const executor = new InlineExecutor();
  const { c, sent, outcome } = call(true);
  const task = executor.run(c);
  task.deliver({ hello: "world" }, 17);
  assert.deepEqual(await outcome, {
    json: JSON.stringify({
      echoed: { hello: "world" },
      refused:
        "Cannot send(): data is not JSON-serializable: Do not know how to serialize a BigInt",
    }),
  });
  assert.deepEqual(sent, ['{"hello":"world"}']);
  await executor.close();
});

Deno.test("InlineExecutor: a cancelled call's recv() rejects with the reason", async () => {
  const { c, outcome } = call(true);
  new InlineExecutor().run(c).cancel(new Error("client gone"));
  const result = await outcome;
  assert.ok("error" in result && result.error.message === "Handler failed: client gone");
});

Deno.test("encodeSent refuses values JSON cannot carry with TypeError", () => {
  assert.equal(encodeSent(undefined), "null");
  assert.throws(() => encodeSent(1n), TypeError);
});

/** TCPHandler on its own: the reply helpers, and send/recv outside a call. */
import assert from "node:assert/strict";
import { TCPHandler } from "./handler.ts";

class Talk extends TCPHandler<{ n?: number }> {
  async execute() {
    await this.send("hi");
    return await this.recv();
  }
}

Deno.test("TCPHandler keeps the params, and {} when there are none", () => {
  assert.deepEqual(new Talk({ n: 1 }).params, { n: 1 });
  assert.deepEqual(new Talk(undefined as never).params, {});
  assert.equal(Talk.inline, undefined, "unset: the server measures where it runs");
});

Deno.test("TCPHandler.success and error build the original tcpy dictionaries", () => {
  const handler = new Talk({});
  assert.deepEqual(handler.success(), { success: true });
  assert.deepEqual(handler.success({ a: 1 }), { success: true, a: 1 });
  assert.deepEqual(handler.error("no"), { error: true, message: "no" });
  assert.deepEqual(handler.error("no", { code: 7 }), { error: true, message: "no", code: 7 });
});

Deno.test("TCPHandler.send and recv throw TypeError outside a call that can converse", () => {
  const handler = new Talk({});
  assert.throws(() => handler.send("x"), /Cannot send\(\): this handler is not running in a call/);
  assert.throws(() => handler.recv(), /Cannot recv\(\): this handler is not running in a call/);
});

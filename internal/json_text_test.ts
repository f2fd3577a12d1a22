/** Conversation data as JSON text: encoding, refusals, size checks. */
import assert from "node:assert/strict";
import { MessageTooLargeError } from "../errors.ts";
import { encodeSent, jsonSender, utf8Length } from "./json_text.ts";

Deno.test("utf8Length counts UTF-8 bytes when the limit is in doubt, else an upper bound", () => {
  assert.equal(utf8Length("é€", 4), 5);
  assert.equal(utf8Length("abc", 100), 9); // surely under: not encoded
  assert.equal(utf8Length("abcdef", 3), 18); // surely over: not encoded
});

Deno.test("encodeSent refuses what JSON cannot carry and what is over the limit", () => {
  assert.equal(encodeSent({ a: [1, undefined] }), '{"a":[1,null]}');
  assert.throws(() => encodeSent(1n), /^TypeError: Cannot send\(\): data is not JSON-serializable/);
  assert.equal(encodeSent("€€", 8), '"€€"'); // 8 bytes
  assert.throws(() => encodeSent("€€€", 10), MessageTooLargeError); // 11 bytes
});

Deno.test("jsonSender rejects instead of throwing, and waits for the delivery", async () => {
  const got: string[] = [];
  const later = Promise.withResolvers<void>();
  const send = jsonSender((json) => got.push(json) === 2 ? later.promise : undefined);
  await send({ n: 1 });
  let done = false;
  const waiting = send("second").then(() => done = true);
  await Promise.resolve();
  assert.equal(done, false);
  later.resolve();
  await waiting;
  assert.deepEqual(got, ['{"n":1}', '"second"']);
  await assert.rejects(send(1n), TypeError);
});

/** Conversation data as JSON text: encoding, refusals, size checks. */
import assert from "node:assert/strict";
import { MessageTooLargeError } from "../errors.ts";
import { encodeSent, exactUtf8Length, jsonSender, utf8Length } from "./json_text.ts";

Deno.test("utf8Length counts UTF-8 bytes when the limit is in doubt, else a bound on the safe side", () => {
  assert.equal(utf8Length("é€", 4), 5);
  assert.equal(utf8Length("abc", 100), 9); // surely under: an upper bound, not encoded
  assert.equal(utf8Length("abcdef", 3), 6); // surely over: a lower bound (exact for ASCII)
});

Deno.test("exactUtf8Length encodes only what is not ASCII", () => {
  assert.equal(exactUtf8Length("abc"), 3);
  assert.equal(exactUtf8Length("é€"), 5);
  assert.equal(exactUtf8Length(""), 0);
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

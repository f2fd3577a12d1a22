/** What a pending call gets when its connection closes: one row per case. */
import assert from "node:assert/strict";
import {
  AuthenticationError,
  ConnectionClosedError,
  MessageTooLargeError,
  ProtocolError,
  ShuttingDownError,
} from "../errors.ts";
import { type LastWords, pendingCallError } from "./client_rules.ts";

const serverClosed = new ConnectionClosedError("The server closed the connection");
const disconnected = new ConnectionClosedError("The client disconnected");
const reset = new Deno.errors.ConnectionReset("Connection reset by peer");
const garbage = new ProtocolError("Unreadable reply: Unexpected token");
const wrongSecret = new AuthenticationError("Authentication failed");
const tooLarge = new MessageTooLargeError("Message too large");

const NEVER_RAN =
  "The server closed the connection gracefully before reading this call; it never ran";

/** Why it closed, what the server said before, then the error each pending call gets. */
// deno-fmt-ignore
const CASES: [Error, LastWords, new (...a: never[]) => Error, string, unknown][] = [
  // Nothing said: the call may have run.
  [serverClosed, none(),                  ConnectionClosedError, serverClosed.message, undefined],
  [disconnected, none(),                  ConnectionClosedError, disconnected.message, undefined],
  [reset,        none(),                  ConnectionClosedError, "The connection failed: Connection reset by peer", reset],
  [garbage,      none(),                  ProtocolError,         garbage.message, undefined],
  // tcpy.bye: the server answered all it read, so the calls left never ran.
  [serverClosed, bye(),                   ShuttingDownError,     NEVER_RAN, serverClosed],
  [disconnected, bye(),                   ShuttingDownError,     NEVER_RAN, disconnected],
  [reset,        bye(),                   ShuttingDownError,     NEVER_RAN, reset],
  [garbage,      bye(),                   ShuttingDownError,     NEVER_RAN, garbage],
  // A wrong secret is the whole story.
  [serverClosed, said(wrongSecret),       AuthenticationError,   wrongSecret.message, undefined],
  [reset,        said(wrongSecret, true), AuthenticationError,   wrongSecret.message, undefined],
  // Another error reported with id null explains the close; its bye is no drain.
  [serverClosed, said(tooLarge, true),    ConnectionClosedError, "The server closed the connection: Message too large", tooLarge],
  [reset,        said(tooLarge),          ConnectionClosedError, "Connection reset by peer: Message too large", tooLarge],
  [garbage,      said(tooLarge),          ProtocolError,         garbage.message, undefined],
];

function none(): LastWords {
  return { bye: false, reported: undefined };
}
function bye(): LastWords {
  return { bye: true, reported: undefined };
}
function said(reported: Error, bye = false): LastWords {
  return { bye, reported };
}

Deno.test("pendingCallError: what a pending call gets when its connection closes", () => {
  for (const [reason, heard, type, message, cause] of CASES) {
    const error = pendingCallError(reason, heard);
    const name = `${reason.message}, after ${JSON.stringify(heard)}`;
    assert.equal(error.constructor, type, name);
    assert.equal(error.message, message, name);
    assert.equal(error.cause, cause, name);
  }
});

Deno.test("pendingCallError passes on the reason itself or the server's own error, not a copy", () => {
  assert.equal(pendingCallError(serverClosed, none()), serverClosed);
  assert.equal(pendingCallError(garbage, said(tooLarge)), garbage);
  assert.equal(pendingCallError(reset, said(wrongSecret, true)), wrongSecret);
});

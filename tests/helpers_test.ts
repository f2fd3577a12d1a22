import assert from "node:assert/strict";
import { fakeServer, RawClient, waitFor } from "./_helpers.ts";
import { Child } from "../tools/_process.ts";

// The helpers' own checks: an assertion built on them is only as good as these.

/** Keeps each connection open, silent, until the client or the disposal closes it. */
const silent = async (conn: Deno.Conn) => {
  await conn.read(new Uint8Array(1));
};

Deno.test("RawClient.read fails at its deadline when the server stays silent", async () => {
  await using server = fakeServer(silent);
  const raw = await RawClient.connect(server.port);
  try {
    const started = Date.now();
    await assert.rejects(raw.read(200), /no line within 200 ms/);
    const waited = Date.now() - started;
    // At its own deadline, not the default one of 5 s.
    assert.ok(waited >= 150 && waited < 4000, `gave up after ${waited} ms`);
  } finally {
    raw.close();
  }
});

Deno.test("RawClient.closedByPeer is false when the server keeps the connection open", async () => {
  await using server = fakeServer(silent);
  const raw = await RawClient.connect(server.port);
  try {
    const started = Date.now();
    assert.equal(await raw.closedByPeer(200), false);
    assert.ok(Date.now() - started >= 150);
  } finally {
    raw.close();
  }
});

Deno.test("RawClient.closedByPeer is true when the server closes, after what it sent", async () => {
  await using server = fakeServer(async (conn) => {
    await conn.write(new TextEncoder().encode('{"a":1}\n'.repeat(1000)));
  });
  const raw = await RawClient.connect(server.port);
  try {
    assert.equal(await raw.closedByPeer(2000), true);
  } finally {
    raw.close();
  }
});

Deno.test("RawClient.closedByPeer is true after read saw the end of the stream", async () => {
  await using server = fakeServer(async (conn) => {
    await conn.write(new TextEncoder().encode('{"a":1}\n'));
  });
  const raw = await RawClient.connect(server.port);
  try {
    assert.deepEqual(await raw.read(), { a: 1 });
    assert.equal(await raw.read(), undefined);
    assert.equal(await raw.closedByPeer(200), true);
  } finally {
    raw.close();
  }
});

Deno.test("waitFor resolves with the first truthy value, and names what it waited for when it gives up", async () => {
  let polls = 0;
  assert.equal(
    await waitFor(() => ++polls >= 3 && "ready", { what: "three polls", interval: 1 }),
    "ready",
  );
  assert.equal(polls, 3);
  let seen = 0;
  await assert.rejects(
    waitFor(() => (seen++, false), { what: () => `never (polled ${seen}x)`, timeout: 50 }),
    (error: Error) =>
      /^Timed out after 50 ms waiting for never \(polled \d+x\)$/.test(error.message),
  );
  await assert.rejects(
    waitFor(() => Promise.reject(new Error("broken probe")), { what: "anything" }),
    /broken probe/,
  );
});

Deno.test("Child.waitFor fails with the output when the process exits before the pattern shows", async () => {
  await using child = new Child("sh", ["-c", "echo partial; echo oops >&2; exit 3"]);
  await assert.rejects(child.waitFor(/never/), (error: Error) => {
    assert.match(error.message, /^sh exited \(3\) before its stdout matched \/never\//);
    assert.match(error.message, /stdout: partial\n/);
    assert.match(error.message, /stderr: oops\n/);
    return true;
  });
  assert.deepEqual((await child.finish()).code, 3);
});

Deno.test("Child.stop kills a child that ignores the signal, once its time is up", async () => {
  await using child = new Child("sh", [
    "-c",
    'trap "" TERM; echo trapped; while :; do sleep 0.05; done',
  ]);
  await child.waitFor(/trapped/);
  const status = await child.stop("SIGTERM", 200);
  assert.equal(child.killed, true);
  assert.equal(status.signal, "SIGKILL");
});

import assert from "node:assert/strict";
import { fakeServer, RawClient } from "./_helpers.ts";

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
    assert.ok(waited >= 150 && waited < 2000, `gave up after ${waited} ms`);
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

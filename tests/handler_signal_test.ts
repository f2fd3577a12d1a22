/** Handlers' own timeouts and cancellation: recv({ timeout }), this.signal, a late send(). */
import assert from "node:assert/strict";
import { CallTimeoutError, TCPClient, TCPServer } from "../mod.ts";
import { commands } from "./fixtures/signal_handlers.ts";

const MODULE = new URL("./fixtures/signal_handlers.ts", import.meta.url);

async function serve(threads: number, options: Record<string, unknown> = {}) {
  const server = new TCPServer({
    host: "127.0.0.1",
    port: 0,
    threads,
    autoInline: false,
    commands,
    module: MODULE,
    onListen() {},
    onError() {},
    ...options,
  });
  const { port } = await server.listen();
  return { server, client: new TCPClient({ port }) };
}

async function until(what: string, check: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`timed out waiting for ${what}`);
}

for (const threads of [0, 1]) {
  Deno.test(`recv({ timeout }) rejects with CallTimeoutError when nothing comes (threads: ${threads})`, async () => {
    const { server, client } = await serve(threads);
    try {
      const quiet = client.call("askWithin", { ms: 50 });
      assert.equal(await quiet.recv(), "ready");
      assert.deepEqual(await quiet.result, {
        error: "CallTimeoutError",
        message: "recv() timed out after 50 ms",
      });
      const answered = client.call("askWithin", { ms: 5_000 });
      assert.equal(await answered.recv(), "ready");
      await answered.send("here");
      assert.deepEqual(await answered.result, { got: "here" });
    } finally {
      await client.disconnect();
      await server.close();
    }
  });

  Deno.test(`this.signal aborts when the handler timeout passes, and when the client leaves (threads: ${threads})`, async () => {
    const { server, client } = await serve(threads, { handlerTimeout: 100 });
    try {
      await assert.rejects(client.execute("watch"), CallTimeoutError);
      const gone = new TCPClient({ port: server.port });
      const call = gone.call("watch");
      await until("the call to start", () => Promise.resolve(server.inFlight > 0));
      await gone.disconnect();
      await call.result.catch(() => {});
      await until(
        "both signals to abort",
        async () => (await client.execute("seen") as string[]).length === 2,
      );
      const seen = await client.execute("seen") as string[];
      assert.match(seen[0], /timed out after 100 ms/);
      assert.match(seen[1], /closed the connection/);
    } finally {
      await client.disconnect();
      await server.close();
    }
  });

  Deno.test(`send() after the call ended rejects, as recv() does (threads: ${threads})`, async () => {
    const { server, client } = await serve(threads);
    try {
      assert.equal(await client.execute("lateSend"), "done");
      assert.deepEqual(await client.execute("lateResult"), ["rejected: The call has ended"]);
    } finally {
      await client.disconnect();
      await server.close();
    }
  });
}

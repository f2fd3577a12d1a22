/**
 * ServerConnection driven by hand: a socket in memory and the sweep called
 * with chosen times, for what real sockets cannot show deterministically.
 */
import assert from "node:assert/strict";
import { SERVER_DEFAULTS } from "./options.ts";
import { AdditionHandler } from "../examples/tutorial_server.ts";
import { connectionContext } from "./acceptor.ts";
import { ServerConnection } from "./connection.ts";

const REQUEST = '{"jsonrpc":"2.0","id":1,"method":"add","params":{"x":1,"y":2}}\n';

/**
 * A socket that delivers one request, then waits; its writes complete only
 * when the test calls `step()`, one byte at a time.
 */
class HandSocket {
  closed = false;
  readonly remoteAddr = { transport: "tcp", hostname: "127.0.0.1", port: 1 } as const;
  #sent = false;
  #reading: PromiseWithResolvers<number | null> | undefined;
  #writing: { bytes: Uint8Array; done: PromiseWithResolvers<number> } | undefined;

  read(buffer: Uint8Array): Promise<number | null> {
    if (!this.#sent) {
      this.#sent = true;
      return Promise.resolve(new TextEncoder().encodeInto(REQUEST, buffer).written);
    }
    this.#reading = Promise.withResolvers();
    return this.#reading.promise;
  }

  write(bytes: Uint8Array): Promise<number> {
    this.#writing = { bytes, done: Promise.withResolvers() };
    return this.#writing.done.promise;
  }

  /** Lets the write in progress take one byte. */
  async step(): Promise<void> {
    const writing = this.#writing;
    assert.ok(writing, "no write in progress");
    this.#writing = undefined;
    writing.done.resolve(1);
    for (let i = 0; i < 5; i++) await Promise.resolve();
  }

  closeWrite(): Promise<void> {
    return Promise.resolve();
  }

  close(): void {
    this.closed = true;
    this.#reading?.reject(new Error("closed"));
    this.#writing?.done.reject(new Error("closed"));
  }
}

function serve(writeTimeout: number): { socket: HandSocket; connection: ServerConnection } {
  const ctx = connectionContext(
    { ...SERVER_DEFAULTS, writeTimeout },
    new Map([["add", AdditionHandler]]),
    undefined,
    {
      onCall: undefined,
      onError: () => {},
      stats: undefined,
      exposeErrors: false,
      warned: new Set(),
    },
  );
  const socket = new HandSocket();
  const connection = new ServerConnection(socket as unknown as Deno.Conn, ctx);
  connection.serve();
  return { socket, connection };
}

async function ticks(): Promise<void> {
  for (let i = 0; i < 10; i++) await Promise.resolve();
}

Deno.test("write timeout: a write that makes no progress is cut once writeTimeout has passed", async () => {
  const { socket, connection } = serve(100);
  await ticks(); // the reply's write has started
  connection.sweep(10_000); // first look: the write is stuck since now
  connection.sweep(10_060);
  assert.equal(socket.closed, false);
  connection.sweep(10_099);
  assert.equal(socket.closed, false);
  connection.sweep(10_100);
  assert.equal(socket.closed, true);
  // A first dispatch can outlast a turn (compiling the handler): let its pause end.
  await new Promise((resolve) => setTimeout(resolve, 1));
});

Deno.test("write timeout: a slow client whose writes progress between sweeps is never cut", async () => {
  const { socket, connection } = serve(100);
  await ticks();
  // 60 bytes of reply, one byte per 60 ms: 3.6 s of sweeps, each seeing progress.
  let now = 10_000;
  for (let i = 0; i < 60 && !socket.closed; i++) {
    connection.sweep(now);
    now += 60;
    await socket.step();
  }
  assert.equal(socket.closed, false);
  // Then it stops reading: cut one write timeout after the last progress seen.
  connection.sweep(now);
  connection.sweep(now + 99);
  assert.equal(socket.closed, false);
  connection.sweep(now + 100);
  assert.equal(socket.closed, true);
});

Deno.test("write timeout: 0 never cuts", async () => {
  const { socket, connection } = serve(0);
  await ticks();
  connection.sweep(10_000);
  connection.sweep(1_000_000);
  assert.equal(socket.closed, false);
  connection.abort();
});

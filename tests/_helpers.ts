/**
 * Shared plumbing for the integration tests: servers on port 0, raw line
 * sockets, fake servers, and the bounded waits of tools/_process.ts.
 */
import { TCPServer, type TCPServerOptions } from "../mod.ts";
import { startTestServer, type TestServer, type TestServerOptions } from "../testing.ts";
import { commands } from "./fixtures/handlers.ts";

export { delay, waitFor, within } from "../tools/_process.ts";

export const FIXTURES = new URL("./fixtures/handlers.ts", import.meta.url);

/**
 * The public `startTestServer` with the fixture commands, which its workers
 * load from {@linkcode FIXTURES}: 127.0.0.1, port 0, 2 workers unless
 * `threads` says otherwise, `t.client()` for clients. Its clients are
 * untyped, so tests can call commands that do not exist.
 */
export function startFixtures(options: TestServerOptions = {}): Promise<TestServer> {
  return startTestServer({ commands, module: FIXTURES, ...options });
}

/**
 * Starts a server with the fixture commands on 127.0.0.1, port 0, and
 * returns the `TCPServer` itself: for what {@linkcode startFixtures} cannot
 * do (a given port or host).
 */
export async function startServer(
  options: TCPServerOptions = {},
): Promise<TCPServer & { port: number }> {
  const server = new TCPServer({
    host: "127.0.0.1",
    port: 0,
    commands,
    module: FIXTURES,
    onListen() {},
    ...options,
  });
  await server.listen();
  return server;
}

const enc = new TextEncoder();
const dec = new TextDecoder();

/** A socket that speaks lines, like `nc`: for poking the server with raw bytes. */
export class RawClient {
  #buffer = "";
  #eof = false;
  #closed = false;
  private constructor(readonly conn: Deno.TcpConn) {}

  static async connect(port: number): Promise<RawClient> {
    return new RawClient(await Deno.connect({ hostname: "127.0.0.1", port }));
  }

  async write(text: string | Uint8Array): Promise<void> {
    const bytes = typeof text === "string" ? enc.encode(text) : text;
    let written = 0;
    while (written < bytes.length) written += await this.conn.write(bytes.subarray(written));
  }

  /**
   * The next line as parsed JSON; `undefined` at end of stream. Throws if no
   * whole line arrives within `ms`; the socket is closed then, because a
   * pending read cannot be cancelled any other way.
   */
  async read(ms = 5000): Promise<unknown> {
    const deadline = Date.now() + ms;
    const chunk = new Uint8Array(65536);
    while (!this.#buffer.includes("\n")) {
      if (this.#eof) return undefined;
      const n = await this.#readBefore(chunk, deadline);
      if (n === "timeout") throw new Error(`no line within ${ms} ms`);
      if (n === null) {
        this.#eof = true;
        continue;
      }
      this.#buffer += dec.decode(chunk.subarray(0, n), { stream: true });
    }
    const at = this.#buffer.indexOf("\n");
    const line = this.#buffer.slice(0, at);
    this.#buffer = this.#buffer.slice(at + 1);
    return JSON.parse(line);
  }

  /**
   * Reads and drops whatever the server sends until it closes the
   * connection: `true` once it did (end of stream or reset), `false` if it
   * was still open after `ms` (the socket is closed then).
   */
  async closedByPeer(ms = 5000): Promise<boolean> {
    const deadline = Date.now() + ms;
    const chunk = new Uint8Array(1024);
    while (!this.#eof) {
      let n: number | null | "timeout";
      try {
        n = await this.#readBefore(chunk, deadline);
      } catch (error) {
        if (error instanceof Deno.errors.ConnectionReset) return true; // a reset is a close too
        throw error;
      }
      if (n === "timeout") return false;
      if (n === null) this.#eof = true;
    }
    return true;
  }

  /** One read that gives up at `deadline`, closing the socket so no read is left pending. */
  async #readBefore(chunk: Uint8Array, deadline: number): Promise<number | null | "timeout"> {
    if (this.#closed) throw new Error("RawClient: read after close");
    const pending = this.conn.read(chunk);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), Math.max(0, deadline - Date.now()));
    });
    try {
      const result = await Promise.race([pending, late]);
      if (result === "timeout") {
        this.close();
        await pending.catch(() => {}); // settles once the socket is closed
      }
      return result;
    } finally {
      clearTimeout(timer);
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.conn.close();
    } catch {
      // Already closed.
    }
  }
}

/**
 * A fake server on 127.0.0.1, port 0, for breaking the protocol on purpose.
 * `serve(conn, index)` handles its `index`-th connection (0-based); the
 * connection is closed when it returns or throws. Disposing it closes the
 * listener and every connection, and waits for the `serve` calls.
 */
export function fakeServer(serve: (conn: Deno.Conn, index: number) => Promise<void>) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns = new Set<Deno.Conn>();
  const close = (conn: Deno.Conn) => {
    try {
      conn.close();
    } catch { /* closed */ }
  };
  const serving = (async () => {
    const tasks: Promise<void>[] = [];
    let index = 0;
    for await (const conn of listener) {
      conns.add(conn);
      tasks.push(serve(conn, index++).catch(() => {}).finally(() => close(conn)));
    }
    await Promise.all(tasks);
  })();
  return {
    port: (listener.addr as Deno.NetAddr).port,
    async [Symbol.asyncDispose]() {
      listener.close();
      for (const conn of conns) close(conn);
      await serving;
    },
  };
}

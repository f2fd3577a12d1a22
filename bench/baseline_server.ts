/**
 * The benchmark's baseline: the tutorial's `add` command answered by the
 * plainest Deno server we know to be fast, with no framework at all. Each
 * connection reads into one reused buffer, splits lines, decodes UTF-8,
 * `JSON.parse`s the request, computes `x + y`, and writes every reply of
 * one read with one `conn.write`.
 *
 * Why: tcpy's figures mean little alone on a shared 2-core machine. The
 * suite runs this server in the same invocation, alternating with tcpy, and
 * reports tcpy as a ratio to it, so noise that hits both cancels out. It
 * does the same work per request as tcpy with the tutorial handler (parse,
 * compute, serialize a JSON-RPC 2.0 reply), so the ratio is the price of
 * the framework: dispatch, handler objects, outcome checks, error paths.
 *
 * Run: `deno run --allow-net=127.0.0.1 bench/baseline_server.ts [port]`;
 * prints `PORT <n>` once listening (port 0, the default, picks one).
 * SIGTERM or SIGINT exit the process cleanly.
 *
 * @module
 */

const LF = 0x0a;
const BUFFER_BYTES = 16 * 1024;
const decoder = new TextDecoder("utf-8", { fatal: true });
const encoder = new TextEncoder();

/** The reply to one request line (a JSON-RPC error for a malformed one). */
function answer(line: Uint8Array): string {
  let id: unknown = null;
  try {
    const request = JSON.parse(decoder.decode(line));
    id = request.id ?? null;
    const { x, y } = request.params;
    if (request.jsonrpc !== "2.0" || request.method !== "add") throw new Error("bad request");
    return `{"jsonrpc":"2.0","id":${JSON.stringify(id)},"result":${
      JSON.stringify({ success: true, solution: x + y })
    }}`;
  } catch (error) {
    return JSON.stringify({
      jsonrpc: "2.0",
      id,
      error: { code: -32600, message: String(error) },
    });
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

async function serve(conn: Deno.Conn): Promise<void> {
  const buffer = new Uint8Array(BUFFER_BYTES);
  let carry: Uint8Array | undefined;
  try {
    while (true) {
      const n = await conn.read(buffer);
      if (n === null) break;
      let chunk: Uint8Array = buffer.subarray(0, n);
      if (carry) {
        chunk = concat(carry, chunk);
        carry = undefined;
      }
      const replies: string[] = [];
      let start = 0;
      while (true) {
        const nl = chunk.indexOf(LF, start);
        if (nl === -1) break;
        if (nl > start) replies.push(answer(chunk.subarray(start, nl)));
        start = nl + 1;
      }
      if (start < chunk.length) carry = chunk.slice(start);
      if (replies.length === 0) continue;
      const bytes = encoder.encode(replies.join("\n") + "\n");
      let written = 0;
      while (written < bytes.length) written += await conn.write(bytes.subarray(written));
    }
  } catch {
    // Reset by the peer: nothing to do but close.
  } finally {
    try {
      conn.close();
    } catch {
      // Already closed.
    }
  }
}

if (import.meta.main) {
  const listener = Deno.listen({
    hostname: "127.0.0.1",
    port: Number(Deno.args[0] ?? 0),
    transport: "tcp",
  });
  console.log(`PORT ${(listener.addr as Deno.NetAddr).port}`);
  // Exit cleanly on a signal, so that `--cpu-prof` gets to write its profile.
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    Deno.addSignalListener(signal, () => Deno.exit(0));
  }
  for await (const conn of listener) {
    conn.setNoDelay(true);
    serve(conn);
  }
}

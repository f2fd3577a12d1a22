/**
 * The benchmark's baseline: the tutorial's `add` command answered by the
 * fastest plain Deno loop we could write, with no framework at all. Per read
 * of a connection: one `conn.read` into a reused buffer, ONE lenient UTF-8
 * decode of every complete line in it, an `indexOf("\n")` loop with
 * `JSON.parse` and `x + y` per line, a reply built from a template, and ONE
 * `conn.write` of all the replies, encoded into a reused output buffer.
 *
 * Why: tcpy's figures mean little alone on a shared 2-core machine. The
 * suite runs this server in the same invocation, alternating with tcpy, and
 * reports tcpy as a ratio to it, so noise that hits both cancels out. It
 * does the same work per request as tcpy with the tutorial handler (parse,
 * dispatch on the method, compute, serialize a JSON-RPC 2.0 reply), as
 * cheaply as we know how, so the ratio is the price of the framework.
 *
 * Of the variants measured (BENCHMARKS.md), a strict (`fatal`) decode per
 * line took 1.7x the server CPU per reply, a streaming decoder with a string
 * remainder and `encode` 1.15x; batching or joining differently, within 3%. This one avoids what costs by construction:
 * a non-streaming, non-fatal decode is Deno's one-op fast path (a streaming
 * decoder keeps a resource per connection), and `encodeInto` allocates
 * nothing per read.
 *
 * Run: `deno run --allow-net=127.0.0.1 bench/baseline_server.ts [port]`;
 * prints `PORT <n>` once listening (port 0, the default, picks one).
 * SIGTERM or SIGINT exit the process cleanly.
 *
 * @module
 */

import { answer } from "./answer.mjs";

const LF = 0x0a;
const BUFFER_BYTES = 16 * 1024;
/** A line longer than this closes the connection: the buffer grows no further. */
const MAX_LINE_BYTES = 1024 * 1024;
// Non-fatal and non-streaming: Deno decodes this in one fast op.
const decoder = new TextDecoder();
const encoder = new TextEncoder();

/** The part of `Deno.Conn` the loop uses (bench/hot_path.ts passes one in memory). */
export type PlainConn = Pick<Deno.Conn, "read" | "write" | "close">;

/** Serves one connection until the peer ends it. */
export async function serve(conn: PlainConn): Promise<void> {
  let buffer = new Uint8Array(BUFFER_BYTES);
  // Grown at the first reply, so an idle connection holds only its read buffer.
  let out = new Uint8Array(0);
  // Bytes of an unfinished line, kept at the start of `buffer`.
  let held = 0;
  try {
    while (true) {
      if (held === buffer.length) {
        if (buffer.length >= MAX_LINE_BYTES) break;
        const bigger = new Uint8Array(buffer.length * 2);
        bigger.set(buffer);
        buffer = bigger;
      }
      const n = await conn.read(buffer.subarray(held));
      if (n === null) break;
      const end = held + n;
      // Decode up to the last newline only: a multi-byte character split
      // between two reads is never cut in half.
      const last = buffer.lastIndexOf(LF, end - 1);
      if (last < held) {
        held = end;
        continue;
      }
      const text = decoder.decode(buffer.subarray(0, last + 1));
      let replies = "";
      let start = 0;
      let nl: number;
      while ((nl = text.indexOf("\n", start)) !== -1) {
        if (nl > start) replies += answer(text.slice(start, nl)) + "\n";
        start = nl + 1;
      }
      held = end - last - 1;
      if (held > 0) buffer.copyWithin(0, last + 1, end);
      if (replies === "") continue;
      // UTF-8 takes at most 3 bytes per UTF-16 code unit.
      if (replies.length * 3 > out.length) out = new Uint8Array(Math.max(4096, replies.length * 3));
      const { written } = encoder.encodeInto(replies, out);
      let sent = 0;
      while (sent < written) sent += await conn.write(out.subarray(sent, written));
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

/**
 * A peer for the benchmark: the tutorial's `add` over Node's `net`, written
 * by hand the way a Node programmer would: `setEncoding("utf8")` (Node then
 * keeps a split multi-byte character for the next chunk), split lines with
 * `indexOf("\n")`, `JSON.parse`, `x + y`, and one `socket.write` per `data`
 * event with every reply of that chunk joined. The reply function is the
 * Deno baseline's, so both do the same work; a malformed line gets a
 * JSON-RPC error (-32700 for bad JSON), not a crash.
 *
 * Why: it tells whether a figure is Deno's or tcpy's. The runner starts it
 * next to the Deno baseline and tcpy and drives it with the same load.
 *
 * Run: `node bench/node_server.mjs [port]`; prints `PORT <n>` once listening
 * (port 0, the default, picks one). SIGTERM or SIGINT exit the process.
 */

import { createServer } from "node:net";
import { answer } from "./answer.mjs";

const server = createServer({ noDelay: true }, (socket) => {
  socket.setEncoding("utf8");
  let rest = "";
  socket.on("data", (chunk) => {
    const text = rest + chunk;
    let replies = "";
    let start = 0;
    let nl;
    while ((nl = text.indexOf("\n", start)) !== -1) {
      if (nl > start) replies += answer(text.slice(start, nl)) + "\n";
      start = nl + 1;
    }
    rest = text.slice(start);
    if (replies !== "") socket.write(replies);
  });
  socket.on("error", () => socket.destroy());
});

server.listen(Number(process.argv[2] ?? 0), "127.0.0.1", () => {
  console.log(`PORT ${server.address().port}`);
});
for (const signal of ["SIGTERM", "SIGINT"]) process.on(signal, () => process.exit(0));

/**
 * A peer for the benchmark: the tutorial's `add` on jayson 4's TCP server
 * (`server.tcp()`), the usual JSON-RPC package for Node.
 *
 * jayson's TCP framing, read from its source (lib/server/tcp.js and
 * lib/utils.js, 4.3): the server parses the socket as a stream of JSON
 * values (stream-json with `jsonStreaming: true`), so requests may be
 * separated by newlines or nothing, and pipelined requests are all parsed;
 * each reply is written with its own `conn.write(body)` and NO delimiter.
 * The load generator therefore runs it with `-k jsonrpc-stream`, counting
 * complete top-level JSON values instead of lines. jayson's own TCP client
 * opens one connection per request; the benchmark keeps connections open,
 * which can only flatter jayson.
 *
 * jayson is not a dependency of the project: the runner installs it with
 * `npm install jayson@4` into a temporary folder and passes that folder's
 * `node_modules` here.
 *
 * Run: `node bench/jayson_server.cjs NODE_MODULES_DIR [port]`; prints
 * `PORT <n>` once listening. SIGTERM or SIGINT exit the process.
 */

"use strict";

const path = require("node:path");
const { createRequire } = require("node:module");

const modules = process.argv[2];
if (!modules) {
  console.error("usage: node bench/jayson_server.cjs NODE_MODULES_DIR [port]");
  process.exit(2);
}
const jayson = createRequire(path.join(path.resolve(modules), "..", "noop.js"))("jayson");

const server = new jayson.Server({
  add(args, callback) {
    callback(null, { success: true, solution: args.x + args.y });
  },
});
const tcp = server.tcp();
// The same socket option as every other server in the run.
tcp.on("connection", (socket) => socket.setNoDelay(true));
tcp.listen(Number(process.argv[3] ?? 0), "127.0.0.1", () => {
  console.log(`PORT ${tcp.address().port}`);
});
for (const signal of ["SIGTERM", "SIGINT"]) process.on(signal, () => process.exit(0));

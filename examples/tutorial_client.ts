/**
 * The tcpy tutorial's client: execute one of the server's commands.
 *
 * Run (with `deno task serve` running): `deno task client`
 */
import { TCPClient } from "../mod.ts";

console.log(await new TCPClient().execute("add", { x: 1, y: 2 }));

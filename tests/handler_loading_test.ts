/**
 * How workers load the handler classes, told from the user's side: what
 * `listen()` says when a worker cannot import the module or cannot find the
 * classes in it. Real workers, and a real `deno run` of a script.
 */
import assert from "node:assert/strict";
import { TCPServer } from "../mod.ts";
import { Add } from "./fixtures/handlers.ts";
import { FIXTURES, within } from "./_helpers.ts";

const UNGUARDED = new URL("./fixtures/unguarded.ts", import.meta.url);

Deno.test("a script that starts and calls its server outside import.meta.main is told so", async () => {
  // The user's experience: `deno run script.ts`, whose main thread starts the
  // workers, and each worker's import runs the script's client code again.
  const { code, stdout, stderr } = await within(
    new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-net=127.0.0.1", "--allow-read", UNGUARDED.href],
      env: { NO_COLOR: "1" },
      stdin: "null",
    }).output(),
    30_000,
    "the script to fail",
  );
  const text = new TextDecoder().decode(stderr);
  assert.equal(code, 1, text);
  assert.equal(new TextDecoder().decode(stdout), "");
  assert.ok(
    text.includes(
      `Worker could not start: while a worker imported ${UNGUARDED.href}, its top-level code ` +
        "threw: Cannot connect to 127.0.0.1:1: Connection refused",
    ),
    text,
  );
  assert.ok(
    text.includes(
      "; put the server's start (listen() and any client code) under if (import.meta.main)",
    ),
    text,
  );
});

Deno.test("listen() names the module the workers could not import", async () => {
  const missing = new URL("./fixtures/no_such_module.ts", import.meta.url);
  const server = new TCPServer({
    port: 0,
    threads: 1,
    commands: { add: Add },
    module: missing,
    onListen() {},
  });
  // Deno's own error: the module is missing, its code never ran.
  await assert.rejects(server.listen(), (error: Error) => {
    assert.match(error.message, /^Worker could not start: Module not found /);
    assert.ok(error.message.includes(missing.href), error.message);
    assert.ok(!error.message.includes("top-level code"), error.message);
    return true;
  });
  await server.close();
});

Deno.test("listen() names the module the workers searched for handler classes, and the fix", async () => {
  class Hidden extends Add {}
  const server = new TCPServer({
    port: 0,
    threads: 1,
    commands: { add: Add, hidden: Hidden },
    module: FIXTURES,
    onListen() {},
  });
  await assert.rejects(server.listen(), (error: Error) => {
    assert.equal(
      error.message,
      `Worker could not start: Cannot find handler classes for hidden (Hidden) in ${FIXTURES.href}, ` +
        "the module the workers import to find them (the server's `module` option, by default " +
        "the main module): construct the server with its commands at the top level of that " +
        "module, export the classes, or export a `commands` map; if the classes are defined in " +
        'another file, pass that file: module: new URL("./handlers.ts", import.meta.url)',
    );
    return true;
  });
  await server.close();
});

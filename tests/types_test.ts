/**
 * Type-level tests for typed commands: `deno check` (and so `deno test`)
 * fails if a line marked `@ts-expect-error` compiles, or a typed call does
 * not. The runtime part calls a real server to show the types match reality.
 */
import assert from "node:assert/strict";
import { TCPClient } from "../mod.ts";
import type { CallArgs, ParamsOf, ResultOf } from "../mod.ts";
import { startTestServer } from "../testing.ts";
import { commands } from "./fixtures/handlers.ts";
import type { Add, Greet } from "./fixtures/handlers.ts";
import { startFixtures } from "./_helpers.ts";

type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends (<T>() => T extends B ? 1 : 2) ? true
  : false;
function expectType<T extends true>(_proof?: T): void {}

expectType<Equal<ParamsOf<typeof Add>, { x: number; y: number }>>();
expectType<Equal<ResultOf<typeof Add>, { success: true } & { solution: number }>>();
expectType<Equal<ParamsOf<typeof Greet>, { greeting?: string }>>();
expectType<Equal<CallArgs<typeof Add>[0], { x: number; y: number }>>();

Deno.test("typed commands: names, params and results are checked at compile time", async () => {
  // The public test server types its clients by the command map.
  await using t = await startTestServer({ commands, threads: 0 });
  const client = t.client();
  expectType<Equal<typeof client, TCPClient<typeof commands>>>();

  const sum = await client.execute("add", { x: 1, y: 2 });
  expectType<Equal<typeof sum.solution, number>>();
  assert.equal(sum.solution, 3);

  const greet = client.call("greet"); // params are optional for this handler
  await greet.recv();
  await greet.send({ name: "types" });
  const greeting = await greet.result;
  expectType<Equal<typeof greeting, { success: true } & { text: string }>>();
  assert.equal(greeting.text, "Hello, types");

  // @ts-expect-error: misspelled command
  await assert.rejects(client.execute("ad", { x: 1, y: 2 }));
  // @ts-expect-error: wrong param type
  assert.deepEqual(await client.execute("add", { x: "1", y: 2 }), {
    success: true,
    solution: "12",
  });
  // @ts-expect-error: missing required params
  await client.execute("add").catch(() => {});
  // @ts-expect-error: unknown param
  await client.execute("add", { x: 1, y: 2, z: 3 });
});

Deno.test("untyped clients accept any command and params, with unknown results", async () => {
  await using t = await startFixtures({ threads: 0 });
  await using client = new TCPClient({ port: t.port });
  const result = await client.execute("add", { x: 1, y: 2 });
  expectType<Equal<typeof result, unknown>>();
  assert.deepEqual(result, { success: true, solution: 3 });
  assert.deepEqual(await client.execute("echo"), {});
});

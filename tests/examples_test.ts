/**
 * The examples: the tutorial and the demo run as real subprocesses the way a
 * user runs them; the others also through the testing helpers.
 */
import assert from "node:assert/strict";
import { CallTimeoutError, UnknownCommandError } from "../mod.ts";
import { startTestServer, testHandler } from "../testing.ts";
import { Child } from "../tools/_process.ts";
import { ChatHandler, commands as chatCommands, converse } from "../examples/chat.ts";
import { AdditionHandler, server as tutorial } from "../examples/tutorial_server.ts";
import { measure, PrimeCount } from "../examples/cpu_bound.ts";
import { statsTable } from "../examples/metrics.ts";
import {
  callMany,
  commands as concurrentCommands,
  Fahrenheit,
  TEMPERATURES,
  Weather,
} from "../examples/concurrent_client.ts";

const ROOT = new URL("../", import.meta.url);
const dec = new TextDecoder();

function deno(args: string[], signal?: AbortSignal) {
  return new Deno.Command(Deno.execPath(), {
    args,
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
    signal: signal ?? AbortSignal.timeout(30_000),
  });
}

Deno.test("deno task demo starts a server, calls add and prints the result", async () => {
  const output = await deno(["task", "-q", "demo"]).output();
  assert.equal(output.code, 0, dec.decode(output.stderr));
  const stdout = dec.decode(output.stdout);
  assert.match(stdout, /^tcpy listening on 127\.0\.0\.1:\d+$/m);
  assert.match(stdout, /add\(1, 2\) -> \{ success: true, solution: 3 \}/);
});

function portFree(port: number): boolean {
  try {
    Deno.listen({ hostname: "127.0.0.1", port }).close();
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.AddrInUse) return false;
    throw error;
  }
}

// Decided before the test runs, so a busy port shows as "ignored", not as a pass.
const tutorialPortFree = portFree(7272);
if (!tutorialPortFree) {
  console.log(
    "ignoring the tutorial test: port 7272 is in use on this machine, and the tutorial uses the default port",
  );
}

Deno.test({
  name: "the tutorial server on localhost:7272 answers the tutorial client",
  ignore: !tutorialPortFree,
  fn: async (t) => {
    await using server = new Child(Deno.execPath(), [
      "run",
      "--allow-net=127.0.0.1,localhost",
      "--allow-read",
      "examples/tutorial_server.ts",
    ], { cwd: ROOT });
    const [first] = await server.waitFor(/^.*\n/);
    assert.equal(first, "tcpy listening on 127.0.0.1:7272\n");
    await t.step("the client prints the solution", async () => {
      const client = await deno([
        "run",
        "--allow-net=127.0.0.1,localhost",
        "examples/tutorial_client.ts",
      ])
        .output();
      assert.equal(client.code, 0, dec.decode(client.stderr));
      assert.equal(dec.decode(client.stdout).trim(), "{ success: true, solution: 3 }");
    });
    const done = await server.stop("SIGINT");
    assert.equal(done.code, 0, "SIGINT stops the tutorial server gracefully");
  },
});

// ---------------------------------------------------------------------------
// The other examples: their handlers with testHandler, their client parts
// against startTestServer, and each script run the way its header says.

async function run(args: string[]): Promise<string> {
  const output = await deno(["run", "--allow-net=127.0.0.1,localhost", "--allow-read", ...args])
    .output();
  assert.equal(output.code, 0, dec.decode(output.stderr));
  return dec.decode(output.stdout);
}

Deno.test("examples/tutorial_server.ts: AdditionHandler adds, inline and in a worker", async () => {
  assert.deepEqual((await testHandler(AdditionHandler, { x: 1, y: 2 })).result, {
    success: true,
    solution: 3,
  });
  await using t = await startTestServer({
    commands: tutorial.commands,
    threads: 1,
    module: new URL("../examples/tutorial_server.ts", import.meta.url),
  });
  assert.deepEqual(await t.client().execute("add", { x: 2, y: 5 }), { success: true, solution: 7 });
});

Deno.test("examples/chat.ts: the handler asks for a name, answers each line, ends on bye", async () => {
  const { result, sent, unread } = await testHandler(ChatHandler, { bot: "Tess" }, {
    conversation: ["Ada", "one two three", "bye", "after bye"],
  });
  assert.deepEqual(sent, [
    { bot: "Hi, I am Tess. What is your name?" },
    { bot: 'Nice to meet you, Ada. Say anything; "bye" ends the chat.' },
    { bot: '"one two three": 3 words, noted.' },
    { bot: "Bye, Ada!" },
  ]);
  assert.deepEqual(result, { success: true, name: "Ada", lines: 1 });
  assert.deepEqual(unread, ["after bye"]);
});

Deno.test("examples/chat.ts: converse() holds the chat with the handler in a worker", async () => {
  await using t = await startTestServer({
    commands: chatCommands,
    threads: 1,
    module: new URL("../examples/chat.ts", import.meta.url),
  });
  const { lines, result } = await converse(t.client({ timeout: 10_000 }), ["Bo", "hi", "BYE"]);
  assert.deepEqual(lines, [
    "bot: Hi, I am tcpy-bot. What is your name?",
    "you: Bo",
    'bot: Nice to meet you, Bo. Say anything; "bye" ends the chat.',
    "you: hi",
    'bot: "hi": 1 word, noted.',
    "you: BYE",
    "bot: Bye, Bo!",
  ]);
  assert.deepEqual(result, { success: true, name: "Bo", lines: 1 });
});

Deno.test("examples/chat.ts runs with deno run and prints the chat", async () => {
  const stdout = await run(["examples/chat.ts", "Ada", "I like Deno"]);
  assert.match(stdout, /^you: I like Deno\nbot: "I like Deno": 3 words, noted\.\nyou: bye\n/m);
  assert.match(stdout, /result: \{ success: true, name: "Ada", lines: 1 \}/);
});

Deno.test("examples/cpu_bound.ts: PrimeCount counts primes", async () => {
  assert.deepEqual((await testHandler(PrimeCount, { limit: 100 })).result, {
    success: true,
    limit: 100,
    count: 25,
  });
  assert.equal((await testHandler(PrimeCount, { limit: 2 })).result.count, 0);
});

Deno.test("examples/cpu_bound.ts: inline and pooled runs give the same results", async () => {
  const load = { calls: 12, connections: 3, limit: 10_000 };
  const expected = Array(12).fill({ success: true, limit: 10_000, count: 1229 });
  assert.deepEqual((await measure(0, load)).results, expected);
  assert.deepEqual((await measure(2, load)).results, expected);
});

Deno.test("examples/cpu_bound.ts runs with deno run and prints both timings", async () => {
  const stdout = await run(["examples/cpu_bound.ts", "8", "5000"]);
  assert.match(stdout, /^8 calls of primes\(5000\) over 8 connections$/m);
  assert.match(stdout, /^threads: 0 +\d+ ms$/m);
  assert.match(stdout, /^threads: 2 +\d+ ms$/m);
});

Deno.test("examples/concurrent_client.ts: Weather answers known cities and refuses others", async () => {
  assert.deepEqual((await testHandler(Weather, { city: "Oslo" })).result, {
    success: true,
    city: "Oslo",
    celsius: 4,
  });
  assert.deepEqual((await testHandler(Weather, { city: "constructor" })).result, {
    error: true,
    message: "unknown city",
    city: "constructor",
  });
  assert.deepEqual((await testHandler(Fahrenheit, { celsius: 100 })).result, {
    success: true,
    fahrenheit: 212,
  });
});

Deno.test("examples/concurrent_client.ts: callMany matches every reply to its call", async () => {
  await using t = await startTestServer({ commands: concurrentCommands });
  const { outcomes, arrival } = await callMany(t.client(), 60);
  assert.equal(outcomes.length, 60);
  assert.deepEqual([...arrival].sort((a, b) => a - b), [...Array(60).keys()]);
  const cities = [...Object.keys(TEMPERATURES), "Atlantis"];
  for (const [i, outcome] of outcomes.entries()) {
    if (i === 0) {
      assert.ok(outcome.status === "rejected" && outcome.reason instanceof UnknownCommandError);
    } else if (i === 1) {
      assert.ok(outcome.status === "rejected" && outcome.reason instanceof CallTimeoutError);
    } else if (i % 3 === 0) {
      assert.deepEqual(outcome, {
        status: "fulfilled",
        value: { success: true, fahrenheit: i * 9 / 5 + 32 },
      });
    } else {
      const city = cities[i % cities.length];
      const value = city === "Atlantis"
        ? { error: true, message: "unknown city", city }
        : { success: true, city, celsius: TEMPERATURES[city] };
      assert.deepEqual(outcome, { status: "fulfilled", value }, `call ${i}`);
    }
  }
});

Deno.test("examples/concurrent_client.ts runs with deno run and reports the batch", async () => {
  const stdout = await run(["examples/concurrent_client.ts", "30"]);
  assert.match(stdout, /^30 calls on one connection in \d+ ms/m);
  assert.match(stdout, /^28 answered \(\d+ of them a handler's error\(\) reply\), 2 rejected$/m);
  assert.match(stdout, /^rejected: UnknownCommandError: Unknown command: forecast$/m);
  assert.match(stdout, /^rejected: CallTimeoutError: /m);
});

Deno.test("examples/metrics.ts prints access lines and a per-command table", async () => {
  const stdout = await run(["examples/metrics.ts", "40"]);
  assert.match(stdout, /^access: add ok \d+\.\d{3} ms$/m);
  assert.match(stdout, /^command +calls +errors +failures +mean ms +p50 ms +p99 ms$/m);
  assert.match(stdout, /^add +40 +0 +0 /m);
  assert.match(stdout, /^divide +40 +10 +0 /m); // b = 0 on every fourth call
  assert.match(stdout, /^flaky +40 +4 +4 /m); // n = 0, 10, 20, 30 throw
  assert.match(stdout, /^failures reported to onError: 4$/m);
});

Deno.test("examples/metrics.ts: statsTable aligns columns", () => {
  const table = statsTable({
    add: { calls: 3, errors: 0, failures: 0, meanMs: 0.01, p50Ms: 0.008, p99Ms: 0.016 },
  });
  assert.equal(
    table,
    "command  calls  errors  failures  mean ms  p50 ms  p99 ms\n" +
      "add          3       0         0    0.010   0.008   0.016",
  );
});

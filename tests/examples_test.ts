/** The tutorial and the demo, run as real subprocesses the way a user runs them. */
import assert from "node:assert/strict";

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
  } catch {
    return false;
  }
}

Deno.test("the tutorial server on localhost:7272 answers the tutorial client", async (t) => {
  if (!portFree(7272)) {
    console.log(
      "skipped: port 7272 is in use on this machine, and the tutorial uses the default port",
    );
    return;
  }
  const server = deno([
    "run",
    "--allow-net=127.0.0.1,localhost",
    "--allow-read",
    "examples/tutorial_server.ts",
  ])
    .spawn();
  const lines = server.stdout.pipeThrough(new TextDecoderStream()).getReader();
  try {
    let seen = "";
    while (!seen.includes("\n")) {
      const { value, done } = await lines.read();
      if (done) break;
      seen += value;
    }
    assert.match(seen, /^tcpy listening on 127\.0\.0\.1:7272\n/);
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
  } finally {
    server.kill("SIGINT");
    const status = await server.status;
    await lines.cancel();
    await server.stderr.cancel();
    assert.equal(status.code, 0, "SIGINT stops the tutorial server gracefully");
  }
});

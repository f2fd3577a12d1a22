/**
 * `tools/attack.ts` (`deno task attack`), run for one short attack as a
 * subprocess with the task's own permissions: it prints a table row with the
 * bystander's served % for that attack and the unloaded baseline, and exits 0.
 */
import assert from "node:assert/strict";
import denoJson from "../deno.json" with { type: "json" };
import { Child } from "../tools/_process.ts";

const ROOT = new URL("..", import.meta.url);

Deno.test("deno task attack --seconds 1 --only pipeline prints the table and exits 0", async () => {
  // `deno run --allow-... tools/attack.ts`, as the task runs it.
  const [deno, ...args] = denoJson.tasks.attack.split(" ");
  assert.equal(deno, "deno");
  await using run = new Child(Deno.execPath(), [
    ...args,
    "--seconds",
    "1",
    "--baseline",
    "1",
    "--settle",
    "0.5",
    "--only",
    "pipeline",
  ], { cwd: ROOT, name: "attack.ts" });
  const done = await run.finish(20_000);
  const output = `stdout:\n${done.stdout}\nstderr:\n${done.stderr}`;
  assert.equal(done.code, 0, output);
  for (const attack of ["\\(none: unloaded\\)", "pipeline"]) {
    const row = done.stdout.match(
      new RegExp(`^\\| ${attack} +\\| +(\\d+\\.\\d)% \\((\\d+)/(\\d+)\\) \\|`, "m"),
    );
    assert.ok(row, `no table row for ${attack}\n${output}`);
    const [percent, served, calls] = [Number(row[1]), Number(row[2]), Number(row[3])];
    assert.ok(calls > 50, `${attack}: only ${calls} bystander calls\n${output}`);
    assert.ok(served <= calls && percent >= 0 && percent <= 100, output);
    assert.equal(percent.toFixed(1), ((100 * served) / calls).toFixed(1), output);
  }
  assert.doesNotMatch(done.stdout, /SERVER DIED/, output);
});

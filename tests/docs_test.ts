/**
 * What the documents promise about the code, checked against the code: the
 * shapes and options they show, and doc examples that a reader can run.
 */
import assert from "node:assert/strict";
import { TCPHandler } from "../mod.ts";
import { testHandler } from "../testing.ts";

const ROOT = new URL("../", import.meta.url);
const read = (path: string) => Deno.readTextFile(new URL(path, ROOT));

class Quiet extends TCPHandler {
  execute() {
    return this.success();
  }
}

Deno.test("README: testHandler's return shape names every field it returns", async () => {
  const readme = await read("README.md");
  const shape = readme.match(/`testHandler\([^`]*`[^`]*?returns `\{ ([^}]*) \}`/)?.[1];
  assert.ok(shape, "README says what testHandler returns");
  const run = await testHandler(Quiet, {});
  assert.deepEqual(shape.split(/,\s*/).sort(), Object.keys(run).sort());
});

Deno.test("doc examples import tcpy by a path that resolves, never jsr:@tcpy", async () => {
  const offending: string[] = [];
  for await (const entry of Deno.readDir(ROOT)) {
    if (!entry.isFile || !entry.name.endsWith(".ts")) continue;
    const text = await read(entry.name);
    text.split("\n").forEach((line, i) => {
      if (/^\s*\*.*\bfrom\s+"jsr:@tcpy\//.test(line)) {
        offending.push(`${entry.name}:${i + 1}: ${line.trim()}`);
      }
    });
  }
  assert.deepEqual(offending, []);
});

Deno.test("README: conversations show recv({ timeout }); KV's value limit and lock retries are said", async () => {
  const readme = await read("README.md");
  assert.match(readme, /this\.recv(<[^>]*>)?\(\{ timeout/);
  const kv = readme.slice(readme.indexOf("Deno KV (`await Deno.openKv"));
  assert.match(kv.slice(0, 2_000), /64 KiB/);
  assert.match(kv.slice(0, 2_000), /database is locked/);
  assert.match(kv.slice(0, 2_000), /kv\.atomic\(\)[^\n]*\.commit\(\)/);
});

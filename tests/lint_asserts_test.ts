import assert from "node:assert/strict";
import { consoleAsserts, isLibraryFile } from "../scripts/lint_asserts.ts";

Deno.test("lint_asserts names each console.assert line by file and line number", () => {
  const text =
    'import x from "y";\n * console.assert(x === 1);\nconsole .assert(true);\nassert.ok(x);\n';
  assert.deepEqual(consoleAsserts("a.ts", text), [
    "a.ts:2: * console.assert(x === 1);",
    "a.ts:3: console .assert(true);",
  ]);
  assert.deepEqual(consoleAsserts("b.ts", "assert.equal(1, 1);\n"), []);
});

Deno.test("lint_asserts covers library files and skips tests, bench, tools and examples", () => {
  for (const path of ["mod.ts", "internal/pool.ts", "scripts/compile.ts"]) {
    assert.ok(isLibraryFile(path), path);
  }
  for (
    const path of [
      "codec_test.ts",
      "tests/_helpers.ts",
      "bench/run.ts",
      "tools/soak.ts",
      "examples/demo.ts",
      "README.md",
    ]
  ) {
    assert.ok(!isLibraryFile(path), path);
  }
});

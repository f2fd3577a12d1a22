import assert from "node:assert/strict";
import { checkGraph, describe, importsOf } from "./check_imports.ts";

Deno.test("check_imports reports an import cycle and an internal file importing a facade", () => {
  const graph = new Map([
    ["mod.ts", ["server.ts"]],
    ["server.ts", ["internal/a.ts", "codec.ts"]],
    ["internal/a.ts", ["internal/b.ts"]],
    ["internal/b.ts", ["server.ts", "errors.ts"]],
    ["codec.ts", []],
    ["errors.ts", []],
  ]);
  const problems = checkGraph(graph);
  assert.deepEqual(problems.cycles, [{
    path: ["internal/a.ts", "internal/b.ts", "server.ts", "internal/a.ts"],
    files: ["internal/a.ts", "internal/b.ts", "server.ts"],
  }]);
  assert.deepEqual(problems.facadeImports, [["internal/b.ts", "server.ts"]]);
  const lines = describe(problems);
  assert.equal(lines.length, 2);
  assert.match(lines[0], /^import cycle: internal\/a\.ts -> internal\/b\.ts -> server\.ts/);
  assert.match(lines[1], /^internal\/b\.ts imports the public facade server\.ts/);
});

Deno.test("check_imports reports a facade import that makes no cycle, and a self-import", () => {
  const problems = checkGraph(
    new Map([
      ["internal/x.ts", ["testing.ts", "internal/x.ts"]],
      ["testing.ts", []],
    ]),
  );
  assert.deepEqual(problems.facadeImports, [["internal/x.ts", "testing.ts"]]);
  assert.deepEqual(problems.cycles.map((cycle) => cycle.path), [[
    "internal/x.ts",
    "internal/x.ts",
  ]]);
});

Deno.test("check_imports passes a clean graph", () => {
  const graph = new Map([
    ["mod.ts", ["server.ts", "client.ts"]],
    ["server.ts", ["internal/options.ts", "internal/acceptor.ts"]],
    ["client.ts", ["codec.ts"]],
    ["internal/acceptor.ts", ["internal/options.ts", "codec.ts"]],
    ["internal/options.ts", ["framing.ts"]],
    ["codec.ts", []],
    ["framing.ts", []],
  ]);
  assert.deepEqual(checkGraph(graph), { cycles: [], facadeImports: [] });
  assert.deepEqual(describe(checkGraph(graph)), []);
});

Deno.test("check_imports reads static imports and re-exports, not comments, strings or import()", () => {
  const text = [
    'import assert from "node:assert/strict";',
    'import { a } from "./a.ts";',
    "import type { B } from '../b.ts';",
    "import {",
    "  c,",
    "  type C,",
    '} from "./c.ts";',
    'import "./side.ts";',
    'export * from "./d.ts";',
    'export type { E } from "./e.ts";',
    'export { f } from "jsr:@std/f";',
    "/**",
    " * ```ts",
    ' * import { TCPServer } from "../server.ts";',
    " * ```",
    " */",
    '// import { x } from "./commented.ts";',
    "const text = `",
    'import { y } from "./in_template.ts";',
    "`;",
    'const mod = await import("./dynamic.ts");',
    'export const name = "./not_an_import.ts";',
    "const re = /`/;",
    'import { g } from "./g.ts";',
  ].join("\n");
  assert.deepEqual(importsOf("internal/x.ts", text), [
    "internal/a.ts",
    "b.ts",
    "internal/c.ts",
    "internal/side.ts",
    "internal/d.ts",
    "internal/e.ts",
    "internal/g.ts",
  ]);
});

/**
 * Fails if the project's module graph goes wrong in one of two ways: an
 * import cycle among its files, or a file under `internal/` that imports a
 * public facade (`server.ts`, `client.ts`, `cluster.ts`, `mod.ts`, `cli.ts`,
 * `testing.ts`): internals serve the facades, never the other way round.
 * It reads the static `import … from "…"`, `import "…"` and
 * `export … from "…"` statements (type-only ones included) of every
 * `.ts` file but `*_test.ts`; dynamic `import()` is not followed.
 *
 * ```sh
 * deno run --allow-read scripts/check_imports.ts
 * ```
 *
 * @module
 */

/** The public entry points, relative to the repository root. */
export const FACADES: ReadonlySet<string> = new Set([
  "server.ts",
  "client.ts",
  "cluster.ts",
  "mod.ts",
  "cli.ts",
  "testing.ts",
]);

/** Directories the scan never enters. */
const SKIP_DIRS = new Set(["node_modules", "dist", "coverage"]);

/** What {@linkcode checkGraph} found wrong. */
export interface ImportProblems {
  /**
   * One entry per set of files caught in cycles together (a strongly
   * connected component): one cycle through them, as a path that starts and
   * ends with the same file, and all of its files.
   */
  cycles: { path: string[]; files: string[] }[];
  /** `[importer, facade]` for each internal file that imports a facade. */
  facadeImports: [string, string][];
}

/**
 * Blanks comments and template literals out of TypeScript source, keeping
 * every offset and line break, so that only real statements are left to
 * match. Quoted strings are kept (they hold the specifiers).
 */
function blankNonCode(text: string): string {
  const out = text.split("");
  const blank = (from: number, to: number) => {
    for (let k = from; k < to && k < out.length; k++) if (out[k] !== "\n") out[k] = " ";
  };
  let i = 0;
  let last = ""; // the last significant character, to tell a regex from a division
  while (i < text.length) {
    const c = text[i];
    const next = text[i + 1];
    if (c === "/" && next === "/") {
      const end = text.indexOf("\n", i);
      const stop = end === -1 ? text.length : end;
      blank(i, stop);
      i = stop;
    } else if (c === "/" && next === "*") {
      const end = text.indexOf("*/", i + 2);
      const stop = end === -1 ? text.length : end + 2;
      blank(i, stop);
      i = stop;
    } else if (c === "`") {
      let j = i + 1;
      let depth = 0;
      while (j < text.length && !(text[j] === "`" && depth === 0)) {
        if (text[j] === "\\") j++;
        else if (text[j] === "$" && text[j + 1] === "{") depth++, j++;
        else if (text[j] === "}" && depth > 0) depth--;
        j++;
      }
      blank(i, j + 1);
      i = j + 1;
      last = "`";
    } else if (c === '"' || c === "'") {
      let j = i + 1;
      while (j < text.length && text[j] !== c && text[j] !== "\n") j += text[j] === "\\" ? 2 : 1;
      i = j + 1;
      last = c;
    } else if (c === "/" && (last === "" || "(,=:[!&|?{};+-*%<>~^".includes(last))) {
      // A regular expression literal: may hold quotes and backticks.
      let j = i + 1;
      let inClass = false;
      while (j < text.length && text[j] !== "\n" && (text[j] !== "/" || inClass)) {
        if (text[j] === "\\") j++;
        else if (text[j] === "[") inClass = true;
        else if (text[j] === "]") inClass = false;
        j++;
      }
      blank(i, j + 1);
      i = j + 1;
      last = "/";
    } else {
      if (!/\s/.test(c)) last = c;
      i++;
    }
  }
  return out.join("");
}

const STATEMENT = /^[ \t]*(?:import|export)\b(?:[^;'"`]*?\bfrom)?\s*(["'])([^"'\n]+)\1/gm;

/**
 * The project files a module imports statically, as paths relative to the
 * repository root. Bare, `npm:`, `node:`, `jsr:` and URL specifiers are
 * left out.
 *
 * @param path The importing file, relative to the root (`internal/a.ts`).
 * @param text Its source.
 * @returns The imported files, in order, without repeats.
 */
export function importsOf(path: string, text: string): string[] {
  const code = blankNonCode(text);
  const found = new Set<string>();
  for (const match of code.matchAll(STATEMENT)) {
    const specifier = match[2];
    if (!specifier.startsWith("./") && !specifier.startsWith("../")) continue;
    const base = new URL(path, "file:///root/");
    const target = new URL(specifier, base).pathname;
    if (target.startsWith("/root/")) found.add(target.slice("/root/".length));
  }
  return [...found];
}

/**
 * Checks a module graph: its cycles, and internal files that import a
 * facade. Pure: give it any map of file → imported files.
 *
 * @param graph Each file (relative to the root) and the files it imports.
 * @returns The problems found; both lists are empty for a sound graph.
 */
export function checkGraph(graph: ReadonlyMap<string, readonly string[]>): ImportProblems {
  const facadeImports: [string, string][] = [];
  for (const [file, imports] of graph) {
    if (!file.startsWith("internal/")) continue;
    for (const target of imports) {
      if (FACADES.has(target)) facadeImports.push([file, target]);
    }
  }
  return { cycles: cycles(graph), facadeImports };
}

/** One cycle through each strongly connected component that has one (Tarjan). */
function cycles(
  graph: ReadonlyMap<string, readonly string[]>,
): { path: string[]; files: string[] }[] {
  const edges = (file: string) => (graph.get(file) ?? []).filter((to) => graph.has(to));
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const components: string[][] = [];
  let counter = 0;
  const visit = (file: string) => {
    index.set(file, counter);
    low.set(file, counter);
    counter++;
    stack.push(file);
    onStack.add(file);
    for (const to of edges(file)) {
      if (!index.has(to)) {
        visit(to);
        low.set(file, Math.min(low.get(file)!, low.get(to)!));
      } else if (onStack.has(to)) {
        low.set(file, Math.min(low.get(file)!, index.get(to)!));
      }
    }
    if (low.get(file) === index.get(file)) {
      const component: string[] = [];
      let member: string;
      do {
        member = stack.pop()!;
        onStack.delete(member);
        component.push(member);
      } while (member !== file);
      if (component.length > 1 || edges(file).includes(file)) components.push(component);
    }
  };
  for (const file of [...graph.keys()].sort()) if (!index.has(file)) visit(file);
  return components.map((component) => ({
    path: cycleIn(component, edges),
    files: component.sort(),
  }));
}

/** A shortest cycle through the first (sorted) file of a strongly connected component. */
function cycleIn(component: string[], edges: (file: string) => string[]): string[] {
  const members = new Set(component);
  const start = [...component].sort()[0];
  const previous = new Map<string, string>();
  const queue = [start];
  while (queue.length > 0) {
    const file = queue.shift()!;
    for (const to of edges(file)) {
      if (!members.has(to)) continue;
      if (to === start) {
        const path = [start];
        for (let at = file; at !== start; at = previous.get(at)!) path.splice(1, 0, at);
        return [...path, start];
      }
      if (!previous.has(to)) {
        previous.set(to, file);
        queue.push(to);
      }
    }
  }
  return [start, start]; // unreachable for a real component
}

/**
 * The problems as lines for the terminal.
 *
 * @param problems What {@linkcode checkGraph} found.
 * @returns One line per problem.
 */
export function describe(problems: ImportProblems): string[] {
  return [
    ...problems.cycles.map(({ path, files }) =>
      `import cycle: ${path.join(" -> ")}` +
      (files.length > path.length - 1 ? ` (in a knot of ${files.length}: ${files.join(", ")})` : "")
    ),
    ...problems.facadeImports.map(([file, facade]) =>
      `${file} imports the public facade ${facade} (internal/ must not)`
    ),
  ];
}

/** Every non-test `.ts` file under `root`, relative to it. */
async function sourceFiles(root: URL, dir = ""): Promise<string[]> {
  const files: string[] = [];
  for await (const entry of Deno.readDir(new URL(dir || ".", root))) {
    const path = dir + entry.name;
    if (entry.isDirectory) {
      if (entry.name.startsWith(".") || SKIP_DIRS.has(entry.name)) continue;
      files.push(...await sourceFiles(root, `${path}/`));
    } else if (entry.isFile && path.endsWith(".ts") && !path.endsWith("_test.ts")) {
      files.push(path);
    }
  }
  return files.sort();
}

if (import.meta.main) {
  const root = new URL("../", import.meta.url);
  const graph = new Map<string, string[]>();
  for (const path of await sourceFiles(root)) {
    graph.set(path, importsOf(path, await Deno.readTextFile(new URL(path, root))));
  }
  const lines = describe(checkGraph(graph));
  if (lines.length > 0) {
    console.error(lines.join("\n"));
    console.error(`check_imports: ${lines.length} problem(s) in ${graph.size} files`);
    Deno.exit(1);
  }
  console.log(`check_imports: ${graph.size} files, no import cycle, no facade import in internal/`);
}

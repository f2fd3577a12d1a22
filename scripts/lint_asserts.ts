/**
 * Fails if library code uses the console's assert method, which only prints: a doc
 * example checked with it passes `deno test --doc` whatever the result.
 * Library code is every git-tracked `.ts` file outside tests/, bench/,
 * tools/, examples/ and `*_test.ts`; use `node:assert/strict` there.
 *
 * ```sh
 * deno run --allow-read --allow-run=git scripts/lint_asserts.ts
 * ```
 *
 * @module
 */

/** Paths the check skips: test and tool code, and this file, which names the call. */
const EXEMPT = /^(tests|bench|tools|examples)\/|_test\.ts$|^scripts\/lint_asserts\.ts$/;

const CONSOLE_ASSERT = /\bconsole\s*\.\s*assert\b/;

/**
 * The lines of one file that use the print-only assertion.
 *
 * @param path The file's path, used in the result.
 * @param text The file's contents.
 * @returns One `path:line: text` entry per offending line.
 */
export function consoleAsserts(path: string, text: string): string[] {
  return text.split("\n").flatMap((line, i) =>
    CONSOLE_ASSERT.test(line) ? [`${path}:${i + 1}: ${line.trim()}`] : []
  );
}

/**
 * Whether the check covers a path.
 *
 * @param path A path relative to the repository root.
 * @returns `true` for library `.ts` files.
 */
export function isLibraryFile(path: string): boolean {
  return path.endsWith(".ts") && !EXEMPT.test(path);
}

async function trackedFiles(root: string): Promise<string[]> {
  const { success, stdout } = await new Deno.Command("git", {
    args: ["ls-files", "-z", "--", "*.ts"],
    cwd: root,
    stderr: "inherit",
  }).output();
  if (!success) throw new Error("git ls-files failed");
  return new TextDecoder().decode(stdout).split("\0").filter((p) => p !== "");
}

if (import.meta.main) {
  const root = new URL("../", import.meta.url);
  const found: string[] = [];
  for (const path of (await trackedFiles(root.pathname)).filter(isLibraryFile)) {
    let text: string;
    try {
      text = await Deno.readTextFile(new URL(path, root));
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) continue; // tracked but deleted in the work tree
      throw error;
    }
    found.push(...consoleAsserts(path, text));
  }
  if (found.length > 0) {
    console.error(found.join("\n"));
    console.error(
      `\n${found.length} uses of the console's assert in library code: it only prints. ` +
        `Use node:assert/strict (import assert from "node:assert/strict").`,
    );
    Deno.exit(1);
  }
}

/**
 * Explains a `deno compile` that could not get its `denort` runtime
 * (`deno task compile`, `tcpy compile`).
 *
 * @module
 */

/**
 * What to add when `deno compile` failed to get its `denort` runtime: Deno
 * says only that a request for a URL failed (offline: a DNS error), not what
 * the file is or how to do without the download.
 *
 * @param output What `deno compile` printed (stderr).
 * @param retry The command to run again with `DENORT_BIN` set.
 * @returns The advice, or `undefined` if the failure was something else.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { denortAdvice } from "./denort.ts";
 * const output = "    0: Setting up base binary.\n" +
 *   "    1: error sending request for url (https://dl.deno.land/release/v2.9.6/" +
 *   "denort-x86_64-unknown-linux-gnu.zip): client error (Connect): dns error: " +
 *   "failed to lookup address information: Name or service not known\n";
 * assert.match(denortAdvice(output)!, /could not download the denort runtime/);
 * assert.equal(denortAdvice("error: Module not found"), undefined);
 * ```
 */
export function denortAdvice(output: string, retry = "deno task compile"): string | undefined {
  // deno compile's step that fetches denort (or reads DENORT_BIN).
  if (!output.includes("Setting up base binary")) return undefined;
  const url = output.match(/https?:\/\/[^\s()]+\/denort-[^\s()]+\.zip/)?.[0];
  if (!url) return undefined;
  const cause = output.match(/\): (client error.*|.*error.*)$/m)?.[1]?.trim();
  return [
    `compile: deno compile could not download the denort runtime, the part of Deno that a ` +
    `standalone binary is built on (it is fetched once per Deno version and target, then ` +
    `cached): ${url}${cause ? `: ${cause}` : ""}.`,
    `compile: where that host cannot be reached, get the zip another way, unzip it, and point ` +
    `DENORT_BIN at the denort binary inside; the task passes the environment on:`,
    `compile:   DENORT_BIN=/path/to/denort ${retry}`,
  ].join("\n");
}

/**
 * Runs `deno ARGS` (a `deno compile` command line) in `cwd`, showing Deno's
 * output as it comes and keeping the last 64 KiB of its stderr to explain a
 * failure with {@linkcode denortAdvice}.
 *
 * @returns The exit code and the kept stderr.
 */
export async function runDeno(
  args: string[],
  cwd: string,
): Promise<{ code: number; errors: string }> {
  const child = new Deno.Command(Deno.execPath(), {
    args,
    cwd,
    stdin: "null",
    stdout: "inherit",
    stderr: "piped",
  }).spawn();
  let errors = "";
  const decoder = new TextDecoder();
  for await (const chunk of child.stderr) {
    await Deno.stderr.write(chunk);
    errors = (errors + decoder.decode(chunk, { stream: true })).slice(-65_536);
  }
  const { code } = await child.status;
  return { code, errors };
}

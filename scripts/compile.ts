/**
 * Builds the `tcpy` binary with `deno compile`.
 *
 * ```sh
 * deno task compile                                 # dist/tcpy for this machine
 * deno task compile --target x86_64-apple-darwin    # dist/tcpy-x86_64-apple-darwin
 * deno task compile --output /usr/local/bin/tcpy
 * ```
 *
 * A script rather than a one-line task because `deno compile` bakes every
 * argument after the entry file into the binary: `--target` appended to a
 * task would end up there instead of reaching `deno compile`.
 *
 * The worker entry needs no `--include`: internal/pool.ts imports it
 * statically, so `deno compile` embeds it with the rest of the graph.
 *
 * `deno compile` downloads the `denort` runtime for the target on first use;
 * set `DENORT_BIN` to use one already on disk (the environment is passed on).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** The repository root: `deno compile` runs there so deno.json applies. */
export const ROOT: string = fileURLToPath(new URL("../", import.meta.url));

/** Options of {@linkcode compileArgs}. */
export interface CompileOptions {
  /** A `deno compile --target`, e.g. `x86_64-apple-darwin`; this machine's by default. */
  target?: string;
  /** Where to write the binary (relative to {@linkcode ROOT} or absolute). */
  output?: string;
}

/**
 * Where the binary goes by default: `dist/tcpy`, or `dist/tcpy-TARGET` for
 * a cross-compiled one (`deno compile` adds `.exe` for Windows targets).
 *
 * @param target The `--target`, if any.
 * @returns A path relative to {@linkcode ROOT}.
 */
export function defaultOutput(target?: string): string {
  return target ? `dist/tcpy-${target}` : "dist/tcpy";
}

/**
 * The arguments of `deno compile` that build tcpy, to run in {@linkcode ROOT}.
 *
 * @param options Target and output.
 * @returns The arguments, starting with `compile`.
 */
export function compileArgs(options: CompileOptions = {}): string[] {
  return [
    "compile",
    // Permissions baked into the binary, no wider than tcpy needs:
    // `serve` binds and accepts and `call` connects, to a host and port only
    // known at run time...
    "--allow-net",
    // ...and `serve` reads MODULE from disk (the current directory resolves
    // a relative path; workers import the module too). Nothing else: no env,
    // no write, no run, no ffi, no sys.
    "--allow-read",
    // No `--include` for the worker entry: internal/pool.ts references
    // `./worker.ts` statically (`embedWorker`), so `deno compile` embeds it.
    "--output",
    options.output ?? defaultOutput(options.target),
    ...(options.target ? ["--target", options.target] : []),
    "cli.ts",
  ];
}

const HELP = `Builds the tcpy binary with deno compile.

Usage: deno task compile [--target TARGET] [--output PATH]

  --target TARGET  cross-compile, e.g. x86_64-unknown-linux-gnu, aarch64-unknown-linux-gnu,
                   x86_64-apple-darwin, aarch64-apple-darwin, x86_64-pc-windows-msvc
                   (deno compile --help lists them)
  --output PATH    where to write the binary (default dist/tcpy, or dist/tcpy-TARGET)
  -h, --help       show this help`;

async function main(args: string[]): Promise<number> {
  let values: { target?: string; output?: string; help?: boolean };
  try {
    ({ values } = parseArgs({
      args,
      options: {
        target: { type: "string" },
        output: { type: "string", short: "o" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
    }));
  } catch (error) {
    console.error(`compile: ${(error as Error).message.split("\n", 1)[0]}\n\n${HELP}`);
    return 2;
  }
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const output = values.output === undefined ? undefined : resolve(values.output);
  const compile = compileArgs({ target: values.target, output });
  console.error(`deno ${compile.join(" ")}`);
  const { code } = await new Deno.Command(Deno.execPath(), {
    args: compile,
    cwd: ROOT,
    stdin: "null",
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  return code;
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}

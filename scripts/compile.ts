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
 * Where the download fails (offline, no route to Deno's download host), the
 * script says so after Deno's error, and how to use `DENORT_BIN` instead.
 *
 * The binary's permissions are fixed when it is built: network, read, and
 * the environment variable TCPY_SECRET (the shared secret). `--allow-env`
 * (all variables) or `--allow-env=A,B` (those too) is passed on to
 * `deno compile`, for served modules that read the environment.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { denortAdvice, runDeno } from "../internal/denort.ts";

export { denortAdvice };

/** The repository root: `deno compile` runs there so deno.json applies. */
export const ROOT: string = fileURLToPath(new URL("../", import.meta.url));

/** Options of {@linkcode compileArgs}. */
export interface CompileOptions {
  /** A `deno compile --target`, e.g. `x86_64-apple-darwin`; this machine's by default. */
  target?: string;
  /** Where to write the binary (relative to {@linkcode ROOT} or absolute). */
  output?: string;
  /**
   * Let the binary (and so the modules it serves, and their workers) read
   * environment variables: `true` for all of them, or a comma-separated list
   * of names. Off by default.
   */
  allowEnv?: true | string;
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
 * The `--allow-env` flag of a binary: TCPY_SECRET (the shared secret of
 * `serve` and `call`) always, and the variables asked for.
 *
 * @param allowEnv `true` for every variable, or a comma-separated list.
 * @returns The flag, in a list.
 */
export function allowEnvArgs(allowEnv?: true | string): string[] {
  if (allowEnv === true) return ["--allow-env"];
  const names = new Set(["TCPY_SECRET", ...(allowEnv ? allowEnv.split(",") : [])]);
  return [`--allow-env=${[...names].join(",")}`];
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
    // a relative path; workers import the module too). Nothing else unless
    // asked but TCPY_SECRET: no write, no run, no ffi, no sys.
    "--allow-read",
    // SO_REUSEPORT, so `serve` gets one I/O thread per core.
    "--unstable-net",
    // TCPY_SECRET, the shared secret of `serve` and `call`, and the served
    // module's own needs, which only its user knows.
    ...allowEnvArgs(options.allowEnv),
    // No `--include` for the worker entries: internal/pool.ts and
    // internal/shards.ts reference them statically (`embedWorker`,
    // `embedShard`), so `deno compile` embeds them.
    "--output",
    options.output ?? defaultOutput(options.target),
    ...(options.target ? ["--target", options.target] : []),
    "cli.ts",
  ];
}

const HELP = `Builds the tcpy binary with deno compile.

Usage: deno task compile [--target TARGET] [--output PATH] [--allow-env[=VARS]]

  --target TARGET    cross-compile, e.g. x86_64-unknown-linux-gnu, aarch64-unknown-linux-gnu,
                     x86_64-apple-darwin, aarch64-apple-darwin, x86_64-pc-windows-msvc
                     (deno compile --help lists them)
  --output PATH      where to write the binary (default dist/tcpy, or dist/tcpy-TARGET)
  --allow-env[=VARS] let served modules read the environment: every variable, or only
                     VARS (comma-separated); passed on to deno compile
  -h, --help         show this help

deno compile downloads its denort runtime on first use; offline, set DENORT_BIN
to a denort binary on disk.`;

/**
 * Reads the script's arguments. `--allow-env` is written as Deno writes it,
 * with or without `=VARS`, which `parseArgs` cannot express: it is taken out
 * first.
 *
 * @param args The arguments after the script name.
 * @returns The options, and whether help was asked for.
 * @throws {TypeError} For an unknown option or a missing value (the
 *   `parseArgs` message), or an empty `--allow-env=`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseCompileArgs } from "./compile.ts";
 * assert.deepEqual(parseCompileArgs(["--allow-env=DB_URL,PORT", "-o", "out"]), {
 *   help: false,
 *   options: { allowEnv: "DB_URL,PORT", output: "out", target: undefined },
 * });
 * ```
 */
export function parseCompileArgs(args: string[]): { help: boolean; options: CompileOptions } {
  let allowEnv: true | string | undefined;
  const rest: string[] = [];
  for (const arg of args) {
    if (arg === "--allow-env") allowEnv = true;
    else if (arg.startsWith("--allow-env=")) {
      allowEnv = arg.slice("--allow-env=".length);
      if (!allowEnv) throw new TypeError("--allow-env= needs variable names, or no '='");
    } else rest.push(arg);
  }
  const { values } = parseArgs({
    args: rest,
    options: {
      target: { type: "string" },
      output: { type: "string", short: "o" },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
  });
  return {
    help: values.help ?? false,
    options: { target: values.target, output: values.output, ...(allowEnv && { allowEnv }) },
  };
}

async function main(args: string[]): Promise<number> {
  let parsed: ReturnType<typeof parseCompileArgs>;
  try {
    parsed = parseCompileArgs(args);
  } catch (error) {
    console.error(`compile: ${(error as Error).message.split("\n", 1)[0]}\n\n${HELP}`);
    return 2;
  }
  if (parsed.help) {
    console.log(HELP);
    return 0;
  }
  const { output } = parsed.options;
  const compile = compileArgs({
    ...parsed.options,
    output: output === undefined ? undefined : resolve(output),
  });
  console.error(`deno ${compile.join(" ")}`);
  // Deno's output is shown as it comes, and kept to explain a failure.
  const { code, errors } = await runDeno(compile, ROOT);
  const advice = code === 0 ? undefined : denortAdvice(errors);
  if (advice) console.error(advice);
  return code;
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}

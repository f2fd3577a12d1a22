#!/usr/bin/env -S deno run --allow-net --allow-read
/**
 * The `tcpy` command line program: serve the commands a module exports, or
 * call a command of a running server and print its result as JSON.
 *
 * ```sh
 * deno run --allow-net --allow-read cli.ts serve examples/tutorial_server.ts --port 7272
 * deno run --allow-net --allow-read cli.ts call add x=1 y=2
 * # {"success":true,"solution":3}
 * ```
 *
 * `deno task compile` turns it into the standalone binary `dist/tcpy`. Run
 * `tcpy --help`, `tcpy serve --help` and `tcpy call --help` for every flag,
 * and see docs/cli.md.
 *
 * Exit codes: 0 success; 1 the handler returned an error (`call`) or the
 * server could not start (`serve`); 2 usage error; 3 the call failed
 * (connection refused or lost, unknown command, invalid params, handler
 * crash, timeout, protocol error).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import denoJson from "./deno.json" with { type: "json" };
import { TCPClient, type TCPClientOptions } from "./client.ts";
import { AuthenticationError, TcpyError } from "./errors.ts";
import { DEFAULT_MAX_MESSAGE_BYTES } from "./framing.ts";
import type { Commands } from "./handler.ts";
import {
  type ListenAddress,
  SERVER_DEFAULTS as D,
  TCPServer,
  type TCPServerOptions,
} from "./server.ts";
import { commandsOf, importHandlers, isCommandMap } from "./internal/resolve.ts";
import { denortAdvice, runDeno } from "./internal/denort.ts";

/** The version of tcpy, read from deno.json. */
export const VERSION: string = denoJson.version;

/** Exit codes of the program. */
export const ExitCode = {
  /** Everything went as asked. */
  OK: 0,
  /** `call`: the handler returned an error dictionary; `serve`: the server could not start. */
  FAILURE: 1,
  /** Unknown flag, missing or malformed argument. */
  USAGE: 2,
  /** `call`: the call failed: no connection, unknown command, invalid params, crash, timeout. */
  CALL_FAILED: 3,
} as const;

// ---------------------------------------------------------------------------
// Flag tables: one line per flag. Help text and parsing are derived from them.

/** Keys of `T` whose (non-undefined) values are of type `V`. */
type KeysOfType<T, V> = { [K in keyof T]-?: NonNullable<T[K]> extends V ? K : never }[keyof T];

/** A flag that takes a value (or, `boolean`, none), set on an options object `O`. */
type ValueFlag<O> =
  | { name: string; kind: "integer"; option: KeysOfType<O, number>; value: string; help: string }
  | { name: string; kind: "string"; option: KeysOfType<O, string>; value: string; help: string }
  | { name: string; kind: "boolean"; option: KeysOfType<O, boolean>; value: ""; help: string };

/**
 * `tcpy serve` flags → {@linkcode TCPServerOptions}. A new server option that
 * makes sense on a command line is one more line here; defaults are the
 * server's own (an absent flag passes `undefined`).
 */
const SERVE_FLAGS: readonly ValueFlag<TCPServerOptions>[] = [
  {
    name: "host",
    kind: "string",
    option: "host",
    value: "HOST",
    help: `host name or address to bind (default ${D.host})`,
  },
  {
    name: "port",
    kind: "integer",
    option: "port",
    value: "PORT",
    help: `port to listen on, 0 for any free one (default ${D.port})`,
  },
  {
    name: "threads",
    kind: "integer",
    option: "threads",
    value: "N",
    help: `worker threads running handlers, 0 runs them inline (default ${D.threads})`,
  },
  {
    name: "max-message-bytes",
    kind: "integer",
    option: "maxMessageBytes",
    value: "BYTES",
    help: `largest request line accepted (default ${D.maxMessageBytes})`,
  },
  {
    name: "max-batch-length",
    kind: "integer",
    option: "maxBatchLength",
    value: "N",
    help: `most requests in one JSON-RPC batch (default ${D.maxBatchLength})`,
  },
  {
    name: "grace-period",
    kind: "integer",
    option: "gracePeriod",
    value: "MS",
    help: `how long a stop waits for calls in flight (default ${D.gracePeriod})`,
  },
  {
    name: "io-threads",
    kind: "integer",
    option: "ioThreads",
    value: "N",
    help: "threads serving connections; 0: one per core with a pool (needs --unstable-net)",
  },
  {
    name: "max-reply-bytes",
    kind: "integer",
    option: "maxReplyBytes",
    value: "BYTES",
    help: `largest reply line written (default ${D.maxReplyBytes})`,
  },
  {
    name: "reuse-port",
    kind: "boolean",
    option: "reusePort",
    value: "",
    help: "let several processes listen on PORT (Linux; needs deno run --unstable-net)",
  },
];

/** `tcpy call` flags → {@linkcode TCPClientOptions}. */
const CALL_FLAGS: readonly ValueFlag<TCPClientOptions>[] = [
  {
    name: "host",
    kind: "string",
    option: "host",
    value: "HOST",
    help: `host of the server (default ${D.host})`,
  },
  {
    name: "port",
    kind: "integer",
    option: "port",
    value: "PORT",
    help: `port of the server (default ${D.port})`,
  },
  {
    name: "timeout",
    kind: "integer",
    option: "timeout",
    value: "MS",
    help: "give up after MS milliseconds, connecting included; 0 waits forever (default 0)",
  },
  {
    name: "max-message-bytes",
    kind: "integer",
    option: "maxMessageBytes",
    value: "BYTES",
    help: `largest reply line accepted (default ${DEFAULT_MAX_MESSAGE_BYTES})`,
  },
];

/** A flag handled by the subcommand itself (files, secrets), not copied to an option. */
interface ExtraFlag {
  name: string;
  kind: "string" | "boolean";
  value: string;
  help: string;
}

/** The environment variable that gives `serve` and `call` the shared secret. */
export const SECRET_ENV = "TCPY_SECRET";

const SECRET_FILE_HELP = `read the shared secret from PATH (else from $${SECRET_ENV})`;

/** `tcpy serve` flags for the secret and TLS. */
const SERVE_EXTRA: readonly ExtraFlag[] = [
  // Set by tcpy itself on the run it starts under the module's deno.json; not in the help.
  { name: "under-config", kind: "boolean", value: "", help: "" },
  {
    name: "secret-file",
    kind: "string",
    value: "PATH",
    help: `${SECRET_FILE_HELP}: clients must send it first`,
  },
  {
    name: "tls-cert",
    kind: "string",
    value: "PATH",
    help: "serve over TLS: certificate chain, PEM",
  },
  { name: "tls-key", kind: "string", value: "PATH", help: "serve over TLS: private key, PEM" },
];

/** `tcpy call` flags for the secret and TLS. */
const CALL_EXTRA: readonly ExtraFlag[] = [
  { name: "params", kind: "string", value: "JSON", help: "params as a JSON object" },
  { name: "secret-file", kind: "string", value: "PATH", help: SECRET_FILE_HELP },
  { name: "tls", kind: "boolean", value: "", help: "connect over TLS, trusting the system's CAs" },
  {
    name: "tls-ca",
    kind: "string",
    value: "PATH",
    help: "connect over TLS, also trusting the CA certificate(s) in PATH (PEM)",
  },
];

// ---------------------------------------------------------------------------
// Help texts.

const MAIN_SYNOPSIS = `Usage:
  tcpy serve MODULE [options]                 serve the commands MODULE exports
  tcpy call COMMAND [key=value ...] [options] call a command, print its result as JSON
  tcpy compile MODULE [--output PATH]         build a standalone binary serving MODULE
  tcpy --help | --version | COMMAND --help`;
const MAIN_USAGE = `${MAIN_SYNOPSIS}\nRun "tcpy --help" for more.`;

const SERVE_SYNOPSIS = "Usage: tcpy serve MODULE [options]";
const SERVE_USAGE = `${SERVE_SYNOPSIS}\nRun "tcpy serve --help" for the options.`;
const CALL_SYNOPSIS = "Usage: tcpy call COMMAND [key=value ...] [--params JSON] [options]";
const CALL_USAGE = `${CALL_SYNOPSIS}\nRun "tcpy call --help" for the options.`;

function flagLines(flags: readonly { name: string; value: string; help: string }[]): string {
  const rows = [
    ...flags.map((f) => [`--${f.name} ${f.value}`.trimEnd(), f.help]),
    ["-h, --help", "show this help"],
  ];
  const width = Math.max(...rows.map(([left]) => left.length)) + 2;
  return rows.map(([left, right]) => `  ${left.padEnd(width)}${right}`).join("\n");
}

const MAIN_HELP =
  `tcpy ${VERSION}: command-based TCP servers, JSON-RPC 2.0 with one message per line.

${MAIN_SYNOPSIS}

Options:
  -h, --help     show this help (tcpy serve --help, tcpy call --help for theirs)
  -V, --version  print the version

Exit codes:
  0  success
  1  call: the handler returned an error; serve: the server could not start
  2  usage error (unknown flag, missing or malformed argument)
  3  call: the call failed (no connection, unknown command, invalid params,
     handler crash, timeout, protocol error)`;

const SERVE_HELP = `${SERVE_SYNOPSIS}

Imports MODULE (a path relative to the directory the command was typed in,
or a URL) and serves the commands it offers: its \`commands\` export, else a
default export that maps command names to handler classes, else the commands
of the one TCPServer the module constructs at its top level (that server does
not listen). The server's workers import MODULE too, to find the same handler
classes.

MODULE and its workers run with tcpy's own permissions: network and read.
A module that reads environment variables needs tcpy started with them:
"deno run --allow-net --allow-read --allow-env=VARS cli.ts serve ...", or a
binary built with "deno task compile --allow-env=VARS".

Options:
${flagLines([...SERVE_FLAGS, ...SERVE_EXTRA.filter((f) => f.help)])}

The shared secret is never a command-line value (other users can read the
process list): set ${SECRET_ENV} (readable with --allow-env=${SECRET_ENV}) or
give --secret-file PATH, which wins.

Logs "tcpy listening on HOST:PORT (commands: ...)" on stdout once it listens.
SIGINT or SIGTERM stops it gracefully: calls in flight finish (up to
--grace-period), then it exits with code 0; a second signal exits at once.
Exit code 1 if the module cannot be loaded or the server cannot start, 2 for
usage errors.`;

const CALL_HELP = `${CALL_SYNOPSIS}

Calls COMMAND on a tcpy (or any JSON-RPC 2.0, one message per line) server and
prints its result as one line of JSON on stdout.

Params:
  key=value            one named param; the value is parsed as JSON when it
                       parses (x=1 is a number, ok=true a boolean, o={"a":1} an
                       object), else it is a string (name=Ada). Quote JSON
                       strings to keep them strings: id='"42"'.
  --params JSON        a JSON object of params; key=value pairs override its keys

Options:
${flagLines([...CALL_FLAGS, ...CALL_EXTRA.filter((f) => f.name !== "params")])}

The server's shared secret is never a command-line value (other users can
read the process list): set ${SECRET_ENV} (readable with
--allow-env=${SECRET_ENV}) or give --secret-file PATH, which wins.

Exit codes:
  0  the call succeeded
  1  the handler returned an error ({"error": true, ...}): printed on stdout,
     and its message on stderr
  2  usage error
  3  the call failed: connection refused or lost, unknown command, invalid
     params, handler crash, timeout, protocol error (one line on stderr)`;

// ---------------------------------------------------------------------------
// Plumbing.

/** A failure that ends the program with `code` and a one-line message on stderr. */
class Exit extends Error {
  constructor(readonly code: number, message: string, readonly usage?: string) {
    super(message);
  }
}

function usageError(prefix: string, message: string, usage: string): Exit {
  return new Exit(ExitCode.USAGE, `${prefix}: ${message}`, usage);
}

function firstLine(text: string): string {
  return text.split("\n", 1)[0];
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** The short form of a `parseArgs` error: "Unknown option '--foo'". */
function parseArgsMessage(error: unknown): string {
  const text = firstLine(messageOf(error)).replace(/\. To specify .*$/, "").replace(/\.$/, "");
  return text.charAt(0).toLowerCase() + text.slice(1);
}

type ParsedFlags = Record<string, string | boolean | undefined>;

/** Parses `args` with the given value flags plus `--help`. */
function parse<O>(
  args: string[],
  flags: readonly ValueFlag<O>[],
  extra: readonly ExtraFlag[],
  prefix: string,
  usage: string,
): { values: ParsedFlags; positionals: string[] } {
  const options: Record<string, { type: "string" | "boolean"; short?: string }> = {
    help: { type: "boolean", short: "h" },
    // Parsed only to be refused with a message that says what to use instead.
    secret: { type: "string" },
  };
  for (const flag of extra) options[flag.name] = { type: flag.kind };
  for (const flag of flags) {
    options[flag.name] = { type: flag.kind === "boolean" ? "boolean" : "string" };
  }
  try {
    const { values, positionals } = parseArgs({
      args,
      options,
      allowPositionals: true,
      strict: true,
    });
    return { values: values as ParsedFlags, positionals };
  } catch (error) {
    throw usageError(prefix, parseArgsMessage(error), usage);
  }
}

/** Turns the parsed value flags into an options object. */
function optionsFrom<O>(
  values: ParsedFlags,
  flags: readonly ValueFlag<O>[],
  prefix: string,
  usage: string,
): O {
  const options: Record<string, string | number | boolean> = {};
  for (const flag of flags) {
    const raw = values[flag.name];
    if (flag.kind === "boolean") {
      if (raw === true) options[flag.option as string] = true;
      continue;
    }
    if (typeof raw !== "string") continue;
    if (flag.kind === "string") {
      options[flag.option as string] = raw;
    } else {
      if (!/^\d+$/.test(raw) || !Number.isSafeInteger(Number(raw))) {
        throw usageError(
          prefix,
          `--${flag.name} expects a non-negative integer, got "${raw}"`,
          usage,
        );
      }
      options[flag.option as string] = Number(raw);
    }
  }
  return options as O;
}

/**
 * The directory a relative MODULE is resolved against: the one the command
 * was typed in. `deno task` (like npm) runs a task in the directory of its
 * deno.json and sets INIT_CWD to the directory it was invoked from (unless
 * INIT_CWD is set already: an outer `deno task` or npm script keeps its
 * own), so that is used when set; else the current directory. INIT_CWD is read only with
 * permission to (the `cli` task grants `--allow-env=INIT_CWD`), never with a
 * prompt.
 */
function invocationDir(): string {
  if (Deno.permissions.querySync({ name: "env", variable: "INIT_CWD" }).state === "granted") {
    const dir = Deno.env.get("INIT_CWD");
    if (dir) return dir;
  }
  return Deno.cwd();
}

/** A module argument as a URL: URLs as given, paths resolved against {@linkcode invocationDir}. */
function moduleUrl(specifier: string): string {
  // Two letters at least, so that a Windows path like C:\x is taken as a path.
  if (/^[a-z][a-z\d+.-]+:/i.test(specifier)) return new URL(specifier).href;
  return pathToFileURL(resolve(invocationDir(), specifier)).href;
}

/**
 * Imports `url` and finds the command map it offers. While it imports, a
 * server the module constructs registers itself (and its `listen()` does
 * nothing), exactly as when a worker imports it.
 */
async function loadCommands(url: string): Promise<Commands> {
  const { mod, registry } = await importHandlers(url, "tcpy serve");
  const exported = commandsOf(mod);
  if (exported) return exported;
  const servers = registry.servers.filter((s) => isCommandMap(s.commands));
  if (servers.length === 1) return servers[0].commands;
  if (servers.length > 1) {
    throw new Error(
      `it constructs ${servers.length} servers with commands: export a \`commands\` map to choose`,
    );
  }
  throw new Error(
    "it offers no commands: export `commands` (or a default export) mapping command names " +
      "to TCPHandler classes, or construct a TCPServer with commands at its top level",
  );
}

function formatAddress({ hostname, port }: ListenAddress): string {
  return hostname.includes(":") ? `[${hostname}]:${port}` : `${hostname}:${port}`;
}

/** Whether this program may read `name` from the environment (asked without a prompt). */
function mayReadEnv(name: string): boolean {
  return Deno.permissions.querySync({ name: "env", variable: name }).state === "granted";
}

/**
 * The shared secret: from `--secret-file PATH` (its text without a final
 * line break), else from the environment variable {@linkcode SECRET_ENV} when
 * this program may read it. A secret given as a command-line value is
 * refused: any user of the machine can read a process's arguments.
 */
function secretFrom(values: ParsedFlags, prefix: string, usage: string): string | undefined {
  if (values.secret !== undefined) {
    throw usageError(
      prefix,
      `--secret is not accepted: a command line can be read by other users of the machine. ` +
        `Set ${SECRET_ENV} in the environment (with deno run, grant --allow-env=${SECRET_ENV}) ` +
        `or put the secret in a file and give --secret-file PATH`,
      usage,
    );
  }
  const file = values["secret-file"];
  if (typeof file === "string") {
    let text: string;
    try {
      text = Deno.readTextFileSync(resolve(invocationDir(), file));
    } catch (error) {
      throw usageError(prefix, `cannot read --secret-file ${file}: ${messageOf(error)}`, usage);
    }
    const secret = text.replace(/\r?\n$/, "");
    if (!secret) throw usageError(prefix, `--secret-file ${file} is empty`, usage);
    return secret;
  }
  if (!mayReadEnv(SECRET_ENV)) return undefined;
  const secret = Deno.env.get(SECRET_ENV);
  if (secret === "") throw usageError(prefix, `${SECRET_ENV} is set but empty`, usage);
  return secret;
}

/** A path flag's value resolved against the directory the command was typed in. */
function pathFlag(values: ParsedFlags, name: string): string | undefined {
  const value = values[name];
  return typeof value === "string" ? resolve(invocationDir(), value) : undefined;
}

/** The deno.json or deno.jsonc nearest to `dir` (it or an ancestor), if any. */
export function nearestConfig(dir: string): string | undefined {
  for (let at = dir;; at = dirname(at)) {
    for (const name of ["deno.json", "deno.jsonc"]) {
      const path = join(at, name);
      try {
        if (Deno.statSync(path).isFile) return path;
      } catch {
        // Not here.
      }
    }
    if (dirname(at) === at) return undefined;
  }
}

/**
 * The deno.json this run of tcpy most likely uses: Deno looks for one next to
 * the main module (cli.ts) and up from there. A compiled binary has none.
 */
function configInEffect(): string | undefined {
  const here = new URL(".", import.meta.url);
  return here.protocol === "file:" ? nearestConfig(fileURLToPath(here)) : undefined;
}

/** Whether this is `deno` running cli.ts (not a binary made by `deno compile`). */
function runByDeno(): boolean {
  try {
    return /^deno(\.exe)?$/i.test(Deno.execPath().split(/[\\/]/).pop() ?? "");
  } catch {
    return false;
  }
}

/**
 * The `deno run` flags that give a new run of tcpy the permissions this one
 * has (the ones granted whole, and the variables tcpy reads), plus
 * `--unstable-net`.
 */
function permissionFlags(): string[] {
  const flags = ["--unstable-net"];
  for (const name of ["net", "read", "write", "env", "run", "sys", "ffi", "import"] as const) {
    if (Deno.permissions.querySync({ name }).state === "granted") flags.push(`--allow-${name}`);
  }
  if (!flags.includes("--allow-env")) {
    const vars = ["INIT_CWD", SECRET_ENV].filter(mayReadEnv);
    if (vars.length) flags.push(`--allow-env=${vars.join(",")}`);
  }
  return flags;
}

/** What to type to serve `args` under the project's `config`. */
function commandUnder(config: string, args: string[]): string {
  const cli = fileURLToPath(new URL("./cli.ts", import.meta.url));
  const flags = permissionFlags().filter((f) => f !== "--allow-run");
  const quote = (word: string) =>
    /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, "'\\''")}'`;
  return ["deno", "run", "--config", config, ...flags, cli, "serve", ...args].map(quote).join(" ");
}

/**
 * Runs `tcpy serve ARGS` again as a child `deno run --config CONFIG`, with
 * the same permissions, passing SIGINT and SIGTERM on, and resolves with its
 * exit code.
 */
async function serveUnder(config: string, args: string[]): Promise<number> {
  const cli = fileURLToPath(new URL("./cli.ts", import.meta.url));
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--config",
      config,
      ...permissionFlags(),
      cli,
      "serve",
      ...args,
      "--under-config",
    ],
    cwd: invocationDir(),
    stdin: "inherit",
    stdout: "inherit",
    stderr: "inherit",
    // Its own process group: a Ctrl-C reaches it once, from here.
    detached: true,
  }).spawn();
  const forwarded: [Deno.Signal, () => void][] = [];
  for (const signal of SIGNALS) {
    const listener = () => {
      try {
        child.kill(signal);
      } catch {
        // It has exited.
      }
    };
    try {
      Deno.addSignalListener(signal, listener);
      forwarded.push([signal, listener]);
    } catch {
      // This platform does not have that signal.
    }
  }
  try {
    const status = await child.status;
    return status.signal ? SIGNAL_EXIT[status.signal] ?? ExitCode.FAILURE : status.code;
  } finally {
    for (const [signal, listener] of forwarded) Deno.removeSignalListener(signal, listener);
  }
}

const SIGNALS: readonly Deno.Signal[] = ["SIGINT", "SIGTERM"];
const SIGNAL_EXIT: Partial<Record<Deno.Signal, number>> = { SIGINT: 130, SIGTERM: 143 };

// ---------------------------------------------------------------------------
// Subcommands.

async function serve(args: string[]): Promise<number> {
  const prefix = "tcpy serve";
  const { values, positionals } = parse(args, SERVE_FLAGS, SERVE_EXTRA, prefix, SERVE_USAGE);
  if (values.help) {
    console.log(SERVE_HELP);
    return ExitCode.OK;
  }
  if (positionals.length === 0) throw usageError(prefix, "missing MODULE", SERVE_USAGE);
  if (positionals.length > 1) {
    throw usageError(prefix, `unexpected argument "${positionals[1]}"`, SERVE_USAGE);
  }
  const options = optionsFrom(values, SERVE_FLAGS, prefix, SERVE_USAGE);
  const secret = secretFrom(values, prefix, SERVE_USAGE);
  if (secret !== undefined) options.secret = secret;
  const certFile = pathFlag(values, "tls-cert");
  const keyFile = pathFlag(values, "tls-key");
  if ((certFile === undefined) !== (keyFile === undefined)) {
    throw usageError(prefix, "--tls-cert and --tls-key go together", SERVE_USAGE);
  }
  if (certFile !== undefined && keyFile !== undefined) options.tls = { certFile, keyFile };
  const specifier = positionals[0];
  let url: string;
  try {
    url = moduleUrl(specifier);
  } catch (error) {
    throw usageError(prefix, `bad MODULE "${specifier}": ${messageOf(error)}`, SERVE_USAGE);
  }

  // The module's own deno.json (import map, "unstable": ["kv"], ...) applies
  // only if Deno runs under it: Deno found the one next to cli.ts.
  const project = url.startsWith("file:") && values["under-config"] !== true && runByDeno()
    ? nearestConfig(dirname(fileURLToPath(url)))
    : undefined;
  const otherConfig = project !== undefined && project !== configInEffect() ? project : undefined;
  if (otherConfig !== undefined) {
    const run = Deno.permissions.querySync({ name: "run", command: Deno.execPath() });
    if (run.state === "granted") return await serveUnder(otherConfig, args);
  }

  let commands: Commands;
  try {
    commands = await loadCommands(url);
  } catch (error) {
    const hint = otherConfig === undefined ? "" : `\n${prefix}: ${specifier} belongs to the ` +
      `project of ${otherConfig}, whose import map and settings this run does not use ` +
      `(Deno reads the deno.json next to cli.ts). Run it under that file:\n  ` +
      commandUnder(otherConfig, args) +
      `\n${prefix}: or grant --allow-run, and tcpy serve starts itself that way.`;
    throw new Exit(
      ExitCode.FAILURE,
      `${prefix}: cannot serve ${specifier}: ${messageOf(error)}${hint}`,
    );
  }
  if (otherConfig !== undefined) {
    console.error(
      `${prefix}: note: ${otherConfig} is not in effect (grant --allow-run, or run: ` +
        `${commandUnder(otherConfig, args)})`,
    );
  }

  let server: TCPServer;
  try {
    server = new TCPServer({
      ...options,
      commands,
      module: url,
      onListen(address) {
        console.log(
          `tcpy listening on ${formatAddress(address)} (commands: ${
            Object.keys(commands).join(", ")
          })`,
        );
      },
    });
  } catch (error) {
    // The server checks the ranges of its options.
    throw usageError(prefix, firstLine(messageOf(error)), SERVE_USAGE);
  }

  // Listen to signals before starting, so a signal during the workers'
  // start-up also stops the server cleanly.
  const stop = Promise.withResolvers<Deno.Signal>();
  let stopping: Deno.Signal | undefined;
  const listeners: [Deno.Signal, () => void][] = [];
  for (const signal of SIGNALS) {
    const listener = () => {
      if (stopping) {
        console.error(`tcpy: ${signal} again: exiting without waiting`);
        Deno.exit(SIGNAL_EXIT[signal] ?? ExitCode.FAILURE);
      }
      stopping = signal;
      stop.resolve(signal);
    };
    try {
      Deno.addSignalListener(signal, listener);
      listeners.push([signal, listener]);
    } catch {
      // This platform does not have that signal (SIGTERM on Windows).
    }
  }
  const removeListeners = () => {
    for (const [signal, listener] of listeners) Deno.removeSignalListener(signal, listener);
  };

  try {
    await server.listen();
  } catch (error) {
    removeListeners();
    await server.close();
    throw new Exit(ExitCode.FAILURE, `${prefix}: cannot start: ${firstLine(messageOf(error))}`);
  }
  if (secret === undefined && !mayReadEnv(SECRET_ENV)) {
    console.error(
      `${prefix}: note: no secret; ${SECRET_ENV} is not read without --allow-env=${SECRET_ENV}`,
    );
  }
  const signal = await stop.promise;
  console.error(
    `tcpy: ${signal} received: finishing the calls in flight (up to ${
      options.gracePeriod ?? D.gracePeriod
    } ms)`,
  );
  await server.close();
  removeListeners();
  console.error("tcpy: stopped");
  return ExitCode.OK;
}

/** A `key=value` value: JSON if it parses, else the text itself. */
function paramValue(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function isHandlerError(result: unknown): result is { error: true; message?: unknown } {
  return typeof result === "object" && result !== null && !Array.isArray(result) &&
    (result as { error?: unknown }).error === true;
}

async function call(args: string[]): Promise<number> {
  const prefix = "tcpy call";
  const { values, positionals } = parse(args, CALL_FLAGS, CALL_EXTRA, prefix, CALL_USAGE);
  if (values.help) {
    console.log(CALL_HELP);
    return ExitCode.OK;
  }
  const [command, ...pairs] = positionals;
  if (command === undefined) throw usageError(prefix, "missing COMMAND", CALL_USAGE);
  const options = optionsFrom(values, CALL_FLAGS, prefix, CALL_USAGE);
  const secret = secretFrom(values, prefix, CALL_USAGE);
  if (secret !== undefined) options.secret = secret;
  const caFile = pathFlag(values, "tls-ca");
  if (caFile !== undefined) options.tls = { caFile };
  else if (values.tls === true) options.tls = true;

  let params: Record<string, unknown> = {};
  if (typeof values.params === "string") {
    let parsed: unknown;
    try {
      parsed = JSON.parse(values.params);
    } catch (error) {
      throw usageError(prefix, `--params is not JSON: ${messageOf(error)}`, CALL_USAGE);
    }
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
      throw usageError(prefix, "--params must be a JSON object", CALL_USAGE);
    }
    params = parsed as Record<string, unknown>;
  }
  for (const pair of pairs) {
    const at = pair.indexOf("=");
    if (at <= 0) {
      throw usageError(prefix, `expected key=value, got "${pair}"`, CALL_USAGE);
    }
    // defineProperty: a "__proto__" key is a param like any other.
    Object.defineProperty(params, pair.slice(0, at), {
      value: paramValue(pair.slice(at + 1)),
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }

  let client: TCPClient;
  try {
    client = new TCPClient(options);
  } catch (error) {
    throw usageError(prefix, firstLine(messageOf(error)), CALL_USAGE);
  }
  let result: unknown;
  try {
    result = await client.execute(command, params);
  } catch (error) {
    const where = `${options.host ?? D.host}:${options.port ?? D.port}`;
    let detail = error instanceof TcpyError
      ? `${firstLine(error.message)} (${error.name}, code ${error.code})`
      : firstLine(messageOf(error));
    if (error instanceof AuthenticationError && secret === undefined) {
      detail += mayReadEnv(SECRET_ENV)
        ? `; the server wants a secret: set ${SECRET_ENV} or give --secret-file PATH`
        : `; the server wants a secret: give --secret-file PATH, or set ${SECRET_ENV} and ` +
          `grant --allow-env=${SECRET_ENV}`;
    }
    throw new Exit(ExitCode.CALL_FAILED, `${prefix}: ${command} on ${where} failed: ${detail}`);
  } finally {
    await client.disconnect();
  }
  console.log(JSON.stringify(result) ?? "null");
  if (isHandlerError(result)) {
    const message = typeof result.message === "string" ? result.message : "(no message)";
    console.error(`${prefix}: ${command} returned an error: ${firstLine(message)}`);
    return ExitCode.FAILURE;
  }
  return ExitCode.OK;
}

/** What {@linkcode compileModuleArgs} builds a binary from. */
export interface CompileModuleOptions {
  /** The generated entry file (absolute path). */
  entry: string;
  /** The served module (absolute path). */
  module: string;
  /** Where to write the binary. */
  output: string;
  /** The module's project deno.json, if any: its import map and settings apply. */
  config?: string;
}

/**
 * The `deno compile` arguments of `tcpy compile`: the permissions `tcpy
 * serve` needs (network, read, the TCPY_SECRET variable), `--unstable-net`
 * for I/O threads, the module's deno.json, and `--include` for the module
 * and tcpy's worker entries, which workers load by URL.
 *
 * @param options Entry, module, output and config.
 * @returns The arguments, starting with `compile`.
 */
export function compileModuleArgs(options: CompileModuleOptions): string[] {
  const internal = (name: string) => fileURLToPath(new URL(`./internal/${name}`, import.meta.url));
  return [
    "compile",
    "--allow-net",
    "--allow-read",
    `--allow-env=${SECRET_ENV}`,
    "--unstable-net",
    ...(options.config ? ["--config", options.config] : ["--no-config"]),
    "--include",
    internal("worker.ts"),
    "--include",
    internal("shard.ts"),
    "--include",
    options.module,
    "--output",
    options.output,
    options.entry,
  ];
}

/** The entry of a `tcpy compile` binary: `tcpy serve MODULE ARGS`, MODULE embedded. */
export function compileEntry(entryDir: string, module: string): string {
  const cli = new URL("./cli.ts", import.meta.url).href;
  let path = relative(entryDir, module).split("\\").join("/");
  if (!path.startsWith(".")) path = `./${path}`;
  return [
    "// Generated by tcpy compile: serves the module below, embedded in the binary.",
    `import { main } from ${JSON.stringify(cli)};`,
    `import ${JSON.stringify(path)};`,
    `const module = new URL(${JSON.stringify(path)}, import.meta.url).href;`,
    `Deno.exit(await main(["serve", module, ...Deno.args]));`,
    "",
  ].join("\n");
}

const COMPILE_HELP = `Usage: tcpy compile MODULE [--output PATH]

Builds a standalone binary that serves MODULE: running it is "tcpy serve
MODULE" with its options (--port, --threads, --secret-file, ...). MODULE,
its imports (resolved with its project's deno.json, if it has one) and
tcpy's worker entries are embedded. The binary may use the network, read
files and read TCPY_SECRET.

Options:
  --output PATH  where to write the binary (default: MODULE's name, no extension)
  -h, --help     show this help

Needs tcpy started with --allow-run and --allow-write. deno compile downloads
its denort runtime on first use; offline, set DENORT_BIN to a denort binary.`;

async function compile(args: string[]): Promise<number> {
  const prefix = "tcpy compile";
  const usage = `Usage: tcpy compile MODULE [--output PATH]\nRun "tcpy compile --help" for more.`;
  const extra: ExtraFlag[] = [{ name: "output", kind: "string", value: "PATH", help: "" }];
  const { values, positionals } = parse(args, [], extra, prefix, usage);
  if (values.help) {
    console.log(COMPILE_HELP);
    return ExitCode.OK;
  }
  if (positionals.length !== 1) {
    throw usageError(prefix, positionals.length ? "one MODULE only" : "missing MODULE", usage);
  }
  const module = resolve(invocationDir(), positionals[0]);
  const output = typeof values.output === "string"
    ? resolve(invocationDir(), values.output)
    : module.replace(/\.[cm]?[jt]sx?$/, "");
  for (const name of ["run", "write"] as const) {
    if (Deno.permissions.querySync({ name }).state !== "granted") {
      throw new Exit(
        ExitCode.FAILURE,
        `${prefix}: needs --allow-${name} (it runs deno compile on a generated entry file)`,
      );
    }
  }
  const dir = await Deno.makeTempDir({ prefix: "tcpy-compile-" });
  try {
    const entry = join(dir, "main.ts");
    await Deno.writeTextFile(entry, compileEntry(dir, module));
    const compileArgs = compileModuleArgs({
      entry,
      module,
      output,
      config: nearestConfig(dirname(module)),
    });
    console.error(`deno ${compileArgs.join(" ")}`);
    const { code, errors } = await runDeno(compileArgs, invocationDir());
    if (code === 0) return ExitCode.OK;
    const advice = denortAdvice(errors, `tcpy compile ${args.join(" ")}`);
    throw new Exit(
      ExitCode.FAILURE,
      advice?.replaceAll("compile: ", `${prefix}: `) ??
        `${prefix}: deno compile failed (exit code ${code})`,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

// ---------------------------------------------------------------------------

/**
 * Runs the program with `args` (without the program name) and resolves with
 * its exit code. Output goes to stdout and stderr; `serve` resolves only
 * once the server was stopped by SIGINT or SIGTERM.
 *
 * @param args The command line arguments, e.g. `["call", "add", "x=1", "y=2"]`.
 * @returns The exit code: see {@linkcode ExitCode}.
 *
 * @example
 * ```ts ignore
 * import { main } from "@tcpy/tcpy/cli";
 * Deno.exit(await main(["call", "add", "x=1", "y=2", "--port", "7272"]));
 * ```
 */
export async function main(args: string[]): Promise<number> {
  const [first, ...rest] = args;
  try {
    switch (first) {
      case "serve":
        return await serve(rest);
      case "call":
        return await call(rest);
      case "compile":
        return await compile(rest);
      case "help":
        if (rest[0] === "serve") console.log(SERVE_HELP);
        else if (rest[0] === "call") console.log(CALL_HELP);
        else if (rest[0] === "compile") console.log(COMPILE_HELP);
        else console.log(MAIN_HELP);
        return ExitCode.OK;
      case "-h":
      case "--help":
        console.log(MAIN_HELP);
        return ExitCode.OK;
      case "-V":
      case "--version":
        console.log(`tcpy ${VERSION}`);
        return ExitCode.OK;
      case undefined:
        throw usageError("tcpy", "missing command", MAIN_USAGE);
      default:
        throw usageError(
          "tcpy",
          first.startsWith("-") ? `unknown option "${first}"` : `unknown command "${first}"`,
          MAIN_USAGE,
        );
    }
  } catch (error) {
    if (!(error instanceof Exit)) throw error;
    console.error(error.message);
    if (error.usage) console.error(error.usage);
    return error.code;
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}

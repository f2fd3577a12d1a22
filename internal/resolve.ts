/**
 * Finds handler classes in a module, by command name and class name. A
 * worker uses it to rebuild the server's command map from the module the
 * server was defined in (no second file for the user); the CLI uses it to
 * load a handler module.
 *
 * @module
 */

import type { Commands, HandlerClass } from "../handler.ts";

/**
 * Set on `globalThis` while a worker imports the user's module: servers
 * constructed then register here instead of listening. A global symbol, so
 * any copy of tcpy the module imports sees it.
 */
export const LOADING: unique symbol = Symbol.for("tcpy.loading") as never;

/** What a worker collects while it imports the user's module. */
export interface LoadingRegistry {
  /** The URL of the module being imported, for error messages. */
  module: string;
  /** Every server constructed during the import, in order. */
  servers: { commands: Commands }[];
}

/** The registry if this thread is importing a module for a worker. */
export function loadingRegistry(): LoadingRegistry | undefined {
  return (globalThis as { [LOADING]?: LoadingRegistry })[LOADING];
}

/**
 * Imports a handler module the way a worker must: servers it constructs at
 * its top level register in the returned registry, and their `listen()`
 * does nothing. Used by the worker entry and by the CLI.
 *
 * @param url The module's URL.
 * @param importer Who imports it, for the error message: "a worker", "tcpy serve".
 * @throws {Error} If the module's top-level code throws: the message names
 *   the module and says to start the server under `if (import.meta.main)`,
 *   the usual cause (see {@linkcode importFailure}). A module that cannot be
 *   loaded at all (not found, a syntax error) rejects with Deno's own error.
 */
export async function importHandlers(
  url: string,
  importer = "a worker",
): Promise<{ mod: Record<string, unknown>; registry: LoadingRegistry }> {
  const global = globalThis as { [LOADING]?: LoadingRegistry };
  const registry: LoadingRegistry = { module: url, servers: [] };
  const previous = global[LOADING];
  global[LOADING] = registry;
  try {
    return { mod: await import(url), registry };
  } catch (error) {
    throw importFailure(url, importer, error);
  } finally {
    if (previous) global[LOADING] = previous;
    else delete global[LOADING];
  }
}

/**
 * What to report when importing a handler module failed. A module that Deno
 * could not load (not found, a syntax error: code `ERR_MODULE_NOT_FOUND`)
 * keeps Deno's error, which says so. Anything else was thrown by the
 * module's top-level code, and the usual reason is a script that starts its
 * server, or calls it with a client, outside `if (import.meta.main)`: every
 * worker imports the module and runs that code again (where `listen()` does
 * nothing, so the client finds no server).
 *
 * @param url The module's URL.
 * @param importer Who imported it: "a worker", "tcpy serve".
 * @param error What the import rejected with.
 * @returns The error to throw instead (the original is its `cause`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { importFailure } from "./resolve.ts";
 * const refused = new Error("Connection refused (os error 111)");
 * const error = importFailure("file:///app/main.ts", "a worker", refused) as Error;
 * assert.match(error.message, /^while a worker imported file:\/\/\/app\/main\.ts, its top-level/);
 * assert.match(error.message, /under if \(import\.meta\.main\)$/);
 * ```
 */
export function importFailure(url: string, importer: string, error: unknown): unknown {
  if ((error as { code?: unknown } | null)?.code === "ERR_MODULE_NOT_FOUND") return error;
  const message = error instanceof Error ? error.message : String(error);
  return new Error(
    `while ${importer} imported ${url}, its top-level code threw: ${message}; ` +
      "put the server's start (listen() and any client code) under if (import.meta.main)",
    { cause: error },
  );
}

/** Whether `value` looks like a handler class (works across copies of tcpy). */
export function isHandlerClass(value: unknown): value is HandlerClass {
  return typeof value === "function" &&
    typeof (value as { prototype?: { execute?: unknown } }).prototype?.execute === "function";
}

/** Whether `value` is a plain object whose own values are all handler classes. */
export function isCommandMap(value: unknown): value is Commands {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return false;
  const entries = Object.values(value);
  return entries.length > 0 && entries.every(isHandlerClass);
}

/**
 * The command map a module offers: its `commands` export, else its default
 * export if that is a command map.
 */
export function commandsOf(mod: Record<string, unknown>): Commands | undefined {
  if (isCommandMap(mod.commands)) return mod.commands;
  if (isCommandMap(mod.default)) return mod.default;
  return undefined;
}

/**
 * Rebuilds a command map: for each command, a class with the wanted name
 * mapped to that command by a server built during import or by the module's
 * command map, else an exported class with that name.
 *
 * @throws {Error} Naming every command it could not find, the module it
 *   searched, and how to point the workers at another module.
 */
export function resolveCommands(
  mod: Record<string, unknown>,
  registry: LoadingRegistry,
  wanted: Record<string, string>,
): Map<string, HandlerClass> {
  const maps: Commands[] = registry.servers.map((s) => s.commands).filter(isCommandMap);
  const exported = commandsOf(mod);
  if (exported) maps.push(exported);
  const resolved = new Map<string, HandlerClass>();
  const missing: string[] = [];
  for (const [command, className] of Object.entries(wanted)) {
    let found: HandlerClass | undefined;
    for (const map of maps) {
      const cls = Object.hasOwn(map, command) ? map[command] : undefined;
      if (cls && cls.name === className) {
        found = cls;
        break;
      }
    }
    if (!found) {
      const named = Object.hasOwn(mod, className) ? mod[className] : undefined;
      if (isHandlerClass(named)) found = named;
    }
    if (found) resolved.set(command, found);
    else missing.push(`${command} (${className})`);
  }
  if (missing.length > 0) {
    throw new Error(
      `Cannot find handler classes for ${missing.join(", ")} in ${registry.module}, the ` +
        "module the workers import to find them (the server's `module` option, by default the " +
        "main module): construct the server with its commands at the top level of that " +
        "module, export the classes, or export a `commands` map; if the classes are defined " +
        'in another file, pass that file: module: new URL("./handlers.ts", import.meta.url)',
    );
  }
  return resolved;
}

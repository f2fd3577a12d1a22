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
 */
export async function importHandlers(
  url: string,
): Promise<{ mod: Record<string, unknown>; registry: LoadingRegistry }> {
  const global = globalThis as { [LOADING]?: LoadingRegistry };
  const registry: LoadingRegistry = { servers: [] };
  const previous = global[LOADING];
  global[LOADING] = registry;
  try {
    return { mod: await import(url), registry };
  } finally {
    if (previous) global[LOADING] = previous;
    else delete global[LOADING];
  }
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
 * @throws {Error} Naming every command it could not find.
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
      `Cannot find handler classes for ${missing.join(", ")}: define the server and its ` +
        "commands at the top level of the module, export the classes, or export a `commands` map",
    );
  }
  return resolved;
}

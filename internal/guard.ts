/**
 * Keeps handlers' stray failures from ending the process. A handler may leave
 * a rejected promise nobody awaits, or throw from a timer callback; by
 * default either ends a Deno process (and, in a Web Worker, takes the
 * worker's other calls with it). A serving thread logs them instead.
 *
 * @module
 */

import { describe } from "./run_handler.ts";

const installed = Symbol.for("tcpy.guard");

/**
 * Installs, once per thread, listeners that report unhandled rejections
 * (and, with `errors`, uncaught errors) on stderr and keep the thread
 * running. A pool worker leaves uncaught errors alone: the pool replaces a
 * worker that had one, which is safer than running on in an unknown state.
 */
export function guardThread(errors = true): void {
  const global = globalThis as { [installed]?: boolean };
  if (global[installed]) return;
  global[installed] = true;
  globalThis.addEventListener("unhandledrejection", (event) => {
    event.preventDefault();
    report("a promise was rejected and nobody handled it", event.reason);
  });
  if (!errors) return;
  globalThis.addEventListener("error", (event) => {
    event.preventDefault();
    report("an error was thrown outside any call", event.error ?? event.message);
  });
}

function report(what: string, reason: unknown): void {
  let stack: string | undefined;
  try {
    stack = reason instanceof Error ? reason.stack : undefined;
  } catch {
    // A revoked Proxy: described below.
  }
  const { name, message } = describe(reason);
  console.error(`tcpy: ${what} (kept serving): ${stack ?? `${name}: ${message}`}`);
}

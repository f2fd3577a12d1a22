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

/** Servers (or worker threads) now serving; the listeners stand aside at 0. */
let serving = 0;

/**
 * Installs, once per thread, listeners that report unhandled rejections
 * (and, with `errors`, uncaught errors) on stderr and keep the thread
 * running while at least one guard is held (call the returned function to
 * release it). A pool worker leaves uncaught errors alone: the pool replaces a
 * worker that had one, which is safer than running on in an unknown state.
 */
export function guardThread(errors = true): () => void {
  serving++;
  let released = false;
  const release = () => {
    if (!released) serving--;
    released = true;
  };
  const global = globalThis as { [installed]?: boolean };
  if (global[installed]) return release;
  global[installed] = true;
  globalThis.addEventListener("unhandledrejection", (event) => {
    // Before a server listens (a failed listen(), say) and after it closed,
    // a rejection is the program's own: let Deno report it and exit.
    if (serving === 0) return;
    event.preventDefault();
    report("a promise was rejected and nobody handled it", event.reason);
  });
  if (!errors) return release;
  globalThis.addEventListener("error", (event) => {
    if (serving === 0) return;
    event.preventDefault();
    report("an error was thrown outside any call", event.error ?? event.message);
  });
  return release;
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

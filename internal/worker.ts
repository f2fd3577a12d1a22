/**
 * Worker entry: the pool starts each worker on this file. The body is
 * `serveWorker` (serve_worker.ts); the worker's global scope is typed by
 * hand, as JSR refuses `/// <reference lib="deno.worker" />`, which would
 * change globals for users.
 *
 * @module
 */

import { guardThread } from "./guard.ts";
import { serveWorker } from "./serve_worker.ts";
import type { WorkerScope } from "./worker_messages.ts";

guardThread(false);
serveWorker(globalThis as unknown as WorkerScope, Deno);

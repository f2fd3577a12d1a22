/**
 * A key-value store in a module-level `Map`, served with the defaults
 * (a pool of worker threads, I/O threads on every core). Every command is
 * `static shared`: they all run on the server's one home thread, so the
 * `Map` is one map for every client, and `incr`'s read-change-write is
 * never interleaved with another call's.
 *
 * Run: `deno task cli serve examples/kv_store.ts --port 7373`, then
 * `deno task cli call incr '{"key":"hits"}' --port 7373`.
 *
 * Commands:
 * - `set {key, value}` → `{success: true}`
 * - `get {key}` → `{success: true, value}` (`value: null` when absent)
 * - `delete {key}` → `{success: true, deleted: boolean}`
 * - `incr {key, by?}` → `{success: true, value}` (a missing key counts from 0)
 */
import { InvalidParamsError, TCPHandler, TCPServer } from "../mod.ts";

const store = new Map<string, unknown>();

function keyOf(params: { key?: unknown }): string {
  if (typeof params.key !== "string") throw new InvalidParamsError("key must be a string");
  return params.key;
}

export class SetHandler extends TCPHandler<{ key: string; value: unknown }> {
  static override readonly shared = true;
  execute() {
    store.set(keyOf(this.params), this.params.value ?? null);
    return this.success({});
  }
}

export class GetHandler extends TCPHandler<{ key: string }> {
  static override readonly shared = true;
  execute() {
    return this.success({ value: store.get(keyOf(this.params)) ?? null });
  }
}

export class DeleteHandler extends TCPHandler<{ key: string }> {
  static override readonly shared = true;
  execute() {
    return this.success({ deleted: store.delete(keyOf(this.params)) });
  }
}

export class IncrHandler extends TCPHandler<{ key: string; by?: number }> {
  static override readonly shared = true;
  execute() {
    const key = keyOf(this.params);
    const by = this.params.by ?? 1;
    if (typeof by !== "number" || !Number.isFinite(by)) {
      throw new InvalidParamsError("by must be a finite number");
    }
    const current = store.get(key) ?? 0;
    if (typeof current !== "number") throw new InvalidParamsError(`${key} holds no number`);
    store.set(key, current + by);
    return this.success({ value: current + by });
  }
}

export const commands = {
  set: SetHandler,
  get: GetHandler,
  delete: DeleteHandler,
  incr: IncrHandler,
};

export const server = new TCPServer({ port: 7373 });
server.commands = commands;

if (import.meta.main) {
  await server.listen();
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(signal, () => server.close());
  }
}

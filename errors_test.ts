import assert from "node:assert/strict";
import * as errors from "./errors.ts";
import { ERROR_CLASSES, ErrorCode, fromWireError, TcpyError } from "./errors.ts";

Deno.test("every error class survives its wire form as the same class, code, message and data", () => {
  for (const cls of ERROR_CLASSES) {
    for (const data of [undefined, { detail: cls.name }]) {
      const error = new cls(`${cls.name} happened`, { data });
      assert.equal(error.code, cls.code, cls.name);
      const back = fromWireError(JSON.parse(JSON.stringify(error.toWire())));
      assert.equal(back.constructor, cls, cls.name);
      assert.equal(back.name, cls.name);
      assert.equal(back.code, cls.code, cls.name);
      assert.equal(back.message, error.message);
      assert.deepEqual(back.data, data, cls.name);
      assert.ok(back instanceof TcpyError && back instanceof Error, cls.name);
    }
  }
});

Deno.test("error classes have unique codes, one for each ErrorCode but HANDLER_ERROR", () => {
  const codes = ERROR_CLASSES.map((cls) => cls.code);
  assert.equal(new Set(codes).size, codes.length);
  const expected = Object.values(ErrorCode).filter((c) => c !== ErrorCode.HANDLER_ERROR);
  const byValue = (a: number, b: number) => a - b;
  assert.deepEqual([...codes].sort(byValue), [...expected].sort(byValue));
});

Deno.test("ERROR_CLASSES lists every error class errors.ts exports", () => {
  const exported = Object.values(errors).filter((value): value is typeof TcpyError =>
    typeof value === "function" && value.prototype instanceof TcpyError
  );
  assert.deepEqual(
    exported.map((cls) => cls.name).sort(),
    ERROR_CLASSES.map((cls) => cls.name).sort(),
  );
});

Deno.test("an unknown code becomes a plain TcpyError with that code", () => {
  const error = fromWireError({ code: 42, message: "app" });
  assert.equal(error.constructor, TcpyError);
  assert.equal(error.code, 42);
});

/** JSON-RPC 2.0's own codes: -32768 to -32000 is reserved, and only these are defined in it. */
const JSON_RPC_CODES: Record<number, string> = {
  [-32700]: "PARSE_ERROR",
  [-32600]: "INVALID_REQUEST",
  [-32601]: "METHOD_NOT_FOUND",
  [-32602]: "INVALID_PARAMS",
  [-32603]: "INTERNAL_ERROR",
};

/**
 * What is wrong with a table of codes: a code in JSON-RPC's reserved range
 * (-32768 to -32000) that is neither one of its own, under its name, nor in
 * the part left to implementations (-32099 to -32000); or a code used twice.
 */
function misplacedCodes(codes: Readonly<Record<string, number>>): string[] {
  const wrong: string[] = [];
  const seen = new Map<number, string>();
  for (const [name, code] of Object.entries(codes)) {
    const reserved = code >= -32768 && code <= -32000;
    const ours = code >= -32099 && code <= -32000;
    if (reserved && !ours && JSON_RPC_CODES[code] !== name) {
      wrong.push(`${name} ${code} is in JSON-RPC's reserved range`);
    }
    if (seen.has(code)) wrong.push(`${name} ${code} is also ${seen.get(code)}`);
    seen.set(code, name);
  }
  return wrong;
}

Deno.test("ErrorCode keeps JSON-RPC's reserved codes and tcpy's own apart", () => {
  assert.deepEqual(misplacedCodes(ErrorCode), []);
  for (const [code, name] of Object.entries(JSON_RPC_CODES)) {
    assert.equal(ErrorCode[name as keyof typeof ErrorCode], Number(code), name);
  }
  assert.ok(ErrorCode.HANDLER_ERROR > -32000);
  // The check itself: a new code elsewhere in the reserved range, or a repeat, fails it.
  assert.deepEqual(misplacedCodes({ ...ErrorCode, NEW: -32500 }), [
    "NEW -32500 is in JSON-RPC's reserved range",
  ]);
  assert.deepEqual(misplacedCodes({ ...ErrorCode, NEW: -32700 }), [
    "NEW -32700 is in JSON-RPC's reserved range",
    "NEW -32700 is also PARSE_ERROR",
  ]);
  assert.deepEqual(misplacedCodes({ ...ErrorCode, NEW: -32009 }), []);
});

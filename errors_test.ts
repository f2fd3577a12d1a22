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

Deno.test("ErrorCode keeps JSON-RPC's reserved codes and tcpy's own apart", () => {
  assert.equal(ErrorCode.PARSE_ERROR, -32700);
  assert.equal(ErrorCode.METHOD_NOT_FOUND, -32601);
  const own = Object.values(ErrorCode).filter((c) => c > -32100 && c <= -32000);
  assert.equal(new Set(own).size, own.length);
  assert.ok(ErrorCode.HANDLER_ERROR > -32000);
});

import assert from "node:assert/strict";
import {
  ErrorCode,
  fromWireError,
  HandlerFailedError,
  InvalidParamsError,
  ParseError,
  TcpyError,
  UnknownCommandError,
  WorkerCrashedError,
} from "./errors.ts";

Deno.test("each tcpy error survives its wire form as the same class and code", () => {
  const errors = [
    new ParseError("p"),
    new UnknownCommandError("u", { data: { command: "x" } }),
    new InvalidParamsError("i"),
    new HandlerFailedError("h"),
    new WorkerCrashedError("w"),
  ];
  for (const error of errors) {
    const back = fromWireError(JSON.parse(JSON.stringify(error.toWire())));
    assert.equal(back.constructor, error.constructor);
    assert.equal(back.name, error.name);
    assert.equal(back.code, error.code);
    assert.equal(back.message, error.message);
    assert.deepEqual(back.data, error.data);
    assert.ok(back instanceof TcpyError && back instanceof Error);
  }
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

import assert from "node:assert/strict";
import {
  decodeLine,
  errorText,
  MAX_DEPTH,
  messageText,
  parseIncoming,
  parseMessageParams,
  parseReply,
  requestText,
  resultText,
  toJson,
  tooDeep,
} from "./codec.ts";
import { ErrorCode, ParseError } from "./errors.ts";

const enc = new TextEncoder();

Deno.test("decodeLine parses UTF-8 JSON and refuses bad bytes or bad JSON with ParseError", () => {
  assert.deepEqual(decodeLine(enc.encode('{"a":"é"}')), { a: "é" });
  for (
    const bad of [
      Uint8Array.of(0x7b, 0xff, 0x7d),
      Uint8Array.of(0xc3),
      enc.encode("{"),
      enc.encode("nul"),
    ]
  ) {
    assert.throws(
      () => decodeLine(bad),
      (e: unknown) => e instanceof ParseError && e.code === -32700,
    );
  }
});

Deno.test("decodeLine keeps __proto__ as a plain own key without touching prototypes", () => {
  const value = decodeLine(enc.encode('{"__proto__":{"polluted":true}}')) as Record<
    string,
    unknown
  >;
  assert.ok(Object.hasOwn(value, "__proto__"));
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
});

Deno.test("parseIncoming classifies calls, notifications and invalid requests", () => {
  assert.deepEqual(parseIncoming({ jsonrpc: "2.0", id: 1, method: "add", params: { x: 1 } }), {
    kind: "call",
    id: 1,
    method: "add",
    params: { x: 1 },
  });
  assert.deepEqual(parseIncoming({ jsonrpc: "2.0", method: "log" }), {
    kind: "notification",
    method: "log",
    params: undefined,
  });
  assert.equal(parseIncoming({ jsonrpc: "2.0", id: null, method: "m" }).kind, "call");
  const cases: [unknown, unknown][] = [
    [1, null],
    [null, null],
    ["x", null],
    [{ jsonrpc: "2.0", id: {}, method: "m" }, null],
    [{ jsonrpc: "2.0", id: 1.5e400, method: "m" }, null],
    [{ jsonrpc: "1.0", id: 3, method: "m" }, 3],
    [{ id: "a", method: "m" }, "a"],
    [{ jsonrpc: "2.0", id: 4, method: 5 }, 4],
    [{ jsonrpc: "2.0", id: 5, method: "m", params: "x" }, 5],
    [{ jsonrpc: "2.0", id: 6, method: "m", params: null }, 6],
  ];
  for (const [value, id] of cases) {
    const parsed = parseIncoming(value);
    assert.equal(parsed.kind, "invalid", JSON.stringify(value));
    if (parsed.kind === "invalid") {
      assert.equal(parsed.id, id);
      assert.equal(parsed.error.code, ErrorCode.INVALID_REQUEST);
    }
  }
});

Deno.test("parseIncoming refuses params nested deeper than MAX_DEPTH", () => {
  let deep: unknown = 1;
  for (let i = 0; i < 5000; i++) deep = [deep];
  const parsed = parseIncoming({ jsonrpc: "2.0", id: 1, method: "m", params: deep });
  assert.equal(parsed.kind, "invalid");
  let ok: unknown = 1;
  for (let i = 0; i < MAX_DEPTH - 1; i++) ok = { a: ok };
  assert.equal(parseIncoming({ jsonrpc: "2.0", id: 1, method: "m", params: ok }).kind, "call");
  assert.equal(tooDeep({ a: [{}] }, 2), true);
  assert.equal(tooDeep({ a: [1] }, 2), false);
});

Deno.test("parseReply classifies results, errors, notifications and junk", () => {
  assert.deepEqual(parseReply({ jsonrpc: "2.0", id: 1, result: null }), {
    kind: "result",
    id: 1,
    result: null,
  });
  assert.deepEqual(
    parseReply({ jsonrpc: "2.0", id: 2, error: { code: -32601, message: "no", data: 7 } }),
    { kind: "error", id: 2, error: { code: -32601, message: "no", data: 7 } },
  );
  assert.equal(
    parseReply({ jsonrpc: "2.0", method: "tcpy.message", params: {} }).kind,
    "notification",
  );
  for (const junk of [[], 1, { jsonrpc: "2.0" }, { jsonrpc: "2.0", id: 1, error: { code: "x" } }]) {
    assert.equal(parseReply(junk).kind, "invalid");
  }
});

Deno.test("the text builders produce JSON-RPC that parses back", () => {
  const request = JSON.parse(requestText("add", { x: 1, y: 2 }, 9));
  assert.deepEqual(request, { jsonrpc: "2.0", id: 9, method: "add", params: { x: 1, y: 2 } });
  assert.deepEqual(JSON.parse(requestText("ping")), { jsonrpc: "2.0", method: "ping" });
  assert.deepEqual(JSON.parse(resultText('a"b', '{"s":1}')), {
    jsonrpc: "2.0",
    id: 'a"b',
    result: { s: 1 },
  });
  assert.deepEqual(JSON.parse(errorText(null, { code: 1, message: "m" })).error, {
    code: 1,
    message: "m",
  });
  const message = JSON.parse(messageText("x", "[1,2]"));
  assert.deepEqual(parseMessageParams(message.params), { id: "x", data: [1, 2] });
  assert.equal(parseMessageParams({ id: {}, data: 1 }), undefined);
  assert.equal(parseMessageParams({ id: 1 }), undefined);
});

Deno.test("toJson maps undefined to null and reports what JSON cannot hold", () => {
  assert.equal(toJson(undefined), "null");
  assert.equal(toJson({ a: undefined }), "{}");
  const cycle: Record<string, unknown> = {};
  cycle.self = cycle;
  assert.ok(toJson(cycle) instanceof Error);
  assert.ok(toJson(1n) instanceof Error);
});

Deno.test("asciiText decodes a chunk whole only when every byte is ASCII", async () => {
  const { asciiText } = await import("./codec.ts");
  const enc = new TextEncoder();
  assert.equal(asciiText(enc.encode('{"a":1}\n{"b":2}\n')), '{"a":1}\n{"b":2}\n');
  assert.equal(asciiText(enc.encode('{"a":"é"}\n')), undefined); // multi-byte: offsets differ
  assert.equal(asciiText(new Uint8Array([0x7b, 0xff, 0x7d])), undefined); // invalid byte
  assert.equal(asciiText(new Uint8Array([0xef, 0xbf, 0xbd])), undefined); // a real U+FFFD
});

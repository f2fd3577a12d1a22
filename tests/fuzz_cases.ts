/**
 * The protocol fuzzer shared by `tests/fuzz_test.ts` (short, in the suite) and
 * `tools/fuzz.ts` (`deno task fuzz`, longer): a seeded generator of hostile
 * connections (random bytes, mutated valid requests, deep nesting, huge
 * numbers, wrong types, junk batches, `__proto__` keys, oversized lines,
 * floods of slow calls past `maxInFlight`, thousands of tiny lines...),
 * a driver that plays them over real sockets in random splits, and the
 * checks every reply must pass.
 *
 * Case `i` of seed `s` is generated from its own PRNG, so a case is the same
 * whatever order the connections run in: replay one with `FUZZ_SEED=s` and
 * `FUZZ_ONLY=i`.
 *
 * The generator never produces the fixture commands that kill their worker
 * (`crash`, `quit`), and keeps every `sleep` short, so no call outlives the
 * run (an inline handler cannot be stopped).
 */
import { delay } from "../tools/_process.ts";

/** A small, fast, seedable PRNG (mulberry32). */
export class Rng {
  #state: number;

  constructor(seed: number) {
    this.#state = seed >>> 0;
  }

  /** A float in [0, 1). */
  next(): number {
    let t = (this.#state = (this.#state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** An integer in [min, max]. */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  /** True with probability `p`. */
  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)];
  }
}

/** A seed from `FUZZ_SEED`, or a fresh random one. */
export function seedFromEnv(): number {
  const given = Deno.env.get("FUZZ_SEED");
  if (given !== undefined && given !== "") {
    const seed = Number(given);
    if (!Number.isSafeInteger(seed) || seed < 0 || seed > 0xffffffff) {
      throw new RangeError(`FUZZ_SEED must be an integer from 0 to ${0xffffffff}, got ${given}`);
    }
    return seed;
  }
  return crypto.getRandomValues(new Uint32Array(1))[0];
}

/** Case indexes from `FUZZ_ONLY` (comma separated), if set. */
export function onlyFromEnv(): number[] | undefined {
  const given = Deno.env.get("FUZZ_ONLY");
  if (!given) return undefined;
  return given.split(",").map((s) => Number(s.trim()));
}

/** The seed of case `index`: a hash of the run's seed and the index. */
function caseSeed(seed: number, index: number): number {
  let h = Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(index + 1, 0xc2b2ae35);
  h ^= h >>> 16;
  h = Math.imul(h, 0x7feb352d);
  h ^= h >>> 15;
  return h >>> 0;
}

// ---------------------------------------------------------------------------
// Generation

const enc = new TextEncoder();

/** Fixture commands the fuzzer may call (never `crash` or `quit`). */
const METHODS = [
  "add",
  "echo",
  "greet",
  "sum",
  "refuse",
  "boom",
  "reject",
  "sleep",
  "where",
  "whereInline",
  "strict",
  "notJson",
  "count",
  "merge",
] as const;

/** Method names that trip naive lookups, reserved names, odd strings. */
const NASTY_METHODS = [
  "__proto__",
  "constructor",
  "toString",
  "hasOwnProperty",
  "valueOf",
  "prototype",
  "__defineGetter__",
  "isPrototypeOf",
  "propertyIsEnumerable",
  "tcpy.",
  "tcpy.ping",
  "tcpy.message",
  "tcpy.auth",
  "tcpy.nope",
  "",
  " add",
  "add ",
  "ADD",
  "add\u0000",
  "ad\u00e9",
  "\ud800",
  "\u{1f600}",
  "x".repeat(300),
];

/** Number tokens JSON allows but programs mishandle. */
const HUGE_NUMBERS = [
  "1e400",
  "-1e400",
  "1e308",
  "1.7976931348623157e308",
  "-0",
  "0.0000000000000000000000000000000001",
  "5e-324",
  "123456789012345678901234567890",
  "9007199254740993",
  "-9007199254740993",
  "1E+2",
  "4294967296",
  "2147483648",
  "-2147483649",
  "0e0",
  "1" + "0".repeat(400),
];

/** Byte sequences that are not UTF-8. */
const BAD_UTF8: number[][] = [
  [0xff],
  [0xfe, 0xff],
  [0xc0, 0x80], // overlong NUL
  [0xc1, 0xbf],
  [0xe0, 0x80, 0x80], // overlong
  [0xed, 0xa0, 0x80], // UTF-16 surrogate
  [0xed, 0xbf, 0xbf],
  [0xf4, 0x90, 0x80, 0x80], // above U+10FFFF
  [0xf8, 0x88, 0x80, 0x80, 0x80],
  [0x80], // lone continuation
  [0xbf, 0xbf],
  [0xe2, 0x82], // truncated
  [0xf0, 0x9f, 0x98], // truncated emoji
  [0xc3], // truncated
];

const KEYS = ["a", "x", "y", "ms", "name", "__proto__", "constructor", "prototype", "toString", ""];

function randomString(rng: Rng, max = 12): string {
  const alphabet = rng.pick([
    "abcxyz",
    'abc"\\/\n\t\u0000\u001f',
    "é中\u{1f600}\u2028\u2029",
    "\ud800\udc00\udfff",
  ]);
  const chars = [...alphabet];
  let out = "";
  const n = rng.int(0, max);
  for (let i = 0; i < n; i++) out += rng.pick(chars);
  return out;
}

/** A random JSON value as text, `depth` levels deep at most. */
function randomJson(rng: Rng, depth: number): string {
  const roll = rng.int(0, depth > 0 ? 9 : 5);
  switch (roll) {
    case 0:
      return "null";
    case 1:
      return rng.pick(["true", "false"]);
    case 2:
      return String(rng.int(-1000, 1000));
    case 3:
      return rng.pick(HUGE_NUMBERS);
    case 4:
    case 5:
      return JSON.stringify(randomString(rng));
    case 6:
    case 7: {
      const n = rng.int(0, 4);
      const items = Array.from({ length: n }, () => randomJson(rng, depth - 1));
      return `[${items.join(",")}]`;
    }
    default: {
      const n = rng.int(0, 4);
      const fields = Array.from(
        { length: n },
        () => `${JSON.stringify(rng.pick(KEYS))}:${randomJson(rng, depth - 1)}`,
      );
      return `{${fields.join(",")}}`;
    }
  }
}

function randomObject(rng: Rng, depth: number): string {
  const n = rng.int(0, 5);
  const fields = Array.from(
    { length: n },
    () => `${JSON.stringify(rng.pick(KEYS))}:${randomJson(rng, depth - 1)}`,
  );
  return `{${fields.join(",")}}`;
}

function randomId(rng: Rng): string | undefined {
  switch (rng.int(0, 9)) {
    case 0:
      return undefined; // a notification
    case 1:
      return "null";
    case 2:
      return JSON.stringify(randomString(rng, 6));
    case 3:
      return String(rng.int(-5, 5));
    case 4:
      return rng.pick(["1.5", "-0", "1e3", '"__proto__"', '"constructor"', "0"]);
    default:
      return String(rng.int(1, 1_000_000));
  }
}

function request(method: string, params: string | undefined, id: string | undefined): string {
  const idPart = id === undefined ? "" : `,"id":${id}`;
  const paramsPart = params === undefined ? "" : `,"params":${params}`;
  return `{"jsonrpc":"2.0"${idPart},"method":${JSON.stringify(method)}${paramsPart}}`;
}

/** Params that make sense for `method`. */
function paramsFor(rng: Rng, method: string): string | undefined {
  switch (method) {
    case "add":
      return `{"x":${rng.int(-1e6, 1e6)},"y":${rng.int(-1e6, 1e6)}}`;
    case "sleep":
      return `{"ms":${rng.int(0, 150)},"value":${randomJson(rng, 1)}}`;
    case "greet":
      return rng.chance(0.5) ? undefined : `{"greeting":${JSON.stringify(randomString(rng))}}`;
    case "refuse":
      return `{"reason":${JSON.stringify(randomString(rng))},"code":${
        rng.pick(["1", "-32000", "-32768", "-32769", "42", "1.5", '"x"', "1e400"])
      }}`;
    case "strict":
      return `{"n":${randomJson(rng, 1)}}`;
    case "count":
      return `{"by":${rng.pick(["1", "2", "-1", '"s"', "null", "0.5"])}}`;
    case "echo":
    case "merge":
      return rng.chance(0.6)
        ? randomObject(rng, 3)
        : `{"__proto__":{"polluted":true},"constructor":{"prototype":{"polluted":true}},"k":${
          randomJson(rng, 2)
        }}`;
    default:
      return rng.chance(0.5) ? undefined : "{}";
  }
}

/** A valid request for a fixture command, possibly followed by conversation data. */
function validRequest(rng: Rng): string {
  const method = rng.pick(METHODS);
  const id = method === "greet" || method === "sum" ? String(rng.int(1, 1_000_000)) : randomId(rng);
  let text = request(method, paramsFor(rng, method), id);
  if ((method === "greet" || method === "sum") && rng.chance(0.6)) {
    const data = method === "greet" ? `{"name":${JSON.stringify(randomString(rng))}}` : "3";
    text += "\n" + request("tcpy.message", `{"id":${id},"data":${data}}`, undefined);
    if (method === "sum") {
      text += "\n" + request("tcpy.message", `{"id":${id},"data":"end"}`, undefined);
    }
  }
  return text;
}

function wrongTypes(rng: Rng): string {
  const method = rng.pick(METHODS);
  const fields = {
    jsonrpc: rng.pick(['"2.0"', '"2.0"', "2.0", "2", '"2"', '"1.0"', '"2.0 "', "null", "[]"]),
    id: rng.pick(["1", "{}", "[]", "true", "false", '{"a":1}', "[1]", "1e400", "null"]),
    method: rng.pick([JSON.stringify(method), "1", "null", "true", "[]", '{"a":"add"}', '["add"]']),
    params: rng.pick([
      "1",
      '"x"',
      "true",
      "null",
      "[]",
      "[1,2]",
      '{"x":"1","y":"2"}',
      '{"x":[],"y":{}}',
      '{"x":null}',
      "{}",
    ]),
  };
  const parts: string[] = [];
  for (const [key, value] of Object.entries(fields)) {
    if (rng.chance(0.85)) parts.push(`"${key}":${value}`);
  }
  if (rng.chance(0.2)) parts.push(`"${rng.pick(["result", "error", "extra", "id"])}":1`);
  return `{${parts.join(",")}}`;
}

function protoJunk(rng: Rng): string {
  const id = String(rng.int(1, 1000));
  return rng.pick([
    () => request(rng.pick(NASTY_METHODS), rng.chance(0.5) ? "{}" : undefined, id),
    () => request(rng.pick(NASTY_METHODS), undefined, undefined),
    () => `{"__proto__":{"jsonrpc":"2.0","method":"add","id":1},"params":{"x":1,"y":2}}`,
    () => `{"jsonrpc":"2.0","id":${id},"method":"add","params":{"x":1,"y":2},"__proto__":null}`,
    () => `{"jsonrpc":"2.0","id":${id},"method":"add","params":{"__proto__":{"x":1,"y":2}}}`,
    () =>
      `{"jsonrpc":"2.0","id":${id},"method":"${
        rng.pick(["merge", "echo", "add"])
      }","params":{"__proto__":{"polluted":1},"constructor":{"prototype":{"polluted":1}}}}`,
    () => `{"jsonrpc":"2.0","id":"__proto__","method":"sleep","params":{"ms":5}}`,
    () => `{"jsonrpc":"2.0","id":"constructor","method":"add","params":{"x":1,"y":1}}`,
    () => `{"jsonrpc":"2.0","id":1,"id":2,"method":"add","method":"echo","params":{"x":1}}`,
    () => `{"constructor":1,"toString":2,"valueOf":"x","jsonrpc":"2.0","method":"echo"}`,
    () => `{"jsonrpc":"2.0","method":"tcpy.message","params":{"id":"__proto__","data":1}}`,
    () => `{"jsonrpc":"2.0","method":"tcpy.message","params":{"__proto__":{"id":1,"data":1}}}`,
  ])();
}

function hugeNumbers(rng: Rng): string {
  const n = () => rng.pick(HUGE_NUMBERS);
  return rng.pick([
    () => `{"jsonrpc":"2.0","id":${n()},"method":"add","params":{"x":${n()},"y":${n()}}}`,
    () => `{"jsonrpc":"2.0","id":1,"method":"strict","params":{"n":${n()}}}`,
    () => `{"jsonrpc":"2.0","id":${n()},"method":"echo","params":{"v":[${n()},${n()}]}}`,
    () => `{"jsonrpc":"2.0","method":"tcpy.message","params":{"id":${n()},"data":${n()}}}`,
    () => n(),
  ])();
}

function deepNesting(rng: Rng, limit: number): string {
  const most = Math.max(70, Math.floor((limit - 80) / 2));
  const depth = rng.pick([
    62,
    63,
    64,
    65,
    66,
    rng.int(70, 500),
    Math.min(most, rng.int(500, 4000)),
    Math.min(most, 200_000),
  ]);
  const open = rng.pick(["[", '{"a":']);
  const close = open === "[" ? "]" : "}";
  const inner = open.repeat(depth) + "1" + (rng.chance(0.9) ? close.repeat(depth) : "");
  return rng.pick([
    () => request(rng.pick(["echo", "add", "merge"]), `{"p":${inner}}`, "7"),
    () => request("echo", open === "[" ? inner : `{"p":${inner}}`, "8"),
    () => inner, // a deep batch, or a deep non-request
    () => `{"jsonrpc":"2.0","id":${inner},"method":"add"}`,
    () => `{"jsonrpc":"2.0","method":"tcpy.message","params":{"id":1,"data":${inner}}}`,
  ])();
}

function junkBatch(rng: Rng, limit: number): string {
  switch (rng.int(0, 5)) {
    case 0:
      return "[]";
    case 1: {
      // Over maxBatchLength (1000) if it fits the line limit.
      const n = Math.min(rng.int(999, 1002), Math.floor((limit - 2) / 2));
      return `[${Array(n).fill("1").join(",")}]`;
    }
    case 2:
      return `[${validRequest(rng).split("\n")[0]}]`;
    default: {
      const n = rng.int(1, 20);
      const items = Array.from({ length: n }, () =>
        rng.pick([
          () => validRequest(rng).split("\n")[0],
          () => wrongTypes(rng),
          () => randomJson(rng, 2),
          () => protoJunk(rng),
          () => "[]",
          () => `[${validRequest(rng).split("\n")[0]}]`,
        ])());
      return `[${items.join(",")}]`;
    }
  }
}

function oversized(rng: Rng, limit: number): string {
  const length = rng.pick([
    limit + 1,
    limit + 2,
    limit + rng.int(3, 100),
    limit * 2,
    limit + rng.int(0, Math.min(limit * 19, 200_000)),
    70_000, // longer than the server's 64 KiB read buffer
  ]);
  const head = `{"jsonrpc":"2.0","id":9,"method":"echo","params":{"s":"`;
  const tail = `"}}`;
  const fill = Math.max(0, length - head.length - tail.length);
  return rng.chance(0.7) ? head + "a".repeat(fill) + tail : "z".repeat(length);
}

/** Lines at exactly the limit: accepted, not oversized. */
function borderline(rng: Rng, limit: number): string {
  const head = `{"jsonrpc":"2.0","id":10,"method":"echo","params":{"s":"`;
  const tail = `"}}`;
  const text = head + "b".repeat(Math.max(0, limit - head.length - tail.length)) + tail;
  return rng.chance(0.5) ? text : text + "\r"; // a `\r` before `\n` does not count
}

/**
 * More calls than `maxInFlight` (1024) lets one connection run: batches of
 * slow calls, line after line, so the last ones are answered -32001.
 */
function flood(rng: Rng, limit: number): string {
  const perLine = Math.max(1, Math.min(1000, Math.floor(limit / 80)));
  const total = rng.int(900, 1300);
  const base = rng.int(1e7, 9e7);
  const lines: string[] = [];
  for (let k = 0; k < total;) {
    const n = Math.min(perLine, total - k);
    const items: string[] = [];
    for (let i = 0; i < n; i++, k++) {
      const method = rng.pick(["sleep", "sleep", "greet", "add"]);
      const params = method === "sleep"
        ? `{"ms":${rng.int(20, 200)}}`
        : method === "add"
        ? `{"x":${k},"y":1}`
        : undefined;
      items.push(request(method, params, rng.chance(0.9) ? String(base + k) : undefined));
    }
    lines.push(n === 1 ? items[0] : `[${items.join(",")}]`);
  }
  return lines.join("\n");
}

/** One short line, many times: many small replies to coalesce. */
function many(rng: Rng): string {
  const line = rng.pick([
    () => "1",
    () => "{}",
    () => "[]",
    () => "x",
    () => validRequest(rng).split("\n")[0],
    () => protoJunk(rng),
  ])();
  return Array(rng.int(100, 3000)).fill(line).join(rng.pick(["\n", "\r\n", "\n\n"]));
}

function randomBytes(rng: Rng): Uint8Array {
  const n = rng.int(1, 600);
  const out = new Uint8Array(n);
  const ascii = rng.chance(0.5);
  for (let i = 0; i < n; i++) out[i] = ascii ? rng.int(0x20, 0x7e) : rng.int(0, 255);
  return out;
}

function tokenSoup(rng: Rng): string {
  const tokens = [
    "{",
    "}",
    "[",
    "]",
    ":",
    ",",
    '"jsonrpc"',
    '"2.0"',
    '"method"',
    '"add"',
    '"id"',
    '"params"',
    "1",
    "-1e9",
    "true",
    "null",
    '"',
    "\\",
    " ",
    "\t",
    "\r",
  ];
  let out = "";
  const n = rng.int(1, 60);
  for (let i = 0; i < n; i++) out += rng.pick(tokens);
  return out;
}

// Byte-level mutations of a message.

function insert(bytes: Uint8Array, at: number, extra: Uint8Array | number[]): Uint8Array {
  const add = extra instanceof Uint8Array ? extra : Uint8Array.from(extra);
  const out = new Uint8Array(bytes.length + add.length);
  out.set(bytes.subarray(0, at));
  out.set(add, at);
  out.set(bytes.subarray(at), at + add.length);
  return out;
}

function mutate(rng: Rng, input: Uint8Array, kinds: string[]): Uint8Array {
  let bytes = input;
  const rounds = rng.int(1, 3);
  for (let r = 0; r < rounds; r++) {
    const at = rng.int(0, bytes.length);
    switch (rng.int(0, 6)) {
      case 0: {
        kinds.push("flip");
        bytes = bytes.slice();
        const flips = rng.int(1, 4);
        for (let i = 0; i < flips && bytes.length > 0; i++) {
          bytes[rng.int(0, bytes.length - 1)] ^= rng.int(1, 255);
        }
        break;
      }
      case 1:
        kinds.push("truncate");
        bytes = bytes.slice(0, at);
        break;
      case 2: {
        kinds.push("duplicate");
        const from = rng.int(0, bytes.length);
        const to = rng.int(from, bytes.length);
        bytes = rng.chance(0.5)
          ? insert(bytes, at, bytes.slice(from, to))
          : insert(bytes, bytes.length, bytes.slice()); // twice on one line
        break;
      }
      case 3:
        kinds.push("newline");
        bytes = insert(bytes, at, rng.pick([[0x0a], [0x0d, 0x0a], [0x0d], [0x0a, 0x0a]]));
        break;
      case 4:
        kinds.push("utf8");
        bytes = insert(bytes, at, rng.pick(BAD_UTF8));
        break;
      case 5: {
        kinds.push("number");
        const text = new TextDecoder("latin1").decode(bytes);
        const swapped = text.replace(/-?\d+(\.\d+)?/, rng.pick(HUGE_NUMBERS));
        bytes = enc.encode(swapped);
        break;
      }
      default:
        kinds.push("nul");
        bytes = insert(bytes, at, [0]);
    }
  }
  return bytes;
}

// ---------------------------------------------------------------------------
// Cases

/** How the client ends its connection. */
export type Ending =
  /** Sends everything, closes its sending side, reads every reply until the server closes. */
  | "halfclose"
  /** Sends everything, then closes the socket without reading. */
  | "abrupt"
  /** Closes the socket part-way through sending. */
  | "early"
  /** Sends calls that take a while (`sleep`, `greet`) and closes while they run. */
  | "midcall";

/** One fuzz connection. */
export interface FuzzCase {
  readonly index: number;
  /** The bytes to send, in order. */
  readonly bytes: Uint8Array;
  /** Sizes of the writes the bytes are sent in. */
  readonly chunks: number[];
  /** Milliseconds to wait after each write (mostly 0). */
  readonly delays: number[];
  readonly ending: Ending;
  /** An `add` appended after everything else, whose reply must come back. */
  readonly sentinel: { id: string; solution: number } | undefined;
  /** Whether a line is over the limit (the server must answer -32003 and close). */
  readonly oversize: boolean;
  /** The generators and mutations used, for reports. */
  readonly kinds: string[];
}

const MAX_SLEEP_MS = 1000;

/** A sleep the server could not finish before the run ends: regenerate. */
function tooSlow(bytes: Uint8Array): boolean {
  const text = new TextDecoder("latin1").decode(bytes);
  if (/crash|quit/i.test(text)) return true;
  if (!text.includes("sleep")) return false;
  for (const match of text.matchAll(/"ms"\s*:\s*(-?[0-9.eE+]+)/g)) {
    if (!(Number(match[1]) <= MAX_SLEEP_MS)) return true;
  }
  return false;
}

/** Whether the server's framing will find a line longer than `limit`. */
export function hasOversizedLine(bytes: Uint8Array, limit: number): boolean {
  let start = 0;
  while (start <= bytes.length) {
    let end = bytes.indexOf(0x0a, start);
    if (end === -1) end = bytes.length;
    let length = end - start;
    if (length > 0 && bytes[end - 1] === 0x0d) length--;
    if (length > limit) return true;
    start = end + 1;
  }
  return false;
}

function message(rng: Rng, limit: number, kinds: string[]): Uint8Array {
  const roll = rng.next();
  if (roll < 0.25) {
    kinds.push("valid");
    return enc.encode(validRequest(rng));
  }
  if (roll < 0.5) {
    kinds.push("mutated");
    const base = rng.pick([validRequest, wrongTypes, protoJunk, hugeNumbers])(rng);
    return mutate(rng, enc.encode(base), kinds);
  }
  let special = rng.pick(
    [
      "bytes",
      "soup",
      "deep",
      "huge",
      "types",
      "batch",
      "proto",
      "oversize",
      "border",
      "blank",
      "flood",
      "many",
    ] as const,
  );
  // An oversized line ends the connection: keep them rarer, so more cases run to the end.
  if (special === "oversize" && rng.chance(0.5)) special = "huge";
  if (special === "flood" && rng.chance(0.5)) special = "types";
  kinds.push(special);
  switch (special) {
    case "bytes":
      return randomBytes(rng);
    case "soup":
      return enc.encode(tokenSoup(rng));
    case "deep":
      return enc.encode(deepNesting(rng, limit));
    case "huge":
      return enc.encode(hugeNumbers(rng));
    case "types":
      return enc.encode(wrongTypes(rng));
    case "batch":
      return enc.encode(junkBatch(rng, limit));
    case "proto":
      return enc.encode(protoJunk(rng));
    case "oversize":
      return enc.encode(oversized(rng, limit));
    case "border":
      return enc.encode(borderline(rng, limit));
    case "blank":
      return enc.encode(rng.pick(["", "\r", "   ", "\t", "\ufeff{}", "\u00a0"]));
    case "flood":
      return enc.encode(flood(rng, limit));
    case "many":
      return enc.encode(many(rng));
  }
}

/**
 * One malformed message (without its newline) for load generators such as
 * `tools/soak.ts`: never valid, never over `limit`, never slow, and never
 * one of the huge floods.
 */
export function malformedMessage(rng: Rng, limit: number): Uint8Array {
  const skip = new Set(["valid", "flood", "many", "oversize", "border"]);
  while (true) {
    const kinds: string[] = [];
    const bytes = message(rng, limit, kinds);
    if (kinds.some((k) => skip.has(k))) continue;
    if (hasOversizedLine(bytes, limit) || tooSlow(bytes)) continue;
    return bytes;
  }
}

function midcall(rng: Rng): Uint8Array {
  const lines: string[] = [];
  const n = rng.int(1, 6);
  for (let i = 0; i < n; i++) {
    const id = String(rng.int(1, 1_000_000));
    lines.push(
      rng.chance(0.5)
        ? request("sleep", `{"ms":${rng.int(20, 300)}}`, id)
        : request(rng.pick(["greet", "sum"]), undefined, id),
    );
  }
  return enc.encode(lines.join("\n") + "\n");
}

function splits(rng: Rng, total: number): { chunks: number[]; delays: number[] } {
  const chunks: number[] = [];
  const delays: number[] = [];
  const style = rng.int(0, 4);
  const delayChance = rng.pick([0, 0.1, 0.3]);
  let left = total;
  while (left > 0) {
    let size: number;
    if (style === 0) size = left; // all at once
    else if (style === 1 && total <= 2048) size = 1; // byte by byte
    else if (style === 2) size = rng.int(1, 16);
    else size = rng.int(1, 2048);
    if (total > 8192) size = Math.max(size, rng.int(512, 16384)); // keep big ones quick
    size = Math.min(size, left);
    chunks.push(size);
    delays.push(rng.chance(delayChance) ? rng.int(0, 4) : 0);
    left -= size;
  }
  return { chunks, delays };
}

/**
 * Case `index` of the run with `seed`, for a server whose `maxMessageBytes`
 * is `limit`.
 */
export function makeCase(seed: number, index: number, limit: number): FuzzCase {
  const rng = new Rng(caseSeed(seed, index));
  const roll = rng.next();
  const ending: Ending = roll < 0.7
    ? "halfclose"
    : roll < 0.8
    ? "abrupt"
    : roll < 0.9
    ? "early"
    : "midcall";
  let kinds: string[];
  let bytes: Uint8Array;
  do {
    kinds = [];
    if (ending === "midcall") {
      kinds.push("midcall");
      bytes = midcall(rng);
      break;
    }
    const parts: Uint8Array[] = [];
    const n = rng.int(1, 10);
    for (let i = 0; i < n; i++) {
      parts.push(message(rng, limit, kinds));
      parts.push(enc.encode(rng.pick(["\n", "\n", "\n", "\r\n", "\n\n", ""])));
    }
    bytes = new Uint8Array(parts.reduce((sum, p) => sum + p.length, 0));
    let at = 0;
    for (const part of parts) {
      bytes.set(part, at);
      at += part.length;
    }
    if (rng.chance(0.1)) {
      kinds.push("stream-mutation");
      bytes = mutate(rng, bytes, kinds);
    }
  } while (tooSlow(bytes));
  let sentinel: FuzzCase["sentinel"];
  if (ending === "halfclose") {
    const x = rng.int(0, 1000);
    const y = rng.int(0, 1000);
    sentinel = { id: `sentinel-${index}-${rng.int(0, 1e9)}`, solution: x + y };
    const tail = enc.encode(
      `\n${request("add", `{"x":${x},"y":${y}}`, JSON.stringify(sentinel.id))}\n`,
    );
    bytes = insert(bytes, bytes.length, tail);
  }
  const { chunks, delays } = splits(rng, bytes.length);
  return {
    index,
    bytes,
    chunks,
    delays,
    ending,
    sentinel,
    oversize: hasOversizedLine(bytes, limit),
    kinds,
  };
}

// ---------------------------------------------------------------------------
// Checking replies

function isId(value: unknown): boolean {
  return value === null || typeof value === "string" ||
    (typeof value === "number" && Number.isFinite(value));
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Why `value` is not a well-formed JSON-RPC 2.0 response, or `undefined`. */
function responseProblem(value: unknown): string | undefined {
  if (!isObject(value)) return "a response is not an object";
  if (value.jsonrpc !== "2.0") return 'a response lacks jsonrpc "2.0"';
  if (!Object.hasOwn(value, "id") || !isId(value.id)) return "a response has no valid id";
  const hasResult = Object.hasOwn(value, "result");
  const hasError = Object.hasOwn(value, "error");
  if (hasResult === hasError) return "a response must have exactly one of result and error";
  if (hasError) {
    const error = value.error;
    if (!isObject(error)) return "error is not an object";
    if (typeof error.code !== "number" || !Number.isInteger(error.code)) {
      return "error.code is not an integer";
    }
    if (typeof error.message !== "string") return "error.message is not a string";
  }
  return undefined;
}

/** What one reply line held. */
export interface LineReport {
  /** Responses (batch elements counted one by one). */
  responses: unknown[];
  /** `tcpy.message` notifications. */
  notifications: number;
  /** Whether the line is the server's `tcpy.bye` (its last line before a graceful close). */
  bye: boolean;
}

const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * Checks one line the server sent (without its `\n`).
 *
 * @returns The parsed responses, or a string saying what is wrong.
 */
export function checkLine(bytes: Uint8Array): LineReport | string {
  let text: string;
  try {
    text = strictUtf8.decode(bytes);
  } catch {
    return "reply line is not UTF-8";
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return `reply line is not JSON: ${text.slice(0, 200)}`;
  }
  if (Array.isArray(value)) {
    if (value.length === 0) return "empty batch reply";
    for (const item of value) {
      const problem = responseProblem(item);
      if (problem) return `${problem} (in a batch): ${text.slice(0, 200)}`;
    }
    return { responses: value, notifications: 0, bye: false };
  }
  if (isObject(value) && value.method === "tcpy.bye" && !Object.hasOwn(value, "id")) {
    if (value.jsonrpc !== "2.0") return `malformed tcpy.bye: ${text.slice(0, 200)}`;
    return { responses: [], notifications: 0, bye: true };
  }
  if (isObject(value) && value.method === "tcpy.message" && !Object.hasOwn(value, "id")) {
    const params = value.params;
    if (value.jsonrpc !== "2.0" || !isObject(params) || !isId(params.id)) {
      return `malformed tcpy.message: ${text.slice(0, 200)}`;
    }
    return { responses: [], notifications: 1, bye: false };
  }
  const problem = responseProblem(value);
  return problem
    ? `${problem}: ${text.slice(0, 200)}`
    : { responses: [value], notifications: 0, bye: false };
}

// ---------------------------------------------------------------------------
// Driving

/** Totals of a fuzz run. */
export interface FuzzStats {
  cases: number;
  bytesSent: number;
  replyLines: number;
  responses: number;
  notifications: number;
  /** The server closed the connection cleanly (EOF). */
  closes: number;
  /** The connection was reset (expected after an oversized line). */
  resets: number;
  /** The client closed the connection itself (abrupt endings). */
  clientCloses: number;
  /** `tcpy.bye` notifications (the server's graceful close). */
  byes: number;
  /** Final `add` calls answered correctly after the junk. */
  sentinels: number;
  /** Error codes seen in responses, with counts. */
  codes: Map<number, number>;
  violations: string[];
}

export function emptyStats(): FuzzStats {
  return {
    cases: 0,
    bytesSent: 0,
    replyLines: 0,
    responses: 0,
    notifications: 0,
    closes: 0,
    resets: 0,
    clientCloses: 0,
    sentinels: 0,
    byes: 0,
    codes: new Map(),
    violations: [],
  };
}

function preview(bytes: Uint8Array): string {
  const text = JSON.stringify(new TextDecoder("latin1").decode(bytes.subarray(0, 400)));
  return bytes.length > 400 ? `${text}... (${bytes.length} bytes)` : text;
}

function isReset(error: unknown): boolean {
  return error instanceof Deno.errors.ConnectionReset ||
    error instanceof Deno.errors.BrokenPipe ||
    error instanceof Deno.errors.ConnectionAborted ||
    error instanceof Deno.errors.NotConnected;
}

interface ReadResult {
  how: "eof" | "reset" | "client" | "timeout";
  data: Uint8Array;
}

/** How long the server has to close a half-closed connection, in ms. */
const CLOSE_WITHIN = 10_000;

/** Plays one case against the server on `port` and checks what comes back. */
export async function runCase(port: number, c: FuzzCase, seed: number, stats: FuzzStats) {
  const where = `seed ${seed} case ${c.index} (${c.ending}; ${c.kinds.join(",")})`;
  const violation = (what: string) =>
    stats.violations.push(
      `${where}: ${what}\n    replay: FUZZ_SEED=${seed} FUZZ_ONLY=${c.index}\n    sent: ${
        preview(c.bytes)
      }`,
    );
  stats.cases++;
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  conn.setNoDelay(true);
  let clientClosed = false;
  let closed = false;
  const closeConn = () => {
    if (closed) return;
    closed = true;
    try {
      conn.close();
    } catch {
      // Already closed.
    }
  };

  // Read everything the server sends, concurrently with writing.
  const reading = (async (): Promise<ReadResult> => {
    const parts: Uint8Array[] = [];
    const buffer = new Uint8Array(65536);
    let how: ReadResult["how"];
    try {
      while (true) {
        const n = await conn.read(buffer);
        if (n === null) {
          how = "eof";
          break;
        }
        parts.push(buffer.slice(0, n));
      }
    } catch (error) {
      how = clientClosed ? "client" : isReset(error) ? "reset" : "client";
      if (!clientClosed && !isReset(error)) {
        violation(`unexpected read error: ${(error as Error).name}: ${(error as Error).message}`);
      }
    }
    const total = parts.reduce((sum, p) => sum + p.length, 0);
    const data = new Uint8Array(total);
    let at = 0;
    for (const part of parts) {
      data.set(part, at);
      at += part.length;
    }
    return { how, data };
  })();

  // Write the case in its chunks.
  let writeFailed = false;
  let writeReset = false;
  const stopAt = c.ending === "early" ? Math.floor(c.chunks.length / 2) : c.chunks.length;
  let offset = 0;
  try {
    for (let i = 0; i < stopAt; i++) {
      const chunk = c.bytes.subarray(offset, offset + c.chunks[i]);
      offset += c.chunks[i];
      let written = 0;
      while (written < chunk.length) written += await conn.write(chunk.subarray(written));
      stats.bytesSent += chunk.length;
      if (c.delays[i] > 0) await delay(c.delays[i]);
    }
  } catch (error) {
    writeFailed = true;
    writeReset = isReset(error);
    if (!writeReset) {
      violation(`unexpected write error: ${(error as Error).name}: ${(error as Error).message}`);
    }
  }

  let result: ReadResult;
  if (c.ending === "halfclose") {
    if (!writeFailed) {
      try {
        await conn.closeWrite();
      } catch (error) {
        if (!isReset(error)) violation(`closeWrite failed: ${(error as Error).message}`);
      }
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), CLOSE_WITHIN);
    });
    const first = await Promise.race([reading, timeout]);
    clearTimeout(timer);
    if (first === "timeout") {
      clientClosed = true;
      closeConn();
      result = { ...(await reading), how: "timeout" };
    } else {
      result = first;
    }
  } else {
    if (c.ending === "midcall") await delay(c.index % 20);
    clientClosed = true;
    closeConn();
    result = await reading;
  }
  closeConn();
  // After a reset reported to a write, the next read sees a plain end of stream.
  if (writeReset && result.how === "eof") result = { ...result, how: "reset" };

  // Check every complete line; a partial last line is only allowed when cut short.
  let start = 0;
  const seen: unknown[] = [];
  let byes = 0;
  while (true) {
    const end = result.data.indexOf(0x0a, start);
    if (end === -1) break;
    const report = checkLine(result.data.subarray(start, end));
    stats.replyLines++;
    if (byes > 0) {
      violation(
        `a line after tcpy.bye: ${
          new TextDecoder().decode(result.data.subarray(start, Math.min(end, start + 200)))
        }`,
      );
    }
    if (typeof report === "string") violation(report);
    else if (report.bye) {
      byes++;
      stats.byes++;
    } else {
      stats.notifications += report.notifications;
      stats.responses += report.responses.length;
      for (const response of report.responses) {
        seen.push(response);
        const error = (response as { error?: { code: number } }).error;
        if (error) stats.codes.set(error.code, (stats.codes.get(error.code) ?? 0) + 1);
      }
    }
    start = end + 1;
  }
  const partial = start < result.data.length;

  switch (result.how) {
    case "eof":
      stats.closes++;
      if (partial) violation("the last reply line has no newline");
      break;
    case "reset":
      // Tolerated only after a line over the limit (checked below): the server then
      // closes while the client may still be sending, and the kernel answers that with
      // a reset, which can also discard replies the server had queued (a known issue).
      stats.resets++;
      break;
    default:
      stats.clientCloses++;
  }

  if (c.ending !== "halfclose") return;
  if (result.how === "timeout") {
    violation(`the server did not close the connection within ${CLOSE_WITHIN} ms of half-close`);
    return;
  }
  if (result.how === "eof" && byes === 0) {
    violation("the server closed a half-closed connection without tcpy.bye");
  }
  const tooLarge = seen.some((r) => (r as { error?: { code: number } }).error?.code === -32003);
  if (result.how === "eof" && c.oversize && !tooLarge) {
    violation("a line over the limit was not answered with -32003");
  }
  if (!c.oversize && tooLarge) violation("-32003 for a case with no line over the limit");
  if (!c.oversize && result.how === "reset") {
    violation("connection reset although every line was within the limit");
  }
  if (!c.oversize && c.sentinel) {
    const reply = seen.find((r) => (r as { id?: unknown }).id === c.sentinel!.id) as
      | { result?: { solution?: number } }
      | undefined;
    // After a flood the connection may still be full: "server busy" is a fair answer then.
    const busy = (c.kinds.includes("flood") || c.kinds.includes("many")) &&
      (reply as { error?: { code: number } } | undefined)?.error?.code === -32001;
    if (!reply) violation("no reply to the final valid add (the connection lost its way)");
    else if (busy) stats.sentinels++;
    else if (reply.result?.solution !== c.sentinel.solution) {
      violation(`wrong reply to the final add: ${JSON.stringify(reply)}`);
    } else stats.sentinels++;
  }
}

/** Options of {@linkcode runFuzz}. */
export interface FuzzOptions {
  port: number;
  seed: number;
  /** Number of cases (connections). */
  cases: number;
  /** The server's `maxMessageBytes`. */
  limit: number;
  /** Connections at once. */
  concurrency?: number;
  /** Stop starting new cases after this time (ms since epoch). */
  deadline?: number;
  /** Run only these case indexes. */
  only?: number[];
  /** Index of the first case (so several runs of one seed do not repeat cases). */
  first?: number;
}

/** Plays `cases` fuzz connections against a server; never throws for what the server does. */
export async function runFuzz(options: FuzzOptions): Promise<FuzzStats> {
  const stats = emptyStats();
  const first = options.first ?? 0;
  const indexes = options.only ??
    Array.from({ length: options.cases }, (_, i) => first + i);
  let next = 0;
  const worker = async () => {
    while (next < indexes.length) {
      if (options.deadline !== undefined && Date.now() > options.deadline) return;
      const index = indexes[next++];
      const c = makeCase(options.seed, index, options.limit);
      try {
        await runCase(options.port, c, options.seed, stats);
      } catch (error) {
        stats.violations.push(
          `seed ${options.seed} case ${index}: the client failed: ${(error as Error).stack}`,
        );
      }
    }
  };
  await Promise.all(Array.from({ length: options.concurrency ?? 12 }, worker));
  return stats;
}

/** A one-line summary of a run. */
export function summary(stats: FuzzStats): string {
  const codes = [...stats.codes].sort((a, b) => a[0] - b[0]).map(([c, n]) => `${c}:${n}`);
  return `${stats.cases} cases, ${stats.bytesSent} bytes sent, ${stats.replyLines} reply lines ` +
    `(${stats.responses} responses, ${stats.notifications} notifications), ` +
    `${stats.closes} closes by the server, ${stats.resets} resets, ` +
    `${stats.clientCloses} closes by the client, ${stats.byes} tcpy.bye, ` +
    `${stats.sentinels} final adds answered, ` +
    `${stats.violations.length} violations; ` +
    `error codes ${codes.join(" ")}`;
}

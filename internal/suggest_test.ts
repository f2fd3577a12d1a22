/** Edit distance and the "did you mean" suggestion for unknown names. */
import assert from "node:assert/strict";
import { closest, editDistance } from "./suggest.ts";

Deno.test("editDistance counts insertions, deletions, substitutions and neighbour swaps", () => {
  const cases: [string, string, number][] = [
    ["", "", 0],
    ["", "abc", 3],
    ["abc", "", 3],
    ["get", "get", 0],
    ["gett", "get", 1], // deletion
    ["gt", "get", 1], // insertion
    ["got", "get", 1], // substitution
    ["ecoh", "echo", 1], // swap of neighbours
    ["subtarct", "subtract", 1],
    ["hello", "help", 2],
    ["kitten", "sitting", 3],
    ["ca", "abc", 3], // optimal string alignment: no edit of a swapped pair
    ["Get", "get", 1], // case-sensitive
  ];
  for (const [a, b, expected] of cases) {
    assert.equal(editDistance(a, b), expected, `${a} → ${b}`);
    assert.equal(editDistance(b, a), expected, `${b} → ${a}`);
  }
});

Deno.test("closest suggests the nearest candidate within 2 edits and a third of the length", () => {
  const commands = ["get", "set", "add", "echo", "divide", "addition", "tcpy.ping"];
  const cases: [string, string[], string | undefined][] = [
    ["gett", commands, "get"],
    ["GET", commands, "get"], // case only: distance 0
    ["Echo", commands, "echo"],
    ["ecoh", commands, "echo"], // a swap is one edit
    ["ad", commands, "add"],
    ["dividee", commands, "divide"],
    ["adition", commands, "addition"],
    ["aditionn", commands, "addition"], // 2 edits in 8 characters
    ["tcpy.pnig", commands, "tcpy.ping"],
    ["sat", ["set", "sit"], "set"], // a tie: the first
    ["gxt", ["zzz", "gat", "get"], "gat"], // also a tie: the order of the candidates decides
    ["ddivide", ["divide", "dividee"], "divide"],
    ["hello", ["help"], undefined], // 2 edits in 5 characters: too far
    ["frobnicate", commands, undefined],
    ["x", ["y"], undefined], // nothing of the name would be left
    ["get", commands, undefined], // a known name: nothing to suggest
    ["got", ["get", "got"], undefined],
    ["", commands, undefined],
    ["anything", [], undefined],
  ];
  for (const [name, candidates, expected] of cases) {
    assert.equal(closest(name, candidates), expected, `closest(${JSON.stringify(name)})`);
  }
});

Deno.test("closest takes any iterable, such as a Map's keys", () => {
  const commands = new Map([["get", 1], ["set", 2]]);
  assert.equal(closest("sett", commands.keys()), "set");
});

Deno.test("closest skips candidates by length first, so a huge name costs nothing", () => {
  const huge = "g".repeat(1_000_000);
  const started = performance.now();
  assert.equal(closest(huge, ["get", "set", "add"]), undefined);
  assert.ok(performance.now() - started < 50, "no distance computed against short names");
});

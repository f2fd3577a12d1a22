/**
 * "Did you mean ...?" for a mistyped name: the candidate closest to it by
 * edit distance, if one is close enough to be the likely intent. Pure: no
 * I/O, no state.
 *
 * @module
 */

/**
 * The edit distance between two strings: insertions, deletions,
 * substitutions and swaps of two neighbouring characters each count 1
 * (Damerau-Levenshtein, optimal string alignment). Case-sensitive; compares
 * UTF-16 code units.
 *
 * @param a One string.
 * @param b The other.
 * @returns How many edits turn `a` into `b`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { editDistance } from "./suggest.ts";
 * assert.equal(editDistance("gett", "get"), 1);
 * assert.equal(editDistance("ecoh", "echo"), 1); // one swap
 * assert.equal(editDistance("add", "sub"), 3);
 * ```
 */
export function editDistance(a: string, b: string): number {
  // Three rows of the table: the one two above is needed for swaps.
  let before: number[] = [];
  let above = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(above[j] + 1, row[j - 1] + 1, above[j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        best = Math.min(best, before[j - 2] + 1);
      }
      row.push(best);
    }
    before = above;
    above = row;
  }
  return above[b.length];
}

/**
 * The candidate `name` was most likely meant to be, compared without regard
 * to case: one at most 2 edits away, and at most a third of `name`'s length
 * (at least 1), with at least one character of `name` left standing. The
 * nearest wins; between equally near ones, the first. If `name` itself is
 * among the candidates there is nothing to suggest.
 *
 * Cheap for any input: a candidate whose length differs from `name`'s by
 * more than the limit is skipped without computing a distance, so a huge
 * `name` from a client costs nothing against short command names.
 *
 * @param name What was asked for, e.g. an unknown command.
 * @param candidates What exists.
 * @returns The suggestion, or `undefined` if nothing is close.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { closest } from "./suggest.ts";
 * assert.equal(closest("gett", ["get", "set", "add"]), "get");
 * assert.equal(closest("GET", ["get"]), "get");
 * assert.equal(closest("frobnicate", ["get", "set"]), undefined);
 * ```
 */
export function closest(name: string, candidates: Iterable<string>): string | undefined {
  const limit = Math.min(2, Math.max(1, Math.floor(name.length / 3)));
  let wanted: string | undefined;
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of candidates) {
    if (candidate === name) return undefined;
    if (Math.abs(candidate.length - name.length) > limit) continue;
    wanted ??= name.toLowerCase();
    const distance = editDistance(wanted, candidate.toLowerCase());
    if (distance <= limit && distance < name.length && distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best;
}

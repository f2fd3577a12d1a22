import assert from "node:assert/strict";
import { nextPhase, type Phase, type PhaseEvent, readsRequests } from "./phase.ts";

const PHASES: Phase[] = ["authenticating", "open", "draining", "ignoring", "lingering", "closed"];

Deno.test("nextPhase: every phase and event, by table", () => {
  const table: Record<Phase, Record<PhaseEvent, Phase>> = {
    authenticating: {
      authenticated: "open",
      drain: "draining",
      ignore: "ignoring",
      bye: "authenticating",
      close: "closed",
    },
    open: {
      authenticated: "open",
      drain: "draining",
      ignore: "ignoring",
      bye: "open",
      close: "closed",
    },
    draining: {
      authenticated: "draining",
      drain: "draining",
      ignore: "ignoring",
      bye: "lingering",
      close: "closed",
    },
    ignoring: {
      authenticated: "ignoring",
      drain: "ignoring",
      ignore: "ignoring",
      bye: "lingering",
      close: "closed",
    },
    lingering: {
      authenticated: "lingering",
      drain: "lingering",
      ignore: "lingering",
      bye: "lingering",
      close: "closed",
    },
    closed: {
      authenticated: "closed",
      drain: "closed",
      ignore: "closed",
      bye: "closed",
      close: "closed",
    },
  };
  for (const phase of PHASES) {
    for (const [event, next] of Object.entries(table[phase])) {
      assert.equal(nextPhase(phase, event as PhaseEvent), next, `${phase} + ${event}`);
    }
  }
});

Deno.test("readsRequests: only before the bye and before a refusal", () => {
  assert.deepEqual(PHASES.filter(readsRequests), ["authenticating", "open", "draining"]);
});

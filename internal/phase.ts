/**
 * A server connection's lifecycle as one value and one pure transition
 * function, so every rule about what a connection does next is in a table.
 *
 * ```text
 * authenticating ─► open ─► draining ─► lingering ─► closed
 *        └────────────┴──► ignoring ───────┘
 * ```
 * Any phase may end in `closed` (reset, abort, write failure).
 *
 * @module
 */

/** Where a connection is in its life. */
export type Phase =
  /** A secret is required and not given yet: only `tcpy.auth` is read. */
  | "authenticating"
  /** Calls are taken. */
  | "open"
  /** Calls in flight finish; new calls are answered with the drain reason. */
  | "draining"
  /** As draining, but input is no longer read as requests (after a refusal). */
  | "ignoring"
  /** `tcpy.bye` was sent: input is discarded until the client closes. */
  | "lingering"
  /** The socket is closed. */
  | "closed";

/** What can happen to a connection. */
export type PhaseEvent =
  /** The client gave the right secret. */
  | "authenticated"
  /** Stop taking calls (server closing, oversize message, idle, client done). */
  | "drain"
  /** Stop reading input as requests (refused authentication, message timeout). */
  | "ignore"
  /** Every call is answered and `tcpy.bye` is sent. */
  | "bye"
  /** The socket closes. */
  | "close";

/**
 * The phase after `event`; an event that does not apply leaves it as is.
 *
 * @param phase The current phase.
 * @param event What happened.
 * @returns The next phase.
 */
export function nextPhase(phase: Phase, event: PhaseEvent): Phase {
  switch (event) {
    case "close":
      return "closed";
    case "authenticated":
      return phase === "authenticating" ? "open" : phase;
    case "drain":
      return phase === "authenticating" || phase === "open" ? "draining" : phase;
    case "ignore":
      return phase === "lingering" || phase === "closed" ? phase : "ignoring";
    case "bye":
      return phase === "draining" || phase === "ignoring" ? "lingering" : phase;
  }
}

/** Whether input in `phase` is read as requests. */
export function readsRequests(phase: Phase): boolean {
  return phase === "authenticating" || phase === "open" || phase === "draining";
}

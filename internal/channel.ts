/**
 * How a running handler reaches its caller. The server, a worker or a test
 * harness attaches a {@linkcode Channel} to a handler before `execute()`.
 *
 * @module
 */

/** The two directions of a call's conversation. */
export interface Channel {
  /** Sends data to the caller. */
  send(data: unknown): Promise<void>;
  /** Receives the caller's next data; a reader that gives up passes `signal`. */
  recv(signal?: AbortSignal): Promise<unknown>;
}

/** The property under which a handler finds its {@linkcode Cancellation}. */
export const SIGNAL: unique symbol = Symbol.for("tcpy.signal") as never;

/**
 * The property a handler's channel lives under. A global symbol, so two
 * copies of tcpy loaded in one worker still agree on it.
 */
export const CHANNEL: unique symbol = Symbol.for("tcpy.channel") as never;

/**
 * Attaches `channel` to `handler`. A plain assignment (JSON never includes
 * symbol keys): `Object.defineProperty` cost 11% of the inline hot path.
 */
export function attachChannel(
  handler: object,
  channel: Channel | undefined,
  cancellation: Cancellation | undefined,
): void {
  if (channel) (handler as { [CHANNEL]?: Channel })[CHANNEL] = channel;
  if (cancellation) (handler as { [SIGNAL]?: Cancellation })[SIGNAL] = cancellation;
}

/**
 * A call's cancellation signal, made on first use (most handlers never ask):
 * aborted with the reason once `stop` is called, before or after.
 */
export class Cancellation {
  #aborter: AbortController | undefined;
  #stopped: Error | undefined;

  /** The signal, aborted if the call was stopped already. */
  signal(): AbortSignal {
    this.#aborter ??= new AbortController();
    if (this.#stopped && !this.#aborter.signal.aborted) this.#aborter.abort(this.#stopped);
    return this.#aborter.signal;
  }

  /** Aborts the signal (now, or when it is made) with `reason`; the first reason wins. */
  stop(reason: Error): void {
    this.#stopped ??= reason;
    if (this.#aborter && !this.#aborter.signal.aborted) this.#aborter.abort(reason);
  }
}

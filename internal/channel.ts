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

/**
 * The property under which a handler finds its cancellation signal, as a
 * function: the `AbortController` is only made for handlers that ask.
 */
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
  signal: (() => AbortSignal) | undefined,
): void {
  if (channel) (handler as { [CHANNEL]?: Channel })[CHANNEL] = channel;
  if (signal) (handler as { [SIGNAL]?: () => AbortSignal })[SIGNAL] = signal;
}

/**
 * A call's cancellation signal, made on first use: aborted with the reason
 * once `stop` is called, whether that happens before or after.
 */
export function lazySignal(): { signal: () => AbortSignal; stop(reason: Error): void } {
  let aborter: AbortController | undefined;
  let stopped: Error | undefined;
  return {
    signal: () => {
      aborter ??= new AbortController();
      if (stopped && !aborter.signal.aborted) aborter.abort(stopped);
      return aborter.signal;
    },
    stop: (reason) => {
      stopped ??= reason;
      if (aborter && !aborter.signal.aborted) aborter.abort(reason);
    },
  };
}

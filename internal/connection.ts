/**
 * One client connection on the server: socket → frames → messages →
 * dispatch → handler → reply. Owns its socket; knows nothing of the
 * listener or of where handlers run (that is the {@linkcode Executor}'s job).
 *
 * @module
 */

import {
  asciiText,
  AUTH_METHOD,
  BYE_METHOD,
  decodeLine,
  errorText,
  idKey,
  type Incoming,
  type JsonRpcId,
  MESSAGE_METHOD,
  messageText,
  parseIncoming,
  parseLine,
  parseMessageParams,
  PING_METHOD,
  resultText,
} from "../codec.ts";
import { CallTimeoutError, ErrorCode, type TcpyError, type WireError } from "../errors.ts";
import { LineSplitter } from "../framing.ts";
import type { HandlerClass } from "../handler.ts";
import { clientGone, type Executor, type Invocation, type Task } from "./executor.ts";
import { exactUtf8Length, utf8Length } from "./json_text.ts";
import { closest } from "./suggest.ts";
import { admitPooled, type PoolShares } from "./admission.ts";
import { DEMOTE_US, type Placement } from "./placement.ts";
import { nextPhase, type Phase, readsRequests } from "./phase.ts";
import {
  type CallFailure,
  type CallRecord,
  FAILURE_CODES,
  failureReference,
  type StatsTable,
} from "./observe.ts";

/** The server's observation hooks, as each connection uses them. */
export interface Observer {
  /** Told of every finished call, if set. */
  readonly onCall: ((record: CallRecord) => void) | undefined;
  /** Told of every call the server failed (logs by default). */
  readonly onError: (event: CallFailure) => void;
  /** Per-command counters, if kept. */
  readonly stats: StatsTable | undefined;
  /** Whether a handler's own error text reaches the client. */
  readonly exposeErrors: boolean;
  /** Commands already warned about for returning undefined. */
  readonly warned: Set<string>;
}

import { LineWriter } from "./line_writer.ts";
import { readLines } from "./read_loop.ts";
import type { Outcome } from "./run_handler.ts";
import { TURN_MIN_US, turnAfterYield, yieldTurn } from "./turns.ts";

let connections = 0;
/** Reads dispatched on this thread by any connection: shows whether others ran during a yield. */
let threadReads = 0;
/** A read's dispatch may take this long per line (µs) before its measured commands are judged slow. */
const LINE_ALLOWANCE_US = 20;
/**
 * Calls one connection may have in the worker pool (queued or running);
 * its further lines wait unread until one finishes. This bounds what one
 * client has in transit between threads: at most this many results, each
 * at most `maxReplyBytes`, besides what waits in its writer.
 */
export const POOL_SHARE = 16;
/**
 * Bytes of lines held for room in the pool while reading goes on (so
 * conversation data reaches the calls in the pool); past this, reading
 * waits too.
 */
const HOLD_WHILE_READING = 256 * 1024;

/** What every connection of one server shares. */
export interface ConnectionContext {
  /** Command name → handler class (a `Map`, so `"constructor"` is no command). */
  readonly commands: ReadonlyMap<string, HandlerClass>;
  /** The worker pool, if the server has one. */
  readonly pool: Executor | undefined;
  /** Whether the pool has workers for any command (else only the home thread, for shared ones). */
  readonly workers: boolean;
  /** The main-thread executor. */
  readonly inline: Executor;
  /** Largest message accepted, in bytes. */
  readonly maxMessageBytes: number;
  /** Most elements accepted in one batch. */
  readonly maxBatchLength: number;
  /** Most calls in flight on one connection; more are answered "server busy". */
  readonly maxInFlight: number;
  /** Most calls queued in the pool, server-wide; more are answered "server busy". */
  readonly maxPendingCalls: number;
  /** Reading pauses, and `send()` waits, while this many reply bytes wait to be written. */
  readonly maxOutputBytes: number;
  /** A connection with more than this many bytes waiting is cut as a slow consumer. */
  readonly cutOutputBytes: number;
  /** Largest reply line (or batch reply) the server writes, in bytes. */
  readonly maxReplyBytes: number;
  /** A request line must be complete this long after its first byte arrived (ms; 0: never). */
  readonly messageTimeout: number;
  /** How the pool's queue is shared between connections. */
  readonly shares: PoolShares;
  /** `performance.now()` as of the sweeper's last tick: a clock that costs nothing to read. */
  readonly clock: { now: number };
  /** Who hears about calls and failures (onCall, onError, stats). */
  readonly observer: Observer;
  /** Where commands without `static inline` run; `undefined`: always in the pool. */
  readonly placement: Placement | undefined;
  /** A call running longer is answered with -32002 and abandoned (ms; 0: never). */
  readonly handlerTimeout: number;
  /** A connection whose write makes no progress for this long is cut (ms; 0: never). */
  readonly writeTimeout: number;
  /** A connection with no input and no call for this long is closed (ms; 0: never). */
  readonly idleTimeout: number;
  /** How long a closing connection waits for the client to finish reading, in ms. */
  readonly linger: number;
  /** Shared-secret authentication, if the server requires it. */
  readonly auth: AuthPolicy | undefined;
}

/** What a connection must present before any command runs. */
export interface AuthPolicy {
  /** The secret, as UTF-8 bytes. */
  readonly secret: Uint8Array;
  /** Time allowed to authenticate after connecting, in ms. */
  readonly timeout: number;
  /** Largest message accepted before authentication, in bytes. */
  readonly maxMessageBytes: number;
}

const utf8 = new TextEncoder();
const utf8Decoder = new TextDecoder();

/** Compares in time that depends only on `expected`'s length, not on where they differ. */
function sameSecret(given: string, expected: Uint8Array): boolean {
  const bytes = utf8.encode(given);
  let diff = bytes.length ^ expected.length;
  for (let i = 0; i < expected.length; i++) diff |= (bytes[i] ?? 0) ^ expected[i];
  return diff === 0;
}

/** Where a call runs: see `ServerConnection.#where`. */
type Where = "pool" | "inline" | "here" | "timed";

/** Where the reply to one message (or one batch element) goes. */
interface ReplySink {
  /** One reply's JSON text, or `undefined` for a notification (no reply). */
  add(text: string | undefined): void;
}

/**
 * Collects a batch's replies and writes them as one array (none if all were
 * notifications). The array as a whole keeps to the reply size limit: a
 * reply that would take it over is replaced by an error for its id.
 */
class BatchReply implements ReplySink {
  #left: number;
  #bytes = 2;
  readonly #texts: string[] = [];
  readonly #write: (text: string) => void;
  readonly #limit: number;

  constructor(size: number, limit: number, write: (text: string) => void) {
    this.#left = size;
    this.#limit = limit;
    this.#write = write;
  }

  add(text: string | undefined): void {
    if (text !== undefined) {
      // Measured against the room left, not the whole limit: an estimate
      // that only settles "under the limit" says nothing about the room.
      // Exact bytes: the batch as a whole must keep to the limit.
      const room = this.#limit - this.#bytes - 1;
      const bytes = exactUtf8Length(text);
      if (bytes > room) {
        text = replyTooLarge(text, this.#bytes + 1 + bytes, this.#limit, "the batch reply");
      }
      this.#bytes += exactUtf8Length(text) + 1;
      this.#texts.push(text);
    }
    if (--this.#left === 0 && this.#texts.length > 0) this.#write(`[${this.#texts.join(",")}]`);
  }
}

/** The error reply that stands in for a reply over the size limit. */
function replyTooLarge(text: string, bytes: number, limit: number, what: string): string {
  // The id is the reply's own: its text starts `{"jsonrpc":"2.0","id":ID,`.
  const head = '{"jsonrpc":"2.0","id":';
  const end = text.indexOf(',"', head.length);
  const id = text.startsWith(head) && end > 0 ? JSON.parse(text.slice(head.length, end)) : null;
  return errorText(id, {
    code: ErrorCode.INTERNAL_ERROR,
    message:
      `Reply too large: ${what} would be ${bytes} bytes, the limit is ${limit} (maxReplyBytes)`,
  });
}

/**
 * One call in progress on a connection: what the connection tracks and what
 * it hands the executor, in one object (one allocation per call).
 */
class ActiveCall implements Invocation {
  task: Task | undefined = undefined;
  done = false;
  /** In the connection's map of calls in progress (it outlived its start). */
  tracked = false;

  constructor(
    readonly connection: ServerConnection,
    readonly command: string,
    readonly handler: HandlerClass,
    readonly params: unknown,
    readonly id: JsonRpcId | undefined,
    /** {@linkcode idKey} of the id, for the connection's map. */
    readonly key: JsonRpcId | bigint | undefined,
    readonly sink: ReplySink,
    /** The request's share of its line, in bytes. */
    readonly bytes: number,
    readonly pooled: boolean,
    /** Placed by measurement (no `static inline`): its costs are noted. */
    readonly measured: boolean,
    /** `performance.now()` (or the sweeper's clock) when the call arrived. */
    readonly startedAt: number,
  ) {}

  get conversational(): boolean {
    return this.id !== undefined;
  }

  get owner(): string {
    return this.connection.owner;
  }

  get group(): string {
    return this.connection.group;
  }

  send(json: string): Promise<void> | undefined {
    return this.connection.sendFor(this, json);
  }

  finish(outcome: Outcome, cost?: number): void {
    this.connection.finished(this, outcome, cost);
  }
}

const BYE_TEXT = `{"jsonrpc":"2.0","method":"${BYE_METHOD}"}`;

function outcomeText(id: JsonRpcId, outcome: Outcome): string {
  return "json" in outcome ? resultText(id, outcome.json) : errorText(id, outcome.error);
}

/** "Unknown command: gett (did you mean "get"?)", when one is close. */
function unknownCommand(method: string, commands: ReadonlyMap<string, HandlerClass>): string {
  const near = closest(method, commands.keys());
  return near === undefined
    ? `Unknown command: ${method}`
    : `Unknown command: ${method} (did you mean ${JSON.stringify(near)}?)`;
}

/** Calls an observer; what it throws is reported, never passed on to the connection. */
function tell<T>(hook: (event: T) => void, event: T): void {
  try {
    hook(event);
  } catch (error) {
    console.error("tcpy: an onCall/onError hook threw:", error);
  }
}

function wireError(code: number, message: string): WireError {
  return { code, message };
}

/** Serves one accepted connection until the client leaves or the server drains it. */
export class ServerConnection {
  readonly #conn: Deno.Conn;
  readonly #ctx: ConnectionContext;
  readonly #writer: LineWriter;
  readonly #replies: ReplySink;
  /** Conversational calls in progress, by {@linkcode idKey} of their id. */
  readonly #calls = new Map<JsonRpcId | bigint, ActiveCall>();
  /** Calls without an id in progress (the rest are in #calls). */
  readonly #notifications = new Set<ActiveCall>();
  /** Calls in progress, with or without an id. */
  #running = 0;
  #splitter: LineSplitter | undefined;
  /** Where the connection is in its life: see phase.ts for the rules. */
  #phase: Phase;
  #draining: Promise<void> | undefined;
  readonly #inputEnded = Promise.withResolvers<void>();
  readonly #openedAt = Date.now();
  #lastActive = this.#openedAt;
  #drainReason: WireError = wireError(ErrorCode.SHUTTING_DOWN, "The server is shutting down");
  #idle: PromiseWithResolvers<void> | undefined;
  /** Calls of this connection queued or running in the worker pool. */
  #pooled = 0;
  /** When the unfinished line now buffered began (ms since epoch), 0 if none. */
  #partialSince = 0;
  /** Writes completed at the last sweep, and since when (ms since epoch) none has. */
  #writesSeen = 0;
  #stuckSince = 0;
  /** Lines read but not yet dispatched: held while output waits or after the turn ran out. */
  #held: (string | Uint8Array)[] = [];
  #heldBytes = 0;
  #holding = false;
  /** The pause in progress ({@linkcode #giveWay}), if any. */
  #resuming: Promise<void> | undefined;
  /** µs this connection has dispatched since it last gave way, and how long it may. */
  #turnUs = 0;
  #turnBudget = TURN_MIN_US;
  /** When the dispatch in progress began (`performance.now()`). */
  #dispatchStart = 0;
  /** {@linkcode threadReads} after this connection's last dispatch. */
  #readsSeen = -1;
  /** Lines seen in the dispatch in progress. */
  #lines = 0;
  /** Measured commands run here in the dispatch in progress (for placement). */
  readonly #here: string[] = [];
  /** Resolved when a pooled call finishes while lines wait for {@linkcode POOL_SHARE}. */
  #poolRoom: PromiseWithResolvers<void> | undefined;
  /** This connection's number, for observers. */
  readonly #number = ++connections;
  /** Who its pooled calls wait as: this connection, of this address (`fair_queue.ts`). */
  readonly owner: string = String(this.#number);
  readonly group: string;

  constructor(conn: Deno.Conn, ctx: ConnectionContext) {
    this.#conn = conn;
    const addr = conn.remoteAddr as Partial<Deno.NetAddr>;
    this.group = typeof addr.hostname === "string" ? addr.hostname : "";
    this.#ctx = ctx;
    this.#phase = ctx.auth === undefined ? "open" : "authenticating";
    this.#writer = new LineWriter(conn, () => this.abort());
    this.#replies = {
      add: (text) => {
        if (text !== undefined) this.#write(text);
      },
    };
  }

  /** Calls running for this connection. */
  get running(): number {
    return this.#running;
  }

  /**
   * Enforces the deadlines, called periodically by the server: answers and
   * abandons calls past the handler timeout, cuts a connection whose writes
   * are stuck, closes an idle one, and one that did not authenticate in time.
   */
  sweep(now: number): void {
    if (this.#phase === "closed") return;
    const { handlerTimeout, writeTimeout, idleTimeout, auth } = this.#ctx;
    if (handlerTimeout > 0) {
      const clock = performance.now();
      for (const running of this.#inProgress()) {
        if (clock - running.startedAt < handlerTimeout) continue;
        const error = new CallTimeoutError(
          `Call to "${running.command}" timed out after ${handlerTimeout} ms`,
        );
        running.finish({ error: error.toWire() });
        running.task?.abandon(error);
      }
    }
    const { messageTimeout } = this.#ctx;
    if (writeTimeout > 0 && this.#writeStuck(now) >= writeTimeout) {
      this.abort(); // the client stopped reading its replies
    } else if (
      messageTimeout > 0 && this.#partialSince > 0 && now - this.#partialSince >= messageTimeout
    ) {
      // A client dripping a line slowly would hold its buffer forever.
      const error = wireError(
        ErrorCode.INVALID_REQUEST,
        `Invalid request: a message must arrive whole within ${messageTimeout} ms ` +
          "(messageTimeout); closing the connection",
      );
      this.#partialSince = 0;
      this.#write(errorText(null, error));
      this.#drainReason = error;
      this.#phase = nextPhase(this.#phase, "ignore"); // the rest is not read as requests
      this.drain(error);
    } else if (
      this.#phase === "authenticating" && auth && now - this.#openedAt >= auth.timeout
    ) {
      this.#refuse(`Unauthorized: no ${AUTH_METHOD} within ${auth.timeout} ms`);
    } else if (
      idleTimeout > 0 && this.#running === 0 && now - this.#lastActive >= idleTimeout
    ) {
      this.drain();
    }
  }

  /**
   * Reads and answers until the client ends its side (then finishes the
   * calls in flight and closes) or the connection is aborted.
   */
  async serve(): Promise<void> {
    const { auth, maxMessageBytes, maxOutputBytes } = this.#ctx;
    const splitter = new LineSplitter({
      line: (bytes) => this.#onLine(bytes),
      text: (text) => this.#onText(text),
      oversize: (limit) => this.#onOversize(limit),
    }, { maxMessageBytes: auth ? auth.maxMessageBytes : maxMessageBytes });
    this.#splitter = splitter;
    // Called before every read: notes when an unfinished line began (for the
    // message timeout), and holds reading while replies wait (backpressure),
    // while lines are held, or when this connection's turn is over.
    const paused = () => {
      if (splitter.buffered === 0) this.#partialSince = 0;
      else if (this.#partialSince === 0) this.#partialSince = Date.now();
      return this.#held.length > 0 || this.#writer.pending >= maxOutputBytes ||
          this.#turnUs >= this.#turnBudget
        ? this.#resume()
        : undefined;
    };
    const input = {
      push: (chunk: Uint8Array, text?: string) => this.#timed(() => splitter.push(chunk, text)),
      end: () => splitter.end(),
    };
    try {
      await readLines(this.#conn, input, paused, asciiText);
    } catch {
      // Reset by the peer, or closed by abort(): either way no more input.
      this.abort();
      return;
    } finally {
      this.#inputEnded.resolve();
    }
    // Lines read but still held are requests like any other: they run (the
    // calls in the pool are told first that their client is gone, so
    // conversations waiting for it end and make room).
    while (this.#held.length > 0 && this.#phase !== "closed") {
      this.#cancelAll(clientGone());
      if (this.#pooled >= POOL_SHARE) {
        this.#poolRoom ??= Promise.withResolvers();
        await this.#poolRoom.promise;
      }
      await this.#resume();
    }
    // End of input. A client that closed and one that only half-closed (nc
    // after Ctrl-D) look the same here, so both count as gone: recv()
    // rejects and `signal` aborts. Calls that finish anyway still get their
    // replies before the socket closes.
    this.#cancelAll(clientGone());
    await this.drain();
  }

  /**
   * Runs one dispatch (a read's lines, or held lines) timed: two clock reads
   * per dispatch, not per call. The time counts against this connection's
   * turn, and a slow dispatch sends the measured commands that ran inline
   * in it back to the pool (placement.ts).
   */
  #timed(dispatch: () => void): void {
    const start = performance.now();
    // Another connection of this thread dispatched since this one last did:
    // the others had their turn, this one starts a fresh one.
    if (threadReads !== this.#readsSeen) this.#turnUs = 0;
    this.#readsSeen = ++threadReads;
    this.#dispatchStart = start;
    this.#lines = 0;
    dispatch();
    const end = performance.now();
    const us = (end - start) * 1000;
    this.#turnUs += us;
    if (this.#here.length > 0) {
      if (us > DEMOTE_US + this.#lines * LINE_ALLOWANCE_US) {
        this.#ctx.placement!.slowRead(this.#here, us);
      }
      this.#here.length = 0;
    }
  }

  /**
   * Whether the line now arriving must be held rather than dispatched: the
   * client has too many replies waiting (reading a whole read's calls at
   * once would queue them all), or {@linkcode POOL_SHARE} calls in the
   * pool, or this connection's turn ran out (the clock is read every 16
   * lines).
   */
  #mustHold(): boolean {
    if (this.#writer.pending >= this.#ctx.maxOutputBytes) return this.#holding = true;
    if (this.#pooled >= POOL_SHARE) return this.#holding = true;
    if ((++this.#lines & 15) !== 0) return false;
    const spent = this.#turnUs + (performance.now() - this.#dispatchStart) * 1000;
    return this.#holding = spent >= this.#turnBudget;
  }

  /** Starts {@linkcode #giveWay} unless it runs already; resolves when it is done. */
  #resume(): Promise<void> {
    this.#resuming ??= this.#giveWay().finally(() => this.#resuming = undefined);
    return this.#resuming;
  }

  /**
   * Gives the other connections of this thread a turn (a timer: only a
   * macrotask lets the event loop poll their sockets), waits for the client
   * to read its replies, or for room in the pool; then dispatches the held
   * lines, as many as the new turn allows, until none is left. The turn
   * grows while nobody else runs during the pauses, so a client alone keeps
   * its throughput.
   */
  async #giveWay(): Promise<void> {
    const maxOutputBytes = this.#ctx.maxOutputBytes;
    for (;;) {
      if (this.#phase !== "open" && this.#phase !== "authenticating") {
        // Draining: held requests are only refused now (no handler runs), so
        // answer them at once and go on reading; lingering or closed: they
        // would be ignored. Either way reading must not stop (a socket
        // closed with unread input is reset, destroying replies).
        this.#holding = false;
        if (this.#held.length > 0) this.#timed(() => this.#replay());
        this.#held = [];
        this.#heldBytes = 0;
        return;
      }
      if (this.#writer.pending >= maxOutputBytes) {
        await this.#writer.below(maxOutputBytes);
      } else if (this.#held.length > 0 && this.#pooled >= POOL_SHARE) {
        // Held only for room in the pool: reading goes on (within a bound),
        // so conversation data for the calls in the pool still gets
        // through; a pooled call that finishes resumes the held lines.
        if (this.#heldBytes < HOLD_WHILE_READING) return;
        this.#poolRoom ??= Promise.withResolvers();
        await this.#poolRoom.promise;
      } else if (this.#held.length > 0 || this.#turnUs >= this.#turnBudget) {
        const before = threadReads;
        await yieldTurn();
        this.#turnBudget = turnAfterYield(this.#turnBudget, threadReads !== before);
      } else return;
      if ((this.#phase as Phase) === "closed") return;
      this.#turnUs = 0;
      this.#holding = false;
      if (this.#held.length > 0) this.#timed(() => this.#replay());
    }
  }

  /**
   * Whether a line that would be held goes through at once: conversation
   * data for a call in progress (the call may be what the held lines wait
   * for: a pooled conversation waiting for this very message), or a ping
   * (it costs nothing and says the connection is alive). Parses the line
   * only if it names one of those methods.
   */
  #passesHeld(line: string | Uint8Array): boolean {
    if (this.#phase === "authenticating") return false;
    const text = typeof line === "string" ? line : utf8Decoder.decode(line);
    const ping = text.includes(PING_METHOD);
    if (!ping && (this.#calls.size === 0 || !text.includes(MESSAGE_METHOD))) return false;
    try {
      const message = parseIncoming(parseLine(text));
      if (message.kind === "invalid") return false;
      if (message.method === PING_METHOD) return true;
      if (message.kind !== "notification" || message.method !== MESSAGE_METHOD) return false;
      const params = parseMessageParams(message.params);
      return params !== undefined && this.#calls.has(idKey(params.id));
    } catch {
      return false;
    }
  }

  #hold(line: string | Uint8Array): void {
    this.#held.push(line);
    this.#heldBytes += line.length;
  }

  /** Dispatches held lines until none is left or the turn runs out again. */
  #replay(): void {
    const held = this.#held;
    this.#held = [];
    this.#heldBytes = 0;
    let i = 0;
    for (; i < held.length && !this.#holding; i++) {
      const line = held[i];
      if (typeof line === "string") this.#onText(line);
      else this.#onLine(line);
    }
    // A line that ran out the turn was held again (it is in #held now),
    // ahead of the ones not reached.
    for (; i < held.length; i++) this.#hold(held[i]);
  }

  /**
   * Stops taking new calls (they are answered with `reason`), waits for the
   * calls in flight and their replies, then closes the socket.
   */
  drain(reason?: WireError): Promise<void> {
    if (this.#phase === "closed") return Promise.resolve();
    if (reason && (this.#phase === "open" || this.#phase === "authenticating")) {
      this.#drainReason = reason;
    }
    this.#phase = nextPhase(this.#phase, "drain");
    // One drain for every caller (serve, the sweeper, the server's close):
    // none may return while another still holds the socket.
    this.#draining ??= this.#drainOnce();
    return this.#draining;
  }

  async #drainOnce(): Promise<void> {
    if (this.#running > 0) {
      this.#idle ??= Promise.withResolvers();
      await this.#idle.promise;
    }
    await this.#writer.drained();
    if (this.#phase === "closed" || this.#phase === "lingering") return;
    // Every request read so far has been answered: say so, so the client
    // knows that whatever it still waits for was never read, never ran.
    this.#phase = nextPhase(this.#phase, "bye");
    this.#writer.write(BYE_TEXT);
    await this.#writer.drained();
    // Linger: closing a socket with unread input makes the kernel send a
    // reset, which can destroy replies not yet delivered. So end our side,
    // let the client read everything and close, and discard what it still
    // sends (for at most the `linger` option, in ms).
    try {
      await this.#conn.closeWrite();
    } catch {
      // Already reset by the peer.
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      this.#inputEnded.promise,
      new Promise((resolve) => timer = setTimeout(resolve, this.#ctx.linger)),
    ]);
    clearTimeout(timer);
    this.#close();
  }

  /** Closes at once: calls in flight lose their client (their `recv()` rejects). */
  abort(): void {
    if (this.#phase === "closed") return;
    // Cut: nothing can be answered, so calls still waiting for a worker are dropped.
    this.#cancelAll(clientGone(), true);
    this.#close();
  }

  /**
   * Queues one line. A client far behind on reading is cut (a slow
   * consumer): reading pauses earlier, but replies of calls already running
   * and handlers' sends could otherwise pile up without bound.
   */
  #write(text: string): void {
    if (this.#phase === "closed") return;
    this.#writer.write(text);
    if (this.#writer.pending > this.#ctx.cutOutputBytes) this.abort();
  }

  /** A reply line, or an error in its place if it is over the reply size limit. */
  #reply(id: JsonRpcId, outcome: Outcome): string {
    const text = outcomeText(id, outcome);
    const limit = this.#ctx.maxReplyBytes;
    if (text.length * 3 <= limit) return text;
    const bytes = utf8Length(text, limit);
    return bytes <= limit ? text : replyTooLarge(text, bytes, limit, "the reply");
  }

  /**
   * Tells the observers how a call ended; logs a failure with a reference
   * and, unless errors are exposed, returns the outcome with the handler's
   * text replaced by that reference.
   */
  #observe(
    running: ActiveCall,
    id: JsonRpcId | undefined,
    outcome: Outcome,
    bytes: number,
  ): Outcome {
    const observer = this.#ctx.observer;
    const failed = "error" in outcome && FAILURE_CODES.has(outcome.error.code);
    if (!failed && !observer.onCall && !observer.stats) {
      if ("returnedUndefined" in outcome && id !== undefined) this.#warnUndefined(running.command);
      return outcome;
    }
    const durationMs = performance.now() - running.startedAt;
    const ok = "json" in outcome;
    const code = "error" in outcome ? outcome.error.code : undefined;
    const record: CallRecord = {
      command: running.command,
      // An id above 2^53 is kept as raw JSON text, which cannot cross
      // threads: observers get its exact digits as a string.
      id: typeof id === "object" && id !== null ? (id as { rawJSON: string }).rawJSON : id,
      ok,
      ...(code === undefined ? {} : { code }),
      durationMs,
      connection: this.#number,
      ...this.#remote(),
    };
    observer.stats?.add(running.command, ok, failed, durationMs);
    if (observer.onCall) tell(observer.onCall, record);
    if ("returnedUndefined" in outcome && id !== undefined) this.#warnUndefined(running.command);
    if (!failed || !("error" in outcome)) return outcome;
    const reference = failureReference();
    const data = outcome.error.data as { name?: unknown } | undefined;
    tell(observer.onError, {
      ...record,
      error: {
        name: typeof data?.name === "string" ? data.name : "Error",
        message: outcome.error.message,
        ...(outcome.stack === undefined ? {} : { stack: outcome.stack }),
      },
      paramsBytes: bytes,
      reference,
    });
    if (observer.exposeErrors || outcome.error.code !== ErrorCode.INTERNAL_ERROR) return outcome;
    return {
      error: {
        code: ErrorCode.INTERNAL_ERROR,
        message: `Internal error (reference ${reference})`,
      },
    };
  }

  #remote(): { remote?: { hostname: string; port: number } } {
    const addr = this.#conn.remoteAddr as Partial<Deno.NetAddr>;
    return typeof addr.hostname === "string" && typeof addr.port === "number"
      ? { remote: { hostname: addr.hostname, port: addr.port } }
      : {};
  }

  #warnUndefined(command: string): void {
    const { warned } = this.#ctx.observer;
    if (warned.has(command)) return;
    warned.add(command);
    console.error(
      `tcpy: "${command}" returned undefined from execute(), so its caller got null: ` +
        "did it forget to return? (said once per command)",
    );
  }

  /**
   * How long (ms) the write in progress has made no progress, as far as the
   * sweeps have seen: 0 when nothing is being written. A stuck write is
   * cut between `writeTimeout` and `writeTimeout` plus one sweep interval
   * after its last progress (the interval: a quarter of the shortest
   * deadline, kept between 10 ms and 1 s).
   */
  #writeStuck(now: number): number {
    const writer = this.#writer;
    if (!writer.writing) {
      this.#stuckSince = 0;
      return 0;
    }
    if (this.#stuckSince === 0 || writer.writes !== this.#writesSeen) {
      this.#writesSeen = writer.writes;
      this.#stuckSince = now;
    }
    return now - this.#stuckSince;
  }

  *#inProgress(): Iterable<ActiveCall> {
    yield* this.#calls.values();
    yield* this.#notifications;
  }

  #close(): void {
    if (this.#phase === "closed") return;
    this.#phase = "closed";
    this.#idle?.resolve();
    this.#poolRoom?.resolve();
    try {
      this.#conn.close();
    } catch {
      // Already closed.
    }
  }

  #cancelAll(reason: Error, drop = false): void {
    for (const running of this.#calls.values()) running.task?.cancel(reason, drop);
    if (drop) { for (const running of this.#notifications) running.task?.cancel(reason, true); }
  }

  #onOversize(limit: number): void {
    if (!readsRequests(this.#phase)) return;
    if (this.#ctx.idleTimeout > 0) this.#lastActive = Date.now();
    if (this.#phase === "authenticating") {
      this.#refuse(
        `Unauthorized: the first message must be ${AUTH_METHOD}, in at most ${limit} bytes`,
      );
      return;
    }
    const error = wireError(
      ErrorCode.MESSAGE_TOO_LARGE,
      `Message too large: the limit is ${limit} bytes; closing the connection`,
    );
    this.#replies.add(errorText(null, error));
    this.drain(error);
  }

  /** A line that did not arrive whole in one all-ASCII read. */
  #onLine(bytes: Uint8Array): void {
    this.#onFrame(bytes, bytes.length, decodeLine);
  }

  /** A line that arrived whole in one all-ASCII read: its text is its bytes. */
  #onText(text: string): void {
    this.#onFrame(text, text.length, parseLine);
  }

  /** One line, `bytes` long on the wire, and the codec function that parses it. */
  #onFrame<L extends Uint8Array | string>(
    line: L,
    bytes: number,
    parse: (line: L) => unknown,
  ): void {
    if (!readsRequests(this.#phase)) return;
    if (
      (this.#phase === "open" || this.#phase === "authenticating") &&
      (this.#holding || this.#held.length > 0 || this.#mustHold()) && !this.#passesHeld(line)
    ) {
      // The splitter's bytes are its buffer's, reused: keep a copy.
      this.#hold(typeof line === "string" ? line : line.slice());
      return;
    }
    if (this.#ctx.idleTimeout > 0) this.#lastActive = Date.now();
    if (this.#phase === "authenticating") {
      this.#authenticate(typeof line === "string" ? utf8.encode(line) : line);
      return;
    }
    let value: unknown;
    try {
      value = parse(line);
    } catch (error) {
      this.#replies.add(errorText(null, (error as TcpyError).toWire()));
      return;
    }
    this.#onMessage(value, bytes);
  }

  /** One parsed line, `bytes` long: a request or a batch. */
  #onMessage(value: unknown, bytes: number): void {
    if (!Array.isArray(value)) {
      this.#dispatch(parseIncoming(value), this.#replies, bytes);
      return;
    }
    if (value.length === 0 || value.length > this.#ctx.maxBatchLength) {
      const message = value.length === 0
        ? "Invalid request: empty batch"
        : `Invalid request: a batch holds at most ${this.#ctx.maxBatchLength} requests`;
      this.#replies.add(errorText(null, wireError(ErrorCode.INVALID_REQUEST, message)));
      return;
    }
    const batch = new BatchReply(
      value.length,
      this.#ctx.maxReplyBytes,
      (text) => this.#replies.add(text),
    );
    const share = Math.ceil(bytes / value.length);
    for (const item of value) this.#dispatch(parseIncoming(item), batch, share);
  }

  /** Checks the first message against the shared secret; anything else ends the connection. */
  #authenticate(bytes: Uint8Array): void {
    let message: Incoming | undefined;
    try {
      message = parseIncoming(decodeLine(bytes));
    } catch {
      // Refused below like any other wrong first message.
    }
    const secret = message?.kind === "call" && message.method === AUTH_METHOD &&
        typeof message.params === "object" && message.params !== null
      ? (message.params as { secret?: unknown }).secret
      : undefined;
    if (typeof secret !== "string" || !sameSecret(secret, this.#ctx.auth!.secret)) {
      this.#refuse(`Unauthorized: the first message must be ${AUTH_METHOD} with the right secret`);
      return;
    }
    this.#phase = nextPhase(this.#phase, "authenticated");
    this.#splitter!.maxMessageBytes = this.#ctx.maxMessageBytes;
    this.#replies.add(resultText((message as { id: JsonRpcId }).id, '{"authenticated":true}'));
  }

  /** Answers with an authentication error (id null), then closes once it is written. */
  #refuse(message: string): void {
    if (!readsRequests(this.#phase)) return;
    this.#phase = nextPhase(this.#phase, "ignore");
    this.#replies.add(errorText(null, wireError(ErrorCode.UNAUTHORIZED, message)));
    this.#writer.drained().then(() => this.abort());
  }

  /** `bytes`: the message's share of its line, what it costs to hold unread. */
  #dispatch(message: Incoming, sink: ReplySink, bytes: number): void {
    if (message.kind === "invalid") {
      sink.add(errorText(message.id, message.error));
      return;
    }
    const { method } = message;
    if (method === MESSAGE_METHOD) {
      if (message.kind === "call") {
        sink.add(errorText(
          message.id,
          wireError(ErrorCode.INVALID_REQUEST, `Invalid request: ${MESSAGE_METHOD} takes no id`),
        ));
      } else {
        this.#deliver(message.params, bytes);
        sink.add(undefined);
      }
      return;
    }
    const id = message.kind === "call" ? message.id : undefined;
    if (method === PING_METHOD) {
      if (id === undefined) sink.add(undefined);
      else if (this.#phase !== "open") sink.add(errorText(id, this.#drainReason));
      else sink.add(resultText(id, '{"pong":true}'));
      return;
    }
    const cls = this.#ctx.commands.get(method);
    const where = cls && this.#where(cls, method);
    let refusal: WireError | undefined;
    if (!cls) {
      refusal = wireError(ErrorCode.METHOD_NOT_FOUND, unknownCommand(method, this.#ctx.commands));
    } else if (this.#phase !== "open") refusal = this.#drainReason;
    else if (this.#running >= this.#ctx.maxInFlight) {
      refusal = wireError(
        ErrorCode.SERVER_BUSY,
        `Server busy: ${this.#ctx.maxInFlight} calls already in flight on this connection`,
      );
    } else if (
      where === "pool" && this.#ctx.pool &&
      !admitPooled(
        this.#ctx.pool.inFlight,
        this.#ctx.maxPendingCalls,
        this.#pooled,
        this.#ctx.shares.holders,
      )
    ) {
      refusal = wireError(
        ErrorCode.SERVER_BUSY,
        this.#ctx.pool.inFlight >= this.#ctx.maxPendingCalls
          ? `Server busy: ${this.#ctx.maxPendingCalls} calls already queued for the worker pool`
          : `Server busy: this connection has ${this.#pooled} calls in the worker pool, its fair share while the pool is busy`,
      );
    } else if (id !== undefined && this.#calls.size > 0 && this.#calls.has(idKey(id))) {
      refusal = wireError(
        ErrorCode.INVALID_REQUEST,
        `Invalid request: id ${JSON.stringify(id)} is already used by a call in progress`,
      );
    }
    if (refusal || !cls) {
      sink.add(id === undefined ? undefined : errorText(id, refusal!));
      return;
    }
    this.#start(cls, method, message.params, id, sink, bytes, where!);
  }

  /**
   * Where a call to `cls` runs: in the pool, `"inline"` here (no pool, or
   * `static inline = true`), or here by measured placement (`"here"`, or
   * `"timed"` for the runs it times). One placement lookup per call.
   */
  #where(cls: HandlerClass, command: string): Where {
    const { pool, placement } = this.#ctx;
    if (cls.shared) return pool ? "pool" : "inline"; // the home thread, or the only thread
    if (!pool || cls.inline || !this.#ctx.workers) return "inline";
    if (cls.inline === false || !placement) return "pool";
    return placement.next(command);
  }

  #deliver(params: unknown, bytes: number): void {
    const message = parseMessageParams(params);
    if (message) this.#calls.get(idKey(message.id))?.task?.deliver(message.data, bytes);
  }

  #start(
    cls: HandlerClass,
    command: string,
    params: unknown,
    id: JsonRpcId | undefined,
    sink: ReplySink,
    bytes: number,
    where: Where,
  ): void {
    const { pool, placement, observer } = this.#ctx;
    const measured = cls.inline === undefined && !cls.shared && placement !== undefined;
    const pooled = where === "pool";
    if (pooled && this.#pooled++ === 0) this.#ctx.shares.holders++;
    const call = new ActiveCall(
      this,
      command,
      cls,
      params,
      id,
      id === undefined ? undefined : idKey(id),
      sink,
      bytes,
      pooled,
      measured,
      // A coarse clock (the sweeper's) is enough for the handler timeout;
      // observers that time calls get a precise one.
      observer.onCall || observer.stats ? performance.now() : this.#ctx.clock.now,
    );
    this.#running++;
    if (pooled) {
      call.task = pool!.run(call);
    } else if (where === "inline") {
      call.task = this.#ctx.inline.run(call);
    } else {
      // Moved here by measurement: keep measuring (some runs timed, see
      // Placement.next; every dispatch timed, see #timed), and send it back
      // if it turns slow. An async run is timed by its synchronous slice.
      const started = where === "timed" ? performance.now() : 0;
      call.task = this.#ctx.inline.run(call);
      // A timed run is judged on its own; the others by their dispatch.
      if (where === "timed") placement!.ran(command, (performance.now() - started) * 1000);
      else this.#here.push(command);
    }
    // Only a call still running is tracked (for messages, timeouts, the
    // duplicate-id check): most inline calls finish before run() returns.
    if (!call.done) {
      call.tracked = true;
      if (call.key !== undefined) this.#calls.set(call.key, call);
      else this.#notifications.add(call);
    }
  }

  /** A handler's conversation data for `call`'s client; a promise while the client lags. */
  sendFor(call: ActiveCall, json: string): Promise<void> | undefined {
    if (this.#phase === "closed" || call.done) return undefined;
    this.#write(messageText(call.id!, json));
    // Backpressure: the handler's send() waits while its client lags.
    const limit = this.#ctx.maxOutputBytes;
    return this.#writer.pending >= limit ? this.#writer.below(limit) : undefined;
  }

  /** `call`'s outcome (the first one counts): observed, then answered. */
  finished(call: ActiveCall, outcome: Outcome, cost?: number): void {
    if (call.done) return;
    call.done = true;
    if (call.measured && call.pooled && cost !== undefined) {
      // An async handler is judged by its synchronous slice, like a sync one.
      this.#ctx.placement!.pooled(call.command, cost);
    }
    outcome = this.#observe(call, call.id, outcome, call.bytes);
    if (call.tracked) {
      if (call.key !== undefined) this.#calls.delete(call.key);
      else this.#notifications.delete(call);
    }
    this.#running--;
    if (call.pooled) {
      if (--this.#pooled === 0) this.#ctx.shares.holders--;
      if (this.#pooled < POOL_SHARE) {
        this.#poolRoom?.resolve();
        this.#poolRoom = undefined;
        if (this.#held.length > 0 && this.#phase !== "closed") this.#resume();
      }
    }
    call.sink.add(call.id !== undefined ? this.#reply(call.id, outcome) : undefined);
    if (this.#running === 0) {
      this.#idle?.resolve();
      if (this.#ctx.idleTimeout > 0) this.#lastActive = Date.now();
    }
  }
}

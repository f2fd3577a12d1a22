/**
 * Conversation data as JSON text, with its size checked: what both sides
 * send. The client and the server both import it, so neither imports the
 * other's internals for it.
 *
 * @module
 */

import { MessageTooLargeError } from "../errors.ts";
import { toJson } from "../codec.ts";

const utf8 = new TextEncoder();

/**
 * UTF-8 length of `text`, without encoding it when its length already
 * settles whether it is over `limit`: then an upper bound if it is not, and
 * a lower bound (exact for ASCII) if it is.
 */
export function utf8Length(text: string, limit: number): number {
  // Each UTF-16 unit is 1 to 3 UTF-8 bytes.
  if (text.length * 3 <= limit) return text.length * 3;
  if (text.length > limit) return text.length;
  return utf8.encode(text).length;
}

/** Any character past ASCII (all of them are 2 or more UTF-8 bytes). */
const NOT_ASCII = /[\u0080-\uffff]/;

/** The exact UTF-8 length of `text`; encodes only text that is not plain ASCII. */
export function exactUtf8Length(text: string): number {
  return NOT_ASCII.test(text) ? utf8.encode(text).length : text.length;
}

/** Encodes conversation data, refusing what JSON cannot carry or what is too large. */
export function encodeSent(data: unknown, maxBytes = Infinity): string {
  const json = toJson(data);
  if (json instanceof Error) {
    throw new TypeError(`Cannot send(): data is not JSON-serializable: ${json.message}`);
  }
  if (maxBytes !== Infinity && json.length * 3 > maxBytes) {
    const bytes = utf8Length(json, maxBytes);
    if (bytes > maxBytes) {
      throw new MessageTooLargeError(
        `Cannot send(): the message is ${bytes} bytes, the limit is ${maxBytes} (maxReplyBytes)`,
      );
    }
  }
  return json;
}

/**
 * A channel's `send`: encodes the data as JSON and hands the text to
 * `deliver`, rejecting (not throwing) what JSON cannot carry. The promise
 * waits for whatever `deliver` returns (backpressure).
 */
export function jsonSender(
  deliver: (json: string) => unknown,
  maxBytes = Infinity,
): (data: unknown) => Promise<void> {
  return (data) => {
    try {
      const wait = deliver(encodeSent(data, maxBytes));
      return wait instanceof Promise ? wait : Promise.resolve();
    } catch (error) {
      return Promise.reject(error);
    }
  };
}

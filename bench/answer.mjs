/**
 * The tutorial `add`, answered by hand: the work every plain server of the
 * benchmark does per request line (the Deno baseline and the Node peer share
 * it, so they do exactly the same work).
 *
 * @module
 */

/**
 * The reply to one request line; a malformed one gets a JSON-RPC error.
 *
 * @param {string} line One request, without its newline.
 * @returns {string} The reply, without its newline.
 */
export function answer(line) {
  let id = null;
  let code = -32700; // Parse error, until JSON.parse succeeds.
  try {
    const request = JSON.parse(line);
    code = -32600;
    id = request.id ?? null;
    if (request.method !== "add") {
      code = -32601;
      throw new Error(`no method ${JSON.stringify(request.method)}`);
    }
    const sum = request.params.x + request.params.y;
    // Numbers print as JSON by themselves; anything else goes through JSON.stringify.
    const idText = typeof id === "number" ? id : JSON.stringify(id);
    const sumText = typeof sum === "number" && Number.isFinite(sum) ? sum : JSON.stringify(sum);
    return `{"jsonrpc":"2.0","id":${idText},"result":{"success":true,"solution":${sumText}}}`;
  } catch (error) {
    return JSON.stringify({ jsonrpc: "2.0", id, error: { code, message: String(error) } });
  }
}

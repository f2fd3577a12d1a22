/**
 * May a call start in the worker pool? A pure decision, so it can be tested
 * by table. The pool's queue is shared: without shares, one client holding
 * many idle conversations could fill it and starve every other client.
 *
 * @module
 */

/** How many connections hold pooled calls right now, kept by the connections. */
export interface PoolShares {
  holders: number;
}

/**
 * Admits a pooled call. Below half of `max` anything goes; above it, a
 * connection may add calls only while it holds fewer than its fair share of
 * the other half (`max / 2` split between the connections holding calls).
 * Every connection's calls past half are thus bounded by `max / 2` in
 * total, so the queue never fills and a connection with no calls in the
 * pool always gets in.
 *
 * @param inFlight Calls queued or running in the pool, server-wide.
 * @param max The pool's limit (`maxPendingCalls`).
 * @param mine Calls this connection has in the pool.
 * @param holders Connections with at least one call in the pool.
 * @returns Whether the call may start.
 */
export function admitPooled(inFlight: number, max: number, mine: number, holders: number): boolean {
  if (inFlight >= max) return false;
  if (inFlight < max / 2) return true;
  const sharing = mine === 0 ? holders + 1 : holders;
  return mine < Math.max(1, Math.floor(max / 2 / sharing));
}

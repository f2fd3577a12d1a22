/**
 * Many calls at once from one client. `TCPClient` sends every call on one
 * connection without waiting for the previous reply; the server runs them
 * side by side and answers each as soon as it is done, so replies come back
 * out of order and the client matches them to calls by id.
 *
 * ```sh
 * deno run --allow-net=127.0.0.1,localhost --allow-read examples/concurrent_client.ts [calls]
 * ```
 *
 * The server here looks up cities with a simulated delay (a stand-in for a
 * database or an HTTP API). It waits rather than computes, so its handlers
 * run inline (`static override inline = true`): a worker would only add a
 * hop.
 *
 * @module
 */
import { CallTimeoutError, TCPClient, TCPHandler, TCPServer } from "../mod.ts";

/** Made-up temperatures, in °C. */
export const TEMPERATURES: Readonly<Record<string, number>> = {
  Amsterdam: 11,
  Berlin: 9,
  Cairo: 27,
  Delhi: 31,
  Lima: 19,
  Nairobi: 21,
  Oslo: 4,
  Sydney: 23,
  Tokyo: 16,
  Toronto: 7,
};

/** The simulated latency of a lookup, in ms: 10 to 50, fixed per city. */
export function latency(city: string): number {
  let hash = 0;
  for (const char of city) hash = (hash * 31 + char.charCodeAt(0)) % 1000;
  return 10 + (hash % 41);
}

/** Looks a city up after a delay; an unknown city gets an `error(...)` reply. */
export class Weather extends TCPHandler<{ city: string }> {
  static override readonly inline = true;

  async execute() {
    const { city } = this.params;
    await new Promise((resolve) => setTimeout(resolve, latency(city)));
    if (!Object.hasOwn(TEMPERATURES, city)) return this.error("unknown city", { city });
    return this.success({ city, celsius: TEMPERATURES[city] });
  }
}

/** Converts °C to °F: cheap, so also inline. */
export class Fahrenheit extends TCPHandler<{ celsius: number }> {
  static override readonly inline = true;

  execute() {
    return this.success({ fahrenheit: this.params.celsius * 9 / 5 + 32 });
  }
}

/** The server's commands; `TCPClient<typeof commands>` checks calls against them. */
export const commands = { weather: Weather, fahrenheit: Fahrenheit };

export const server = new TCPServer({ port: 0, commands });

/** What {@linkcode callMany} saw. */
export interface Report {
  /** Wall-clock time of the whole batch, in ms. */
  ms: number;
  /** Each call's outcome, in the order the calls were made. */
  outcomes: PromiseSettledResult<unknown>[];
  /** Call indexes in the order their replies arrived. */
  arrival: number[];
}

/**
 * Makes `count` calls at once: weather lookups (a few for a city that does
 * not exist), conversions, one unknown command, and one lookup with a time
 * limit too short for it. `Promise.allSettled` keeps one failure from hiding
 * the other results.
 *
 * @param client A client for a server with the `weather` and `fahrenheit` commands.
 * @param count How many calls to make; at least 2.
 * @returns The outcomes and the order the replies arrived in.
 */
export async function callMany(
  client: TCPClient<typeof commands>,
  count: number,
): Promise<Report> {
  const cities = [...Object.keys(TEMPERATURES), "Atlantis"];
  const arrival: number[] = [];
  const started = performance.now();
  const calls = Array.from({ length: count }, (_, i) => {
    let call: Promise<unknown>;
    // A typed client refuses unknown commands at compile time; an untyped
    // view of the same client shows what the server says to one.
    if (i === 0) call = (client as TCPClient).execute("forecast", { city: "Oslo" });
    else if (i === 1) call = client.execute("weather", { city: "Cairo" }, { timeout: 1 });
    else if (i % 3 === 0) call = client.execute("fahrenheit", { celsius: i });
    else call = client.execute("weather", { city: cities[i % cities.length] });
    return call.finally(() => arrival.push(i));
  });
  const outcomes = await Promise.allSettled(calls);
  return { ms: performance.now() - started, outcomes, arrival };
}

function failed(outcomes: PromiseSettledResult<unknown>[]): PromiseRejectedResult[] {
  return outcomes.filter((o): o is PromiseRejectedResult => o.status === "rejected");
}

if (import.meta.main) {
  const count = Number(Deno.args[0] ?? 100);
  const { port } = await server.listen();
  try {
    await using client = new TCPClient<typeof commands>({ port });
    await client.connect();
    const { ms, outcomes, arrival } = await callMany(client, count);
    const worst = Math.max(...Object.keys(TEMPERATURES).map(latency));
    console.log(
      `${count} calls on one connection in ${ms.toFixed(0)} ms ` +
        `(the slowest lookup alone takes ${worst} ms)`,
    );
    console.log("first replies to arrive, by call index:", arrival.slice(0, 12).join(", "));
    const errorReplies = outcomes.filter((o) =>
      o.status === "fulfilled" && (o.value as { error?: boolean }).error === true
    );
    console.log(
      `${outcomes.length - failed(outcomes).length} answered ` +
        `(${errorReplies.length} of them a handler's error() reply), ` +
        `${failed(outcomes).length} rejected`,
    );
    for (const i of [2, 3, 10]) {
      const outcome = outcomes[i];
      if (outcome.status === "fulfilled") {
        console.log(`call ${i} ->`, JSON.stringify(outcome.value));
      }
    }
    for (const { reason } of failed(outcomes)) {
      const note = reason instanceof CallTimeoutError ? " (its own time limit)" : "";
      console.log(`rejected: ${reason.name}: ${reason.message}${note}`);
    }
  } finally {
    await server.close();
  }
}

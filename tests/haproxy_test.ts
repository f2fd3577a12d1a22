/**
 * Rolling restarts that lose nothing. Three `tcpy serve` processes on
 * 127.0.0.1 are restarted one at a time (SIGTERM → exit → start → healthy)
 * while 8 callers keep calling through a {@linkcode TCPClusterClient}:
 *
 * 1. the client has the three servers as endpoints;
 * 2. the client has one endpoint, HAProxy (deploy/haproxy.cfg with its ports
 *    and socket path replaced), with 4 connections.
 *
 * The calls are NOT idempotent, so the client retries only calls that
 * provably never reached a handler (connect refused, -32007, left unread by
 * a close after `tcpy.bye`). "Nothing lost" means: no call failed, every
 * call returned its own id, and every call ran exactly once (counted from
 * the `ran ID` lines of every server process). Retries are counted by reason
 * and printed; through HAProxy, `unread` retries show that the servers'
 * `tcpy.bye` reached the client before HAProxy closed its side.
 *
 * Slow (~30 s): `deno task test:haproxy` runs it (TCPY_SLOW_TESTS=1);
 * `deno task test` lists it as ignored. The HAProxy case needs `haproxy`
 * installed (.ci/run installs it with apt-get before the tests); without it
 * that case is ignored with the reason printed, except under CI=true, where
 * it fails instead of passing unseen.
 */
import assert from "node:assert/strict";
import { TCPClusterClient } from "../cluster.ts";
import type { commands } from "./fixtures/cluster_handlers.ts";
import { waitFor, within } from "./_helpers.ts";
import {
  assertNothingLost,
  Child,
  freePort,
  HOST,
  killAll,
  Load,
  rollingRestart,
  Runs,
  startServe,
  waitHealthy,
} from "./_processes.ts";

const SLOW = Deno.env.get("TCPY_SLOW_TESTS") === "1";
const IN_CI = Deno.env.get("CI") === "true";
const TEMPLATE = new URL("../deploy/haproxy.cfg", import.meta.url);
const CALLERS = 8;
const RETRY = { retries: 8, baseDelay: 50, maxDelay: 1_000 };

/** Runs a command to its end; a missing program is exit code 127. */
async function run(command: string, args: string[]): Promise<{ code: number; output: string }> {
  try {
    const { code, stdout, stderr } = await new Deno.Command(command, {
      args,
      stdin: "null",
    }).output();
    const decoder = new TextDecoder();
    return { code, output: decoder.decode(stdout) + decoder.decode(stderr) };
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      return { code: 127, output: `${command}: not found` };
    }
    throw error;
  }
}

/** The HAProxy binary, if one runs here (Debian puts it in /usr/sbin, often not on PATH). */
async function findHaproxy(): Promise<string | undefined> {
  for (const candidate of ["haproxy", "/usr/sbin/haproxy"]) {
    if ((await run(candidate, ["-v"])).code === 0) return candidate;
  }
  return undefined;
}

// Looked for only when the slow tests run; decided before the tests are
// declared, so that a missing HAProxy shows as an ignored test.
const HAPROXY = SLOW ? await findHaproxy() : undefined;
const NO_HAPROXY = SLOW && !HAPROXY && !IN_CI;
if (NO_HAPROXY) {
  console.log(
    "haproxy_test: the HAProxy test is ignored: haproxy is not installed " +
      "(.ci/run installs it; by hand: apt-get install haproxy)",
  );
}

/**
 * deploy/haproxy.cfg with the frontend on `front`, servers s1..sN on
 * `ports`, and the runtime API on 127.0.0.1:`api` (TCP rather than the
 * template's Unix socket: Deno wants a net permission per socket path).
 * Fails if the template no longer has the lines this replaces.
 */
function haproxyConfig(template: string, front: number, ports: number[], api: number): string {
  const replace = (text: string, pattern: RegExp, by: (match: string[]) => string, n: number) => {
    const found = [...text.matchAll(pattern)].length;
    assert.equal(found, n, `deploy/haproxy.cfg: ${found} lines match ${pattern}, expected ${n}`);
    return text.replace(pattern, (...match) => by(match));
  };
  let config = replace(template, /^(\s*bind )\S+$/gm, (m) => `${m[1]}${HOST}:${front}`, 1);
  config = replace(config, /^(\s*stats socket )\S+/gm, (m) => `${m[1]}ipv4@${HOST}:${api}`, 1);
  config = replace(
    config,
    /^(\s*server s(\d+) )\S+$/gm,
    (m) => `${m[1]}${HOST}:${ports[Number(m[2]) - 1]}`,
    ports.length,
  );
  return config;
}

/** One command on HAProxy's runtime API; resolves with its answer. */
async function runtimeApi(api: number, command: string): Promise<string> {
  const conn = await Deno.connect({ hostname: HOST, port: api });
  try {
    await conn.write(new TextEncoder().encode(command + "\n"));
    let text = "";
    const decoder = new TextDecoder();
    for await (const chunk of conn.readable) text += decoder.decode(chunk, { stream: true });
    return text;
  } finally {
    try {
      conn.close();
    } catch {
      // Closed by the readable's end.
    }
  }
}

/** The status column of `show stat` (UP, DOWN, MAINT, "UP 1/2"...) for each server of backend tcpy. */
async function serverStatus(api: number): Promise<Map<string, string>> {
  const [header, ...rows] = (await runtimeApi(api, "show stat")).trim().split("\n");
  const columns = header.replace(/^# /, "").split(",");
  const [px, sv, status] = ["pxname", "svname", "status"].map((c) => columns.indexOf(c));
  const result = new Map<string, string>();
  for (const row of rows) {
    const fields = row.split(",");
    if (fields[px] === "tcpy" && fields[sv] !== "BACKEND") result.set(fields[sv], fields[status]);
  }
  return result;
}

/** Resolves once HAProxy reports each of `names` UP. */
async function waitUp(api: number, names: string[], ms = 15_000): Promise<void> {
  let status = new Map<string, string>();
  await waitFor(async () => {
    try {
      status = await serverStatus(api);
    } catch {
      return false; // The socket is not there yet.
    }
    return names.every((name) => status.get(name) === "UP");
  }, {
    what: () => `HAProxy to see ${names} UP (last seen: ${JSON.stringify([...status])})`,
    timeout: ms,
    interval: 100,
  });
}

/** What a child printed, line by line (stdout, then stderr). */
function output(child: Child): string[] {
  return `${child.stdout}${child.stderr}`.split("\n");
}

Deno.test({
  name: "Rolling restart of 3 tcpy servers under load: a 3-endpoint TCPClusterClient loses no call",
  ignore: !SLOW,
}, async () => {
  const runs = new Runs();
  const ports = [freePort(), freePort(), freePort()];
  let load: Load | undefined;
  try {
    const servers = await Promise.all(ports.map((port) => startServe({ port, runs })));
    await using cluster = new TCPClusterClient<typeof commands>({
      endpoints: ports.map((port) => ({ host: HOST, port })),
      retry: RETRY,
      onRetry: Load.onRetry(() => load),
    });
    load = new Load(cluster, CALLERS);
    await load.until(500);
    await rollingRestart(servers, ports, load, { serve: { runs } });
    const report = await load.stop();
    // Their `ran` lines are all read once they have exited.
    for (const server of servers) assert.equal((await server.stop()).code, 0);
    assertNothingLost("direct, 3 endpoints", report, runs);
    for (const port of ports) assert.ok((runs.byPort.get(port) ?? 0) > 0, `no call ran on ${port}`);
  } finally {
    await killAll();
  }
});

Deno.test({
  name:
    "Rolling restart of 3 tcpy servers behind HAProxy under load: a client of HAProxy loses no call",
  ignore: !SLOW || NO_HAPROXY,
}, async () => {
  const haproxy = HAPROXY;
  if (!haproxy) throw new Error("HAProxy is needed in CI: haproxy is not installed");
  const dir = await Deno.makeTempDir({ prefix: "tcpy-haproxy-" });
  const runs = new Runs();
  const ports = [freePort(), freePort(), freePort()];
  const front = freePort();
  const api = freePort();
  let load: Load | undefined;
  let proxy: Child | undefined;
  try {
    const configPath = `${dir}/haproxy.cfg`;
    const template = await Deno.readTextFile(TEMPLATE);
    await Deno.writeTextFile(configPath, haproxyConfig(template, front, ports, api));
    const check = await run(haproxy, ["-c", "-f", configPath]);
    assert.equal(check.code, 0, `haproxy -c: ${check.output}`);

    const servers = await Promise.all(ports.map((port) => startServe({ port, runs })));
    // -db: foreground, no daemon; killed in `finally` if anything fails.
    proxy = new Child(haproxy, ["-db", "-f", configPath], { name: "haproxy" });
    const names = ports.map((_, i) => `s${i + 1}`);
    await within(waitUp(api, names), 20_000, "HAProxy to see every server UP");
    await waitHealthy(front);

    await using cluster = new TCPClusterClient<typeof commands>({
      endpoints: [{ host: HOST, port: front }],
      connections: 4,
      retry: RETRY,
      onRetry: Load.onRetry(() => load),
    });
    load = new Load(cluster, CALLERS);
    await load.until(500);
    await rollingRestart(servers, ports, load, {
      serve: { runs },
      ready: (i) => waitUp(api, [names[i]]),
    });
    const report = await load.stop();
    await cluster.close();
    for (const server of servers) assert.equal((await server.stop()).code, 0);
    await proxy.stop("SIGTERM");
    const transitions = output(proxy).filter((line) => /Server tcpy\/s\d is (UP|DOWN)/.test(line));
    console.log(`  HAProxy saw ${transitions.length} server state changes`);
    assertNothingLost("through HAProxy, 1 endpoint x 4 connections", report, runs);
    for (const port of ports) assert.ok((runs.byPort.get(port) ?? 0) > 0, `no call ran on ${port}`);
  } catch (error) {
    if (proxy) console.log(`HAProxy output:\n${output(proxy).slice(-30).join("\n")}`);
    throw error;
  } finally {
    await killAll();
    await Deno.remove(dir, { recursive: true });
  }
});

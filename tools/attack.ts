/**
 * Bystander under attack (`deno task attack`): how well does a tcpy server
 * with its default options keep serving an ordinary client while another
 * client on the same machine abuses it?
 *
 * It starts `tools/attack_server.ts` as a subprocess on 127.0.0.1 (a free
 * port; 4 workers and one I/O thread per core, the defaults, unless
 * `--threads`/`--io-threads` say otherwise). A **bystander** in this process
 * then calls it at ~200 calls/s, spread evenly over `add` (cheap, placed
 * inline by measurement), `cpu {ms: 1}` (1 ms in the worker pool) and a
 * `talk` conversation (one message each way), on 2 TCPClient connections
 * (one per I/O thread where the kernel lets us pick), plus a fresh
 * connection every 250 ms making one `add` call. Each call counts as served
 * if it is answered correctly within 5 s; its latency is from the moment it
 * was due to its answer (the calls are scheduled, not waited for, so a
 * stalled server does not slow the schedule down).
 *
 * First the bystander runs alone (after a short warm-up): the unloaded
 * baseline. Then for each attack (`tools/_attackers.ts`), run in a Web
 * Worker of this process so its JavaScript does not delay the bystander's
 * event loop (it still shares the machine's cores with the server and the
 * bystander), the bystander runs again while the attacker does, for
 * `--seconds`; then the attacker stops, the harness waits `--settle`
 * seconds and checks the server still answers (asking for up to 60 s, and
 * saying how long it took when it was more than the settle period). Each
 * attack gets a fresh server (started, then warmed up by the bystander for
 * 1 s), so that a row shows that attack alone; `--one-server` keeps one
 * server through them all, to see what attacks leave behind. A server that
 * died (or no longer answers) is reported as such and restarted.
 *
 * Reading the table:
 * - **served %**: bystander calls answered correctly within 5 s. Below 100
 *   means the attack denied service to a client that did nothing wrong;
 * - **p50, p99**: the bystander's latencies over all its calls, a call not
 *   served counting as infinitely slow ("> 5 s" once more than 1% failed);
 * - **p99 ÷ unloaded p99**: how much worse the slow tail got. Latencies are
 *   those of one small machine shared by attacker, server and bystander:
 *   compare rows of one run, not runs of different machines;
 * - **server peak RSS**: the server process's largest VmRSS, sampled every
 *   200 ms from the start of the attack to the end of the settle period;
 * - **notes**: what the attacker managed (lines sent, connections held or
 *   cut), the bystander's failures by kind, lines the server logged on
 *   stderr, "server died". The details under the table say more.
 *
 * It is a measuring tool, not a test: it exits 0 whatever it measured, and 1
 * only if the harness itself failed.
 *
 * ```sh
 * deno task attack [--seconds 8] [--baseline S] [--settle 2] [--only pipeline,idle]
 *                  [--threads N] [--io-threads N] [--one-server] [--json]
 * ```
 *
 * @module
 */
import { parseArgs } from "node:util";
import { TCPClient } from "../mod.ts";
import { type AttackContext, type AttackReport, ATTACKS, spreadClients } from "./_attackers.ts";
import { spin } from "./attack_server.ts";
import { Child, delay, within } from "./_process.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    seconds: { type: "string", default: "8" },
    baseline: { type: "string" },
    settle: { type: "string", default: "2" },
    only: { type: "string" },
    threads: { type: "string" },
    "io-threads": { type: "string" },
    "one-server": { type: "boolean", default: false },
    json: { type: "boolean", default: false },
    help: { type: "boolean", short: "h", default: false },
  },
});

const NAMES = Object.keys(ATTACKS);

if (values.help) {
  console.log(
    "usage: deno task attack [--seconds 8] [--baseline seconds] [--settle 2]\n" +
      "         [--only a,b] [--threads N] [--io-threads N] [--one-server] [--json]\n" +
      `attacks: ${NAMES.join(", ")}`,
  );
  Deno.exit(0);
}

function num(name: keyof typeof values, min: number, max: number): number {
  const value = Number(values[name]);
  if (!Number.isFinite(value) || value < min || value > max) {
    console.error(`--${name} must be a number from ${min} to ${max}, got ${values[name]}`);
    Deno.exit(2);
  }
  return value;
}

const SECONDS = num("seconds", 0.5, 60);
const BASELINE = values.baseline === undefined ? SECONDS : num("baseline", 0.5, 60);
const SETTLE = num("settle", 0, 30);
const ONLY = values.only === undefined
  ? NAMES
  : values.only.split(",").map((name) => name.trim()).filter((name) => name !== "");
for (const name of ONLY) {
  if (!NAMES.includes(name)) {
    console.error(`--only: unknown attack "${name}"; the attacks are ${NAMES.join(", ")}`);
    Deno.exit(2);
  }
}
const SERVER_ARGS = [
  ...(values.threads === undefined ? [] : ["--threads", String(num("threads", 0, 64))]),
  ...(values["io-threads"] === undefined
    ? []
    : ["--io-threads", String(num("io-threads", 0, 256))]),
];

/** The bystander's rate of connection calls, a fresh connection's period, and its patience. */
const RATE = 200;
const FRESH_EVERY = 250;
const PATIENCE = 5_000;
/** The server's `maxMessageBytes` (its default). */
const MAX_MESSAGE_BYTES = 1024 * 1024;
const SERVER = new URL("./attack_server.ts", import.meta.url);

/** Progress goes to stderr, so that stdout holds only the results. */
function say(text: string): void {
  console.error(text);
}

// ---------------------------------------------------------------------------
// The machine

/** The descriptor limit this process (and the server, which inherits it) runs with. */
async function fdLimit(): Promise<number> {
  try {
    const out = await new Deno.Command("sh", { args: ["-c", "ulimit -n"], stderr: "null" })
      .output();
    const text = new TextDecoder().decode(out.stdout).trim();
    return text === "unlimited" ? 1_000_000 : Number(text) || 1024;
  } catch {
    return 1024;
  }
}

/** The `n` for which `spin(n)` (the server's `vary`) takes about 0.45 s here. */
function largeN(): number {
  spin(1e5); // let the JIT compile it
  let best = Infinity;
  for (let i = 0; i < 3; i++) {
    const t0 = performance.now();
    spin(1e7);
    best = Math.min(best, performance.now() - t0);
  }
  return Math.round(Math.min(5e9, Math.max(1e6, (450 / Math.max(best, 0.01)) * 1e7)));
}

/**
 * The server's VmRSS in KiB, through `cat`: Deno only lets a program read
 * another process's /proc entries with every permission granted.
 */
async function rssKiB(pid: number): Promise<number | undefined> {
  try {
    const out = await new Deno.Command("cat", { args: [`/proc/${pid}/status`], stderr: "null" })
      .output();
    if (!out.success) return undefined;
    const match = new TextDecoder().decode(out.stdout).match(/^VmRSS:\s+(\d+)/m);
    return match ? Number(match[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** Samples the server's RSS every 200 ms until stopped; keeps the peak. */
class RssSampler {
  peakKiB = 0;
  #running = true;
  readonly #done: Promise<void>;

  constructor(pid: number) {
    this.#done = (async () => {
      while (this.#running) {
        const kib = await rssKiB(pid);
        if (kib !== undefined) this.peakKiB = Math.max(this.peakKiB, kib);
        await delay(200);
      }
    })();
  }

  async stop(): Promise<number> {
    this.#running = false;
    await this.#done;
    return this.peakKiB;
  }
}

// ---------------------------------------------------------------------------
// The server process

interface Server {
  child: Child;
  port: number;
  ioThreads: number;
  /** Lines the server wrote on stderr so far. */
  logLines: string[];
}

async function startServer(): Promise<Server> {
  const logLines: string[] = [];
  const child = new Child(Deno.execPath(), [
    "run",
    "--unstable-net",
    "--allow-net=127.0.0.1",
    "--allow-read",
    decodeURIComponent(SERVER.pathname),
    ...SERVER_ARGS,
  ], {
    name: "the server",
    keep: 100_000,
    onLine: (line, stream) => {
      if (stream === "stderr" && logLines.length < 100_000) logLines.push(line);
    },
  });
  const match = await child.waitFor(/^PORT (\d+) IO (\d+)$/m, "stdout", 30_000);
  return { child, port: Number(match[1]), ioThreads: Number(match[2]), logLines };
}

/** Whether the server answers an `add` on a fresh connection within `ms`. */
async function answers(port: number, ms: number): Promise<boolean> {
  const client = new TCPClient({ host: "127.0.0.1", port, timeout: ms });
  try {
    const result = await within(client.execute("add", { x: 2, y: 3 }), ms, "add") as {
      solution?: number;
    };
    return result?.solution === 5;
  } catch {
    return false;
  } finally {
    await within(client.disconnect(), 2_000, "disconnect").catch(() => {});
  }
}

// ---------------------------------------------------------------------------
// The bystander

type Kind = "add" | "cpu" | "talk" | "fresh";

interface Sample {
  kind: Kind;
  ok: boolean;
  /** From when the call was due to its answer; Infinity if not served. */
  ms: number;
}

/** One bystander call: served if answered correctly within PATIENCE ms. */
async function call(kind: Kind, client: TCPClient, port: number, seq: number): Promise<boolean> {
  const x = seq;
  const y = 7;
  if (kind === "add") {
    const r = await client.execute("add", { x, y }, { timeout: PATIENCE }) as {
      solution?: number;
    };
    return r?.solution === x + y;
  }
  if (kind === "cpu") {
    const r = await client.execute("cpu", { ms: 1 }, { timeout: PATIENCE }) as {
      success?: boolean;
    };
    return r?.success === true;
  }
  if (kind === "talk") {
    const talk = client.call("talk", {}, { timeout: PATIENCE });
    const question = await talk.recv() as { question?: string };
    if (question?.question !== "name?") return false;
    await talk.send({ name: `b${seq}` });
    const r = await talk.result as { text?: string };
    return r?.text === `Hello, b${seq}`;
  }
  // A fresh connection for one call.
  const fresh = new TCPClient({ host: "127.0.0.1", port, timeout: PATIENCE });
  try {
    const r = await fresh.execute("add", { x, y }) as { solution?: number };
    return r?.solution === x + y;
  } finally {
    fresh.disconnect().catch(() => {});
  }
}

/**
 * Runs the bystander until `stopAt` (a `Date.now()` value) and resolves with
 * a sample for every call, once each was served or given up on.
 */
async function bystander(port: number, clients: TCPClient[], stopAt: number): Promise<Sample[]> {
  const samples: Sample[] = [];
  const pending = new Set<Promise<void>>();
  const kinds: Kind[] = ["add", "cpu", "talk"];
  const issue = (kind: Kind, client: TCPClient, seq: number, due: number) => {
    const done: Promise<void> = within(call(kind, client, port, seq), PATIENCE, kind).then(
      (ok) => samples.push({ kind, ok, ms: ok ? performance.now() - due : Infinity }),
      () => samples.push({ kind, ok: false, ms: Infinity }),
    ).then(() => {
      pending.delete(done);
    });
    pending.add(done);
  };
  const start = performance.now();
  const end = start + (stopAt - Date.now());
  let seq = 0;
  let freshSeq = 0;
  while (performance.now() < end) {
    const now = performance.now();
    // Every call due by now, each timed from its due time (at most 1 s worth at once).
    let burst = 0;
    while (burst < RATE && start + (seq * 1000) / RATE <= now) {
      const due = start + (seq * 1000) / RATE;
      issue(kinds[seq % kinds.length], clients[seq % clients.length], seq, due);
      seq++;
      burst++;
    }
    while (start + freshSeq * FRESH_EVERY <= now) {
      issue("fresh", clients[0], 1_000_000 + freshSeq, start + freshSeq * FRESH_EVERY);
      freshSeq++;
    }
    await delay(Math.max(0, Math.min(end, start + (seq * 1000) / RATE) - performance.now()));
  }
  // Every call ends within PATIENCE ms (`within`); wait a little longer at most.
  await within(Promise.all(pending), PATIENCE + 2_000, "the bystander's calls").catch(() => {});
  return samples;
}

/** The q-quantile of the latencies (nearest rank), Infinity counted as such. */
function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

// ---------------------------------------------------------------------------
// A phase: the bystander, alone or beside one attack

interface Result {
  attack: string;
  calls: number;
  served: number;
  servedPercent: number;
  p50Ms: number;
  p99Ms: number;
  /** p99 over the unloaded p99. */
  p99Ratio: number;
  peakRssMiB: number | null;
  serverDied: boolean;
  notes: string[];
  attacker?: AttackReport;
  failedByKind: Record<string, number>;
}

let server: Server;
/** Whether the server stopped answering in the last phase (it is restarted before the next). */
let unresponsive = false;
/** How long after an attack the server may take to answer again before it is written off. */
const RECOVERY = 60_000;
const fdMax = await fdLimit();
const context = {
  maxConnections: Math.max(16, Math.min(2000, fdMax - 512)),
  largeN: largeN(),
  maxMessageBytes: MAX_MESSAGE_BYTES,
};

/** Runs the attack `name` in a worker until `stopAt`; resolves with its report. */
function runAttacker(name: string, port: number, stopAt: number): {
  report: Promise<AttackReport>;
  terminate(): void;
} {
  const worker = new Worker(new URL("./_attack_worker.ts", import.meta.url), {
    type: "module",
    name: `attacker-${name}`,
  });
  const report = new Promise<AttackReport>((resolve, reject) => {
    worker.onmessage = (event: MessageEvent<{ report?: AttackReport; error?: string }>) => {
      if (event.data.report) resolve(event.data.report);
      else reject(new Error(event.data.error));
    };
    worker.onerror = (event) => {
      event.preventDefault();
      reject(new Error(event.message));
    };
  });
  const ctx: AttackContext = { ...context, port, stopAt };
  worker.postMessage({ name, context: ctx });
  return { report, terminate: () => worker.terminate() };
}

async function phase(attack: string | undefined, seconds: number, base?: Result): Promise<Result> {
  const notes: string[] = [];
  if (server.child.exited || unresponsive) {
    server.child.kill();
    await within(server.child.done, 10_000, "the old server to end").catch(() => {});
    notes.push("server restarted before this run");
    server = await startServer();
    unresponsive = false;
  }
  const { port } = server;
  const logBefore = server.logLines.length;
  const clients = await spreadClients(port, 2, 1, 16);
  const sampler = new RssSampler(server.child.pid);
  const stopAt = Date.now() + seconds * 1000;
  const attacker = attack === undefined ? undefined : runAttacker(attack, port, stopAt);
  let report: AttackReport | undefined;
  let died = false;
  try {
    const samples = await bystander(port, clients, stopAt);
    if (attacker) {
      try {
        report = await within(attacker.report, 15_000, `the ${attack} attacker to stop`);
      } catch (error) {
        notes.push(`attacker: ${(error as Error).message}`);
      } finally {
        attacker.terminate();
      }
    }
    if (attack !== undefined) await delay(SETTLE * 1000);
    // Alive? Ask until it answers, for up to RECOVERY ms after the attack ended.
    while (!server.child.exited && !(await answers(port, 2_000))) {
      if (Date.now() - stopAt > RECOVERY) {
        unresponsive = true;
        notes.push(`SERVER NOT ANSWERING ${RECOVERY / 1000} s after the attack (restarted)`);
        break;
      }
    }
    const recovered = (Date.now() - stopAt) / 1000;
    if (!unresponsive && !server.child.exited && recovered > SETTLE + 2.5) {
      notes.push(`answered again ${recovered.toFixed(0)} s after the attack`);
    }
    died = server.child.exited;
    if (died) {
      const status = await server.child.status;
      notes.unshift(
        `SERVER DIED (exit ${status.code}${status.signal ? `, ${status.signal}` : ""})`,
      );
    }

    const served = samples.filter((s) => s.ok).length;
    const sorted = samples.map((s) => s.ms).sort((a, b) => a - b);
    const failedByKind: Record<string, number> = {};
    for (const s of samples) if (!s.ok) failedByKind[s.kind] = (failedByKind[s.kind] ?? 0) + 1;
    const failed = Object.entries(failedByKind).map(([k, n]) => `${k} ${n}`).join(", ");
    if (failed) notes.push(`failed: ${failed}`);
    const logged = server.logLines.length - logBefore;
    if (logged > 0) notes.push(`${logged} server log lines`);
    const p99 = quantile(sorted, 0.99);
    return {
      attack: attack ?? "(none: unloaded)",
      calls: samples.length,
      served,
      servedPercent: samples.length ? (100 * served) / samples.length : 0,
      p50Ms: quantile(sorted, 0.5),
      p99Ms: p99,
      p99Ratio: base ? p99 / base.p99Ms : 1,
      peakRssMiB: null,
      serverDied: died,
      notes: report?.note ? [report.note, ...notes] : notes,
      attacker: report,
      failedByKind,
    };
  } finally {
    const peak = await sampler.stop();
    await Promise.all(
      clients.map((c) => within(c.disconnect(), 2_000, "disconnect").catch(() => {})),
    );
    lastPeak = peak;
  }
}

let lastPeak = 0;

// ---------------------------------------------------------------------------
// Output

function ms(value: number): string {
  if (!Number.isFinite(value)) return Number.isNaN(value) ? "-" : "> 5 s";
  return value < 10 ? `${value.toFixed(2)} ms` : `${value.toFixed(0)} ms`;
}

function ratio(value: number): string {
  if (Number.isNaN(value)) return "-";
  if (!Number.isFinite(value)) return "∞";
  return value < 10 ? `${value.toFixed(1)}×` : `${value.toFixed(0)}×`;
}

function table(head: string[], rows: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const left = (i: number) => i === 0 || i === head.length - 1;
  const line = (cells: string[]) =>
    `| ${
      cells.map((c, i) => (left(i) ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join(" | ")
    } |`;
  const rule = `|${
    widths.map((w, i) => (left(i) ? "-".repeat(w + 2) : "-".repeat(w + 1) + ":")).join("|")
  }|`;
  return [line(head), rule, ...rows.map(line)].join("\n");
}

// ---------------------------------------------------------------------------
// Main

let failed = false;
try {
  server = await startServer();
  say(
    `attack: server pid ${server.child.pid} on 127.0.0.1:${server.port}, ${server.ioThreads} I/O ` +
      `thread(s), server args: ${SERVER_ARGS.join(" ") || "(none: defaults)"}; ` +
      `fd limit ${fdMax}; vary large n = ${context.largeN}`,
  );
  // Warm-up, not recorded: JIT, the pool, and measured placement of `add`.
  await phase(undefined, Math.min(2, BASELINE));
  say(`attack: unloaded baseline, ${BASELINE} s`);
  const base = await phase(undefined, BASELINE);
  base.peakRssMiB = lastPeak / 1024;
  const results: Result[] = [base];
  for (const name of ONLY) {
    if (!values["one-server"]) {
      // A fresh server for each attack, so that a row shows that attack alone.
      await server.child.stop("SIGTERM", 3_000);
      server = await startServer();
      await phase(undefined, 1); // warm-up, not recorded
    }
    say(`attack: ${name}, ${SECONDS} s, then ${SETTLE} s to settle`);
    const result = await phase(name, SECONDS, base);
    result.peakRssMiB = lastPeak / 1024;
    results.push(result);
    say(
      `  served ${result.servedPercent.toFixed(1)}%, p50 ${ms(result.p50Ms)}, ` +
        `p99 ${ms(result.p99Ms)}, peak RSS ${result.peakRssMiB.toFixed(0)} MiB; ` +
        result.notes.join("; "),
    );
  }

  if (values.json) {
    console.log(JSON.stringify(
      {
        server: { args: SERVER_ARGS, ioThreads: server.ioThreads },
        seconds: SECONDS,
        oneServer: values["one-server"],
        settle: SETTLE,
        fdLimit: fdMax,
        results,
      },
      (_, v) => (typeof v === "number" && !Number.isFinite(v) ? String(v) : v),
      2,
    ));
  } else {
    const rows = results.map((r) => [
      r.attack,
      `${r.servedPercent.toFixed(1)}% (${r.served}/${r.calls})`,
      ms(r.p50Ms),
      ms(r.p99Ms),
      ratio(r.p99Ratio),
      r.peakRssMiB === null ? "-" : r.peakRssMiB.toFixed(0),
      r.notes.join("; "),
    ]);
    console.log(
      `\nBystander under attack: ${RATE} calls/s (add, cpu 1 ms, talk) on 2 connections + a ` +
        `fresh connection every ${FRESH_EVERY} ms; ${SECONDS} s per attack, ${SETTLE} s settle, ` +
        `${values["one-server"] ? "one server for all" : "a fresh server for each"}; ` +
        `server ${SERVER_ARGS.join(" ") || "defaults"} (${server.ioThreads} I/O threads)\n`,
    );
    console.log(table(
      [
        "attack",
        "bystander served %",
        "p50",
        "p99",
        "p99 ÷ unloaded p99",
        "server peak RSS MiB",
        "notes",
      ],
      rows,
    ));
    console.log("\nattackers:");
    for (const r of results.slice(1)) {
      console.log(`- ${r.attack}: ${r.attacker?.detail ?? "(no report)"}`);
    }
    const died = results.filter((r) => r.serverDied).map((r) => r.attack);
    if (died.length > 0) console.log(`\nSERVER DIED during: ${died.join(", ")}`);
  }
} catch (error) {
  failed = true;
  console.error(`attack: the harness failed: ${(error as Error).stack ?? error}`);
} finally {
  if (server! && !server.child.exited) await server.child.stop("SIGTERM", 15_000);
  const tail = server! ? server.logLines.slice(-20).join("\n") : "";
  if (tail) say(`\nserver stderr (last lines):\n${tail}`);
}
Deno.exit(failed ? 1 : 0);

/**
 * The `tcpy` program, run as a real subprocess (`deno run cli.ts ...`)
 * against real servers on 127.0.0.1, port 0; then `deno compile` of it.
 *
 * Every wait is bounded, every child is awaited (and killed if a test fails
 * first).
 */
import assert from "node:assert/strict";
import { DEFAULT_MAX_MESSAGE_BYTES, TCPClient } from "../mod.ts";
import { SERVER_DEFAULTS } from "../server.ts";
import { compileEntry, compileModuleArgs } from "../cli.ts";
import { compileArgs, parseCompileArgs, ROOT } from "../scripts/compile.ts";
import denoJson from "../deno.json" with { type: "json" };
import { within } from "./_helpers.ts";
import { Child, type Finished, freePort } from "../tools/_process.ts";

const CLI = new URL("../cli.ts", import.meta.url).href;
const FIXTURE = new URL("./fixtures/cli_handlers.ts", import.meta.url).href;
const HOST = "127.0.0.1";
/** How `deno run` runs the program: the same permissions `deno task compile` bakes in. */
const RUN = ["run", "--allow-net", "--allow-read", CLI];

/** `deno run cli.ts ARGS`, in the repository. */
function cli(args: string[]): Child {
  return new Child(Deno.execPath(), [...RUN, ...args], { cwd: ROOT });
}

/** Runs `tcpy ARGS` to the end. */
function tcpy(...args: string[]): Promise<Finished> {
  const proc = cli(args);
  return proc.finish().finally(() => proc[Symbol.asyncDispose]());
}

/** Starts `tcpy serve MODULE --host 127.0.0.1 --port 0 ARGS` and waits until it listens. */
async function serve(
  module: string,
  args: string[] = [],
  start: (args: string[]) => Child = cli,
): Promise<{ proc: Child; port: number }> {
  const proc = start(["serve", module, "--host", HOST, "--port", "0", ...args]);
  try {
    const match = await proc.waitFor(/tcpy listening on 127\.0\.0\.1:(\d+)/, "stdout", 30_000);
    return { proc, port: Number(match[1]) };
  } catch (error) {
    await proc[Symbol.asyncDispose]();
    throw error;
  }
}

/** Stops a server with `signal` and checks it exited cleanly. */
async function stop(proc: Child, signal: Deno.Signal = "SIGTERM"): Promise<Finished> {
  proc.process.kill(signal);
  const done = await proc.finish();
  assert.equal(done.code, 0, done.stderr);
  assert.match(done.stderr, new RegExp(`${signal} received`));
  assert.match(done.stderr, /tcpy: stopped/);
  return done;
}

/** The one line a failed run prints first on stderr. */
function firstLine(text: string): string {
  return text.split("\n", 1)[0];
}

// ---------------------------------------------------------------------------
// Help, version, usage errors.

Deno.test("tcpy --help, help, serve --help and call --help print help and exit 0", async () => {
  for (const args of [["--help"], ["-h"], ["help"]]) {
    const { code, stdout, stderr } = await tcpy(...args);
    assert.equal(code, 0, stderr);
    assert.match(stdout, /Usage:/);
    assert.match(stdout, /tcpy serve MODULE/);
    assert.match(stdout, /tcpy call COMMAND/);
    assert.match(stdout, /Exit codes:/);
    assert.equal(stderr, "");
  }
  for (const args of [["serve", "--help"], ["help", "serve"]]) {
    const { code, stdout } = await tcpy(...args);
    assert.equal(code, 0);
    for (
      const flag of [
        "--host",
        "--port",
        "--threads",
        "--max-message-bytes",
        "--max-batch-length",
        "--grace-period",
      ]
    ) {
      assert.match(stdout, new RegExp(`${flag} `), `serve --help lists ${flag}`);
    }
    assert.match(stdout, /SIGTERM/);
  }
  for (const args of [["call", "--help"], ["call", "-h"], ["help", "call"]]) {
    const { code, stdout } = await tcpy(...args);
    assert.equal(code, 0);
    for (const flag of ["--host", "--port", "--timeout", "--params", "key=value"]) {
      assert.ok(stdout.includes(flag), `call --help mentions ${flag}`);
    }
    assert.match(stdout, /parsed as JSON/);
  }
});

Deno.test("tcpy's help shows the defaults' constants, and cli.ts spells none of them out", async () => {
  const serve = (await tcpy("serve", "--help")).stdout;
  const call = (await tcpy("call", "--help")).stdout;
  const flag = (help: string) =>
    help.split("\n").find((line) => line.includes("--max-message-bytes"));
  assert.match(flag(serve) ?? "", new RegExp(`\\(default ${SERVER_DEFAULTS.maxMessageBytes}\\)`));
  assert.match(flag(call) ?? "", new RegExp(`\\(default ${DEFAULT_MAX_MESSAGE_BYTES}\\)`));
  // A default copied into the help text goes stale when its constant changes.
  const source = await Deno.readTextFile(new URL("../cli.ts", import.meta.url));
  const copied = [...source.matchAll(/\(default [1-9]\d*\)/g)].map(([text]) => text);
  assert.deepEqual(copied, [], "derive these from their constants");
});

Deno.test("tcpy --version prints the version of deno.json", async () => {
  for (const flag of ["--version", "-V"]) {
    const { code, stdout } = await tcpy(flag);
    assert.equal(code, 0);
    assert.equal(stdout, `tcpy ${denoJson.version}\n`);
  }
});

Deno.test("usage errors: one line, the usage on stderr, exit code 2", async () => {
  const cases: [string[], RegExp][] = [
    [[], /^tcpy: missing command$/],
    [["frob"], /^tcpy: unknown command "frob"$/],
    [["--frob"], /^tcpy: unknown option "--frob"$/],
    [["serve"], /^tcpy serve: missing MODULE$/],
    [["serve", FIXTURE, "--bogus"], /^tcpy serve: unknown option '--bogus'$/],
    [["serve", FIXTURE, "extra.ts"], /^tcpy serve: unexpected argument "extra.ts"$/],
    [["serve", FIXTURE, "--port"], /^tcpy serve: option '--port <value>' argument missing$/],
    [["serve", FIXTURE, "--port", "http"], /--port expects a non-negative integer, got "http"/],
    [["serve", FIXTURE, "--threads=1.5"], /--threads expects a non-negative integer/],
    [["serve", FIXTURE, "--threads", "9999"], /threads must be an integer from 0 to 256/],
    [["serve", FIXTURE, "--port", "70000"], /port must be an integer from 0 to 65535/],
    [["call"], /^tcpy call: missing COMMAND$/],
    [["call", "add", "--bogus"], /^tcpy call: unknown option '--bogus'$/],
    [["call", "add", "x"], /^tcpy call: expected key=value, got "x"$/],
    [["call", "add", "=1"], /^tcpy call: expected key=value, got "=1"$/],
    [["call", "add", "--params", "{x"], /^tcpy call: --params is not JSON/],
    [["call", "add", "--params", "[1,2]"], /^tcpy call: --params must be a JSON object$/],
    [["call", "add", "--timeout", "-5"], /^tcpy call: option '--timeout' argument is ambiguous$/],
    [["call", "add", "--port", "0"], /port must be an integer from 1 to 65535/],
  ];
  await Promise.all(cases.map(async ([args, error]) => {
    const { code, stdout, stderr } = await tcpy(...args);
    const what = `tcpy ${args.join(" ")}`;
    assert.equal(code, 2, `${what}: ${stderr}`);
    assert.equal(stdout, "", what);
    const [first, second] = stderr.split("\n");
    assert.match(first, error, what);
    assert.match(second, /^Usage:/, what);
  }));
});

// ---------------------------------------------------------------------------
// serve + call.

Deno.test("serve + call: a round trip, and each exit code of call", async () => {
  const { proc, port } = await serve(FIXTURE);
  await using _ = proc;
  assert.match(proc.stdout, /\(commands: add, echo, divide, boom, slow, hold\)/);
  const at = ["--host", HOST, "--port", String(port)];

  // 0: success, the result as one line of JSON on stdout.
  let done = await tcpy("call", "add", "x=1", "y=2", ...at);
  assert.deepEqual(done, {
    code: 0,
    signal: null,
    stdout: '{"success":true,"solution":3}\n',
    stderr: "",
  });

  // key=value: JSON when it parses, else a string; --params underneath.
  done = await tcpy(
    "call",
    "echo",
    "--params",
    '{"a":0,"z":null}',
    "a=1",
    "b=true",
    "c=hello",
    'd={"k":[1,2]}',
    'e="42"',
    "f=",
    "g=x=y",
    "h=1e3",
    ...at,
  );
  assert.equal(done.code, 0, done.stderr);
  assert.deepEqual(JSON.parse(done.stdout), {
    success: true,
    params: {
      a: 1,
      z: null,
      b: true,
      c: "hello",
      d: { k: [1, 2] },
      e: "42",
      f: "",
      g: "x=y",
      h: 1000,
    },
  });

  // 1: the handler's own error: the dictionary on stdout, one line on stderr.
  done = await tcpy("call", "divide", "a=1", "b=0", ...at);
  assert.equal(done.code, 1);
  assert.deepEqual(JSON.parse(done.stdout), { error: true, message: "division by zero", a: 1 });
  assert.equal(done.stderr, "tcpy call: divide returned an error: division by zero\n");

  // 3: the call failed, one line on stderr, nothing on stdout.
  const failures: [string[], RegExp][] = [
    [["nope"], /Unknown command: nope \(UnknownCommandError, code -32601\)/],
    [["add", "x=a", "y=2"], /x and y must be numbers \(InvalidParamsError, code -32602\)/],
    [["boom"], /boom \(HandlerFailedError, code -32603\)/],
    [["slow", "ms=1000", "--timeout", "200"], /timed out after 200 ms \(CallTimeoutError/],
  ];
  await Promise.all(failures.map(async ([args, error]) => {
    const { code, stdout, stderr } = await tcpy("call", ...args, ...at);
    assert.equal(code, 3, `${args.join(" ")}: ${stderr}`);
    assert.equal(stdout, "");
    assert.equal(stderr.split("\n").length, 2, `one line: ${stderr}`);
    assert.match(
      firstLine(stderr),
      new RegExp(`^tcpy call: ${args[0]} on 127\\.0\\.0\\.1:${port} failed: `),
    );
    assert.match(firstLine(stderr), error);
  }));

  await stop(proc);
});

Deno.test("call: connection refused is exit code 3", async () => {
  const port = freePort();
  const { code, stdout, stderr } = await tcpy(
    "call",
    "add",
    "--host",
    HOST,
    "--port",
    String(port),
  );
  assert.equal(code, 3);
  assert.equal(stdout, "");
  assert.match(
    stderr,
    new RegExp(`^tcpy call: add on 127\\.0\\.0\\.1:${port} failed: .*refused`, "i"),
  );
  assert.equal(stderr.split("\n").length, 2);
});

Deno.test("serve: a module that builds its own server (the tutorial), by relative path; SIGINT stops it", async () => {
  // No `commands` export: the commands of the server the module constructs.
  // Default thread count: the workers import the tutorial module too.
  const { proc, port } = await serve("examples/tutorial_server.ts");
  await using _ = proc;
  assert.match(proc.stdout, /\(commands: add\)/);
  const done = await tcpy("call", "add", "x=20", "y=22", "--host", HOST, "--port", String(port));
  assert.equal(done.stdout, '{"success":true,"solution":42}\n', done.stderr);
  await stop(proc, "SIGINT");
});

Deno.test("serve through `deno task cli` resolves MODULE from the directory it was typed in", async () => {
  // `deno task` runs in the repository root and sets INIT_CWD to examples/.
  // Not if INIT_CWD is set already (as npm, it keeps the outermost one), and
  // it is when this test runs under `deno task test`: the child goes without.
  const examples = new URL("../examples/", import.meta.url).pathname;
  const env = Deno.env.toObject();
  delete env.INIT_CWD;
  env.NO_COLOR = "1";
  const { proc, port } = await serve(
    "tutorial_server.ts",
    ["--threads", "1"],
    (args) =>
      new Child(Deno.execPath(), ["task", "cli", ...args], { env, clearEnv: true, cwd: examples }),
  );
  await using _ = proc;
  assert.match(proc.stdout, /\(commands: add\)/);
  const done = await tcpy("call", "add", "x=2", "y=3", "--host", HOST, "--port", String(port));
  assert.equal(done.stdout, '{"success":true,"solution":5}\n', done.stderr);
  await stop(proc);
});

Deno.test("serve: a module reads the environment variables deno run --allow-env=VARS grants, in its workers too", async () => {
  const module = new URL("./fixtures/env_handlers.ts", import.meta.url).href;
  const { proc, port } = await serve(
    module,
    ["--threads", "1"],
    (args) =>
      new Child(
        Deno.execPath(),
        ["run", "--allow-net", "--allow-read", "--allow-env=TCPY_TEST_GREETING", CLI, ...args],
        { env: { TCPY_TEST_GREETING: "hello", TCPY_TEST_SECRET: "hidden" }, cwd: ROOT },
      ),
  );
  await using _ = proc;
  await using client = new TCPClient({ host: HOST, port });
  assert.deepEqual(await client.execute("env", { name: "TCPY_TEST_GREETING" }), {
    success: true,
    value: "hello",
    thread: "tcpy-worker-0",
  });
  // Only the variables granted: another one is refused, in the handler's call alone.
  await assert.rejects(
    client.execute("env", { name: "TCPY_TEST_SECRET" }),
    /Requires env access to "TCPY_TEST_SECRET"/,
  );
  await client.disconnect();
  await stop(proc);
});

/** `deno run --allow-env=TCPY_SECRET cli.ts ARGS` with `env` added to the environment. */
function cliWithEnv(env: Record<string, string>): (args: string[]) => Child {
  return (args) =>
    new Child(
      Deno.execPath(),
      ["run", "--allow-net", "--allow-read", "--allow-env=TCPY_SECRET", CLI, ...args],
      { env, cwd: ROOT },
    );
}

/** Runs a child to the end. */
async function finish(proc: Child): Promise<Finished> {
  await using _ = proc;
  return await proc.finish();
}

Deno.test("serve and call take the secret from TCPY_SECRET or --secret-file, never as --secret VALUE", async () => {
  const dir = await Deno.makeTempDir({ prefix: "tcpy-secret-" });
  try {
    const file = `${dir}/secret`;
    await Deno.writeTextFile(file, "s3cret\n", { mode: 0o600 });
    // The server reads TCPY_SECRET.
    const { proc, port } = await serve(FIXTURE, [], cliWithEnv({ TCPY_SECRET: "s3cret" }));
    await using _ = proc;
    const at = ["--host", HOST, "--port", String(port)];
    const add = ["call", "add", "x=1", "y=2", ...at];

    // No secret: refused, and told how to give one.
    let done = await tcpy(...add);
    assert.equal(done.code, 3, done.stderr);
    assert.match(done.stderr, /AuthenticationError/);
    assert.match(done.stderr, /--secret-file PATH/);
    assert.match(done.stderr, /--allow-env=TCPY_SECRET/);
    // From a file (its final newline is not part of it).
    done = await tcpy(...add, "--secret-file", file);
    assert.equal(done.code, 0, done.stderr);
    assert.equal(done.stdout, '{"success":true,"solution":3}\n');
    // From the environment.
    done = await finish(cliWithEnv({ TCPY_SECRET: "s3cret" })(add));
    assert.equal(done.code, 0, done.stderr);
    // The file wins over the environment.
    done = await finish(cliWithEnv({ TCPY_SECRET: "wrong" })([...add, "--secret-file", file]));
    assert.equal(done.code, 0, done.stderr);
    done = await finish(cliWithEnv({ TCPY_SECRET: "wrong" })(add));
    assert.equal(done.code, 3);
    assert.match(done.stderr, /AuthenticationError/);
    // Never on the command line, in either form.
    for (const flag of [["--secret", "s3cret"], ["--secret=s3cret"]]) {
      done = await tcpy(...add, ...flag);
      assert.equal(done.code, 2);
      assert.match(
        firstLine(done.stderr),
        /^tcpy call: --secret is not accepted: .*TCPY_SECRET.*--secret-file PATH/,
      );
      assert.ok(!done.stderr.includes("s3cret"), "the refusal does not echo the secret");
    }
    done = await tcpy("serve", FIXTURE, "--secret", "x");
    assert.equal(done.code, 2);
    assert.match(firstLine(done.stderr), /^tcpy serve: --secret is not accepted: /);
    done = await tcpy(...add, "--secret-file", `${dir}/missing`);
    assert.equal(done.code, 2);
    assert.match(firstLine(done.stderr), /^tcpy call: cannot read --secret-file /);
    await stop(proc);

    // The server reads --secret-file.
    const other = await serve(FIXTURE, ["--secret-file", file]);
    await using _other = other.proc;
    await using good = new TCPClient({ host: HOST, port: other.port, secret: "s3cret" });
    assert.deepEqual(await good.execute("add", { x: 2, y: 2 }), { success: true, solution: 4 });
    await good.disconnect();
    await using bad = new TCPClient({ host: HOST, port: other.port });
    await assert.rejects(bad.execute("add", { x: 2, y: 2 }), /auth/i);
    await bad.disconnect();
    await stop(other.proc);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("serve --tls-cert/--tls-key and call --tls-ca talk TLS", async () => {
  const dir = await Deno.makeTempDir({ prefix: "tcpy-tls-" });
  try {
    // A throwaway CA and a leaf certificate for localhost/127.0.0.1 signed by it.
    await Deno.writeTextFile(
      `${dir}/leaf.ext`,
      "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    );
    const ca = ["-CA", `${dir}/ca.pem`, "-CAkey", `${dir}/ca.key`, "-CAcreateserial"];
    const key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    const steps = [
      ["req", "-x509", ...key, "-days", "1", "-subj", "/CN=tcpy test CA"]
        .concat(["-keyout", `${dir}/ca.key`, "-out", `${dir}/ca.pem`]),
      ["req", ...key, "-subj", "/CN=localhost"]
        .concat(["-keyout", `${dir}/key.pem`, "-out", `${dir}/leaf.csr`]),
      ["x509", "-req", "-in", `${dir}/leaf.csr`, ...ca, "-days", "1"]
        .concat(["-extfile", `${dir}/leaf.ext`, "-out", `${dir}/cert.pem`]),
    ];
    for (const args of steps) {
      const made = await new Deno.Command("openssl", { args, stdout: "null", stderr: "piped" })
        .output();
      assert.equal(made.code, 0, new TextDecoder().decode(made.stderr));
    }
    let done = await tcpy("serve", FIXTURE, "--tls-cert", `${dir}/cert.pem`);
    assert.equal(done.code, 2);
    assert.match(firstLine(done.stderr), /--tls-cert and --tls-key go together/);

    const { proc, port } = await serve(FIXTURE, [
      "--tls-cert",
      `${dir}/cert.pem`,
      "--tls-key",
      `${dir}/key.pem`,
    ]);
    await using _ = proc;
    const add = ["call", "add", "x=1", "y=2", "--host", "localhost", "--port", String(port)];
    done = await tcpy(...add, "--tls-ca", `${dir}/ca.pem`);
    assert.equal(done.code, 0, done.stderr);
    assert.equal(done.stdout, '{"success":true,"solution":3}\n');
    // The system's CAs do not know this one; a plain connection gets no answer.
    done = await tcpy(...add, "--tls", "--timeout", "5000");
    assert.equal(done.code, 3);
    done = await tcpy(...add, "--timeout", "2000");
    assert.equal(done.code, 3);
    await stop(proc);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** A project outside this repository: its own deno.json, with an import map and unstable kv. */
async function project(): Promise<string> {
  const dir = await Deno.realPath(await Deno.makeTempDir({ prefix: "tcpy-project-" }));
  await Deno.writeTextFile(
    `${dir}/deno.json`,
    JSON.stringify({
      imports: {
        "@tcpy/tcpy": new URL("../mod.ts", import.meta.url).href,
        "greeting": "./greeting.ts",
      },
      unstable: ["kv"],
    }),
  );
  await Deno.writeTextFile(
    `${dir}/greeting.ts`,
    "export const hello = (n: string) => `Hello, ${n}`;\n",
  );
  await Deno.writeTextFile(
    `${dir}/handlers.ts`,
    `import { TCPHandler } from "@tcpy/tcpy";
import { hello } from "greeting";
export class Greet extends TCPHandler<{ name: string }> {
  static override inline = false;
  execute() {
    return this.success({ text: hello(this.params.name), kv: typeof Deno.openKv });
  }
}
export const commands = { greet: Greet };
`,
  );
  return dir;
}

Deno.test("serve: a module in a project with its own deno.json is served under that deno.json", async () => {
  const dir = await project();
  try {
    const greet = { success: true, text: "Hello, Ada", kv: "function" };
    // With --allow-run, tcpy serve runs itself again under the project's deno.json.
    const started = await serve("handlers.ts", ["--threads", "1"], (args) =>
      new Child(
        Deno.execPath(),
        ["run", "--allow-net", "--allow-read", "--allow-run", CLI, ...args],
        { cwd: dir },
      ));
    await using _ = started.proc;
    await using client = new TCPClient({ host: HOST, port: started.port, timeout: 10_000 });
    assert.deepEqual(await client.execute("greet", { name: "Ada" }), greet);
    await client.disconnect();
    await stop(started.proc);

    // Without it, it says what to type; and that works.
    const proc = new Child(Deno.execPath(), [...RUN, "serve", "handlers.ts"], { cwd: dir });
    const done = await finish(proc);
    assert.equal(done.code, 1);
    assert.match(done.stderr, /not a dependency|not in import map/);
    assert.match(done.stderr, /belongs to the project of .*deno\.json/);
    const typed = done.stderr.split("\n").find((line) => line.startsWith("  deno run --config"));
    assert.ok(typed, done.stderr);
    const words = typed.trim().split(/ +/);
    assert.deepEqual(words.slice(0, 4), ["deno", "run", "--config", `${dir}/deno.json`]);
    const again = await serve(
      "handlers.ts",
      ["--threads", "1"],
      (args) => new Child(Deno.execPath(), [...words.slice(1), ...args.slice(2)], { cwd: dir }),
    );
    await using _again = again.proc;
    await using other = new TCPClient({ host: HOST, port: again.port, timeout: 10_000 });
    assert.deepEqual(await other.execute("greet", { name: "Ada" }), greet);
    await other.disconnect();
    await stop(again.proc);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("serve: a module that starts and calls its server at its top level is told to use import.meta.main", async () => {
  const done = await tcpy("serve", "tests/fixtures/unguarded.ts");
  assert.equal(done.code, 1, done.stderr);
  const module = new URL("./fixtures/unguarded.ts", import.meta.url).href;
  assert.equal(
    firstLine(done.stderr),
    `tcpy serve: cannot serve tests/fixtures/unguarded.ts: while tcpy serve imported ${module}, ` +
      "its top-level code threw: Cannot connect to 127.0.0.1:1: Connection refused (os error 111); put the server's start " +
      "(listen() and any client code) under if (import.meta.main)",
  );
});

Deno.test("serve: --threads 0 and the other limit flags reach the server", async () => {
  const { proc, port } = await serve(FIXTURE, [
    "--threads",
    "0",
    "--max-message-bytes",
    "64",
    "--max-batch-length",
    "2",
    "--grace-period",
    "1000",
  ]);
  await using _ = proc;
  await using client = new TCPClient({ host: HOST, port });
  assert.deepEqual(await client.execute("add", { x: 1, y: 2 }), { success: true, solution: 3 });
  // A request over 64 bytes is refused.
  await assert.rejects(client.execute("echo", { text: "x".repeat(100) }), /64|too large/i);
  await client.disconnect();
  const done = await stop(proc);
  assert.match(done.stderr, /up to 1000 ms/);
});

Deno.test("serve: exit code 1 when the module cannot be served or the port is taken", async () => {
  let done = await tcpy("serve", "tests/fixtures/no_such_module.ts");
  assert.equal(done.code, 1);
  assert.match(
    firstLine(done.stderr),
    /^tcpy serve: cannot serve tests\/fixtures\/no_such_module\.ts: /,
  );

  done = await tcpy("serve", "mod.ts");
  assert.equal(done.code, 1);
  assert.match(done.stderr, /offers no commands/);

  using listener = Deno.listen({ hostname: HOST, port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  done = await tcpy("serve", FIXTURE, "--host", HOST, "--port", String(port));
  assert.equal(done.code, 1);
  assert.match(firstLine(done.stderr), /^tcpy serve: cannot start: /);
});

Deno.test("serve: SIGTERM during a slow call lets the call finish, then exits 0", async () => {
  const { proc, port } = await serve(FIXTURE);
  await using _ = proc;
  await using client = new TCPClient({ host: HOST, port });
  const call = client.call("hold");
  // The handler says "started" once it runs: the call is in flight, and it
  // ends only when told, so it is still in flight during the shutdown.
  assert.equal(await within(call.recv(), 10_000, "the held call to start"), "started");
  proc.process.kill("SIGTERM");
  await proc.waitFor(/SIGTERM received/, "stderr");
  await call.send("go on");
  assert.deepEqual(await within(call.result, 10_000, "the held call"), {
    success: true,
    heard: "go on",
  });
  const done = await proc.finish();
  assert.equal(done.code, 0, done.stderr);
  assert.match(done.stderr, /tcpy: stopped/);
});

Deno.test("serve: a second signal exits at once without waiting for calls", async () => {
  const { proc, port } = await serve(FIXTURE);
  await using _ = proc;
  await using client = new TCPClient({ host: HOST, port });
  const call = client.call("hold");
  const result = call.result.catch((error) => error);
  assert.equal(await within(call.recv(), 10_000, "the held call to start"), "started");
  proc.process.kill("SIGTERM");
  await proc.waitFor(/SIGTERM received/, "stderr");
  proc.process.kill("SIGTERM");
  const done = await proc.finish(5_000);
  assert.equal(done.code, 143);
  assert.match(done.stderr, /SIGTERM again/);
  assert.ok(await within(result, 5_000, "the cut call") instanceof Error);
});

// ---------------------------------------------------------------------------
// deno compile.

const canWrite = (await Deno.permissions.query({ name: "write" })).state === "granted";
if (!canWrite) {
  console.log("cli_test: the deno compile tests are ignored: they need --allow-write (temp dir)");
}

/**
 * Runs `deno ARGS` in the repository and returns its output (colors off).
 * `denort` is the `DENORT_BIN` to use; `null` removes it from the environment.
 */
async function deno(args: string[], denort: string | null): Promise<Finished> {
  const env = Deno.env.toObject();
  if (denort === null) delete env.DENORT_BIN;
  else env.DENORT_BIN = denort;
  env.NO_COLOR = "1";
  const proc = new Child(Deno.execPath(), args, { env, clearEnv: true, cwd: ROOT });
  await using _ = proc;
  return await proc.finish(180_000);
}

/** `deno task compile --output DIR/tcpy`. */
function compile(dir: string, denort: string | null): Promise<Finished> {
  return deno(["task", "compile", "--output", `${dir}/tcpy`], denort);
}

Deno.test("deno task compile passes --allow-env and --allow-env=VARS on to deno compile", () => {
  assert.deepEqual(parseCompileArgs(["--allow-env"]).options.allowEnv, true);
  const { options } = parseCompileArgs([
    "--allow-env=DB_URL,PORT",
    "--target",
    "x86_64-apple-darwin",
  ]);
  assert.deepEqual(options, {
    allowEnv: "DB_URL,PORT",
    target: "x86_64-apple-darwin",
    output: undefined,
  });
  const args = compileArgs(options);
  assert.ok(args.includes("--allow-env=TCPY_SECRET,DB_URL,PORT"), args.join(" "));
  assert.ok(
    args.indexOf("--allow-env=TCPY_SECRET,DB_URL,PORT") < args.indexOf("cli.ts"),
    "before the entry",
  );
  assert.ok(compileArgs({ allowEnv: true }).includes("--allow-env"));
  // Only the secret's variable unless asked.
  assert.deepEqual(compileArgs().filter((arg) => arg.startsWith("--allow-env")), [
    "--allow-env=TCPY_SECRET",
  ]);
  assert.throws(() => parseCompileArgs(["--allow-env="]), /needs variable names/);
  assert.throws(() => parseCompileArgs(["--allow-write"]), /Unknown option '--allow-write'/);
});

/**
 * Asserts that nothing names the worker entry for `deno compile`: neither an
 * `--include` in ARGS nor a `compile.include` in deno.json. The worker entry
 * must be embedded through the static import in internal/pool.ts alone.
 */
function assertNoInclude(args: string[]): void {
  assert.ok(!args.some((arg) => arg.startsWith("--include")), `no --include: ${args.join(" ")}`);
  assert.ok(!("compile" in denoJson), "deno.json has no compile.include");
}

/** The `deno compile` arguments of the first sh block under "Compiling your own server". */
async function docsCompileRecipe(): Promise<string[]> {
  const doc = await Deno.readTextFile(new URL("../docs/cli.md", import.meta.url));
  const section = doc.split("\n## Compiling your own server\n")[1];
  assert.ok(section, "docs/cli.md has a section Compiling your own server");
  const block = section.match(/```sh\n([\s\S]*?)```/)?.[1];
  assert.ok(block, "the section has a sh block");
  const words = block.replace(/\\\n/g, " ").trim().split(/\s+/);
  assert.equal(words.shift(), "deno");
  return words;
}

/** The paths of the "Embedded Files" tree `deno compile` prints. */
function embeddedFiles(output: string): string[] {
  const lines = output.split("\n");
  const start = lines.findIndex((line) => line.trim() === "Embedded Files");
  assert.ok(start >= 0, `no "Embedded Files" in:\n${output}`);
  const paths: string[] = [];
  const stack: string[] = [];
  // Skip the title, a blank line and the binary's name; read the tree.
  for (const line of lines.slice(start + 3)) {
    const match = line.match(/^((?:[│ ] )*)[├└]─[─┬] (.+?) \([\d.]+\w*B\)$/);
    if (!match) break;
    const depth = match[1].length / 2;
    stack.length = depth;
    stack.push(match[2]);
    paths.push(stack.join("/"));
  }
  return paths;
}

Deno.test({
  name:
    "deno task compile embeds the worker entry (without --include) and the handler-loading path",
  ignore: !canWrite,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "tcpy-compile-" });
    try {
      const args = compileArgs({ output: `${dir}/tcpy` });
      assertNoInclude(args);
      // DENORT_BIN=deno: the whole graph is built and listed, but the file
      // written starts as the plain deno CLI, not as tcpy (ARCHITECTURE.md),
      // so it is not run.
      const done = await compile(dir, Deno.execPath());
      assert.equal(done.code, 0, done.stderr);
      const text = done.stdout + done.stderr;
      assert.ok(text.includes(args.join(" ")), text);
      const files = embeddedFiles(text);
      for (
        const path of [
          "cli.ts",
          "deno.json",
          "server.ts",
          "client.ts",
          "internal/pool.ts",
          "internal/worker.ts",
          "internal/shard.ts",
          "internal/resolve.ts",
          "internal/run_handler.ts",
        ]
      ) {
        assert.ok(files.includes(path), `${path} is embedded: ${files.join(", ")}`);
      }
      // Nothing else: no tests, examples or benchmarks in the binary.
      assert.deepEqual(files.filter((f) => /^(tests|examples|bench|scripts)\b/.test(f)), []);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "compiling your own server as docs/cli.md says (without --include) embeds the worker entry",
  ignore: !canWrite,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "tcpy-compile-" });
    try {
      // The command of docs/cli.md, "Compiling your own server", as written
      // there (no --include), with the output moved to the temp dir.
      const args = await docsCompileRecipe();
      assert.deepEqual(args, [
        "compile",
        "--allow-net",
        "--allow-read",
        "--output",
        "dist/tutorial_server",
        "examples/tutorial_server.ts",
      ]);
      assertNoInclude(args);
      args[args.indexOf("--output") + 1] = `${dir}/tutorial_server`;
      const done = await deno(args, Deno.execPath());
      assert.equal(done.code, 0, done.stderr);
      const files = embeddedFiles(done.stdout + done.stderr);
      for (
        const path of [
          "examples/tutorial_server.ts",
          "mod.ts",
          "internal/worker.ts",
          "internal/shard.ts",
        ]
      ) {
        assert.ok(files.includes(path), `${path} is embedded: ${files.join(", ")}`);
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

/** The DENORT_BIN to give `deno compile`: the environment's, unless it is deno itself. */
const denortBin = (() => {
  const denort = Deno.env.get("DENORT_BIN") ?? null;
  // A DENORT_BIN that is deno itself builds no working binary: drop it.
  try {
    if (denort && Deno.realPathSync(denort) === Deno.realPathSync(Deno.execPath())) return null;
  } catch {
    // Missing: deno compile says so.
  }
  return denort;
})();

/**
 * Whether `deno compile` gets its denort runtime here (from DENORT_BIN,
 * Deno's cache or a download): decided once, by compiling a one-line script.
 */
const haveDenort = canWrite && await (async () => {
  const dir = await Deno.makeTempDir({ prefix: "tcpy-denort-" });
  try {
    await Deno.writeTextFile(`${dir}/probe.ts`, "export {};\n");
    const env = Deno.env.toObject();
    if (denortBin === null) delete env.DENORT_BIN;
    else env.DENORT_BIN = denortBin;
    const { success } = await new Deno.Command(Deno.execPath(), {
      args: ["compile", "--no-check", "--no-config", "--output", `${dir}/probe`, `${dir}/probe.ts`],
      env,
      clearEnv: true,
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).output();
    return success;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
})();
if (canWrite && !haveDenort) {
  console.log(
    "cli_test: the compiled-binary test is ignored: deno compile cannot get its denort " +
      "runtime here (no network; set DENORT_BIN to a denort binary)",
  );
}

Deno.test({
  name: "deno task compile explains a denort runtime it cannot download (only where it cannot)",
  ignore: !canWrite || haveDenort,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "tcpy-binary-" });
    try {
      const built = await compile(dir, denortBin);
      const text = built.stdout + built.stderr;
      assert.notEqual(built.code, 0, text);
      // The script explains Deno's bare download error, and names DENORT_BIN.
      assert.match(text, /compile: deno compile could not download the denort runtime/);
      assert.match(text, /compile: {3}DENORT_BIN=\/path\/to\/denort deno task compile/);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "the compiled binary serves the tutorial module and calls it (needs denort)",
  ignore: !canWrite || !haveDenort,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "tcpy-binary-" });
    try {
      const built = await compile(dir, denortBin);
      const text = built.stdout + built.stderr;
      assert.equal(built.code, 0, text);
      const binary = `${dir}/tcpy`;

      const version = new Child(binary, ["--version"], { cwd: ROOT });
      await using _v = version;
      assert.equal((await version.finish()).stdout, `tcpy ${denoJson.version}\n`);

      // The tutorial module is read from disk (an absolute file: URL made from
      // the relative path), TypeScript and all, by the binary and its workers.
      const { proc, port } = await serve(
        "examples/tutorial_server.ts",
        [],
        (args) => new Child(binary, args, { cwd: ROOT }),
      );
      await using _ = proc;
      const call = new Child(binary, [
        "call",
        "add",
        "x=1",
        "y=2",
        "--host",
        HOST,
        "--port",
        String(port),
      ], { cwd: ROOT });
      await using _c = call;
      const done = await call.finish();
      assert.equal(done.code, 0, done.stderr);
      assert.equal(done.stdout, '{"success":true,"solution":3}\n');
      await stop(proc);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

// ---------------------------------------------------------------------------
// tcpy compile MODULE.

Deno.test("tcpy compile: the deno compile command line it builds, and its entry", () => {
  const args = compileModuleArgs({
    entry: "/tmp/x/main.ts",
    module: "/srv/app/handlers.ts",
    output: "/srv/app/handlers",
    config: "/srv/app/deno.json",
  });
  const worker = new URL("../internal/worker.ts", import.meta.url).pathname;
  const shard = new URL("../internal/shard.ts", import.meta.url).pathname;
  assert.deepEqual(args, [
    "compile",
    "--allow-net",
    "--allow-read",
    "--allow-env=TCPY_SECRET",
    "--unstable-net",
    "--config",
    "/srv/app/deno.json",
    "--include",
    worker,
    "--include",
    shard,
    "--include",
    "/srv/app/handlers.ts",
    "--output",
    "/srv/app/handlers",
    "/tmp/x/main.ts",
  ]);
  assert.ok(compileModuleArgs({ entry: "e", module: "m", output: "o" }).includes("--no-config"));
  const entry = compileEntry("/tmp/x", "/srv/app/handlers.ts");
  assert.match(entry, /^import "\.\.\/\.\.\/srv\/app\/handlers\.ts";$/m);
  assert.match(entry, /main\(\["serve", module, \.\.\.Deno\.args\]\)/);
});

/** `deno run --allow-all cli.ts compile ARGS` in `cwd`, with DENORT_BIN set or removed. */
async function tcpyCompile(args: string[], cwd: string, denort: string | null): Promise<Finished> {
  const env = Deno.env.toObject();
  if (denort === null) delete env.DENORT_BIN;
  else env.DENORT_BIN = denort;
  env.NO_COLOR = "1";
  // MODULE is resolved against the directory the command was typed in: here `cwd`, not the
  // INIT_CWD of the `deno task test` around this test.
  delete env.INIT_CWD;
  const proc = new Child(Deno.execPath(), ["run", "--allow-all", CLI, "compile", ...args], {
    env,
    clearEnv: true,
    cwd,
  });
  await using _ = proc;
  return await proc.finish(180_000);
}

Deno.test({
  name: "tcpy compile embeds the module and the worker entries, and explains a missing denort",
  ignore: !canWrite,
  async fn() {
    const dir = await project();
    try {
      // DENORT_BIN=deno: the graph is built and listed (the file is no working binary).
      let done = await tcpyCompile(["handlers.ts", "--output", "bin"], dir, Deno.execPath());
      assert.equal(done.code, 0, done.stderr);
      const text = done.stdout + done.stderr;
      assert.match(text, new RegExp(`--config ${dir}/deno\\.json`));
      const files = embeddedFiles(text).map((path) => path.split("/").pop());
      for (const name of ["handlers.ts", "greeting.ts", "worker.ts", "shard.ts", "cli.ts"]) {
        assert.ok(files.includes(name), `${name} is embedded: ${files.join(", ")}`);
      }
      // The real runtime: downloaded where it can be; else the failure is explained.
      let denort = Deno.env.get("DENORT_BIN") ?? null;
      if (denort && Deno.realPathSync(denort) === Deno.realPathSync(Deno.execPath())) denort = null;
      done = await tcpyCompile(["handlers.ts", "--output", "bin"], dir, denort);
      if (done.code === 0) {
        console.log("tcpy compile: denort was available; the explanation was not needed");
        return;
      }
      assert.equal(done.code, 1, done.stderr);
      assert.match(done.stderr, /tcpy compile: deno compile could not download the denort runtime/);
      assert.match(
        done.stderr,
        /tcpy compile: {3}DENORT_BIN=\/path\/to\/denort tcpy compile handlers\.ts --output bin/,
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

/** A DENORT_BIN that is a real denort (not deno itself): only then can a binary run here. */
const realDenort = (() => {
  const denort = Deno.env.get("DENORT_BIN");
  try {
    return !!denort && Deno.realPathSync(denort) !== Deno.realPathSync(Deno.execPath());
  } catch {
    return false;
  }
})();

Deno.test({
  name: "tcpy compile: the binary serves the module (needs DENORT_BIN set to a denort runtime)",
  ignore: !canWrite || !realDenort,
  async fn() {
    const dir = await project();
    try {
      const done = await tcpyCompile(["handlers.ts", "--output", "bin"], dir, null);
      assert.equal(done.code, 0, done.stderr);
      const { proc, port } = await serve(
        "",
        [],
        (args) => new Child(`${dir}/bin`, args.slice(2), { cwd: dir }),
      );
      await using _ = proc;
      await using client = new TCPClient({ host: HOST, port, timeout: 10_000 });
      assert.deepEqual(await client.execute("greet", { name: "Ada" }), {
        success: true,
        text: "Hello, Ada",
        kv: "function",
      });
      await client.disconnect();
      await stop(proc);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

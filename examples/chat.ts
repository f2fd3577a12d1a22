/**
 * A conversation: the handler and its client exchange several messages with
 * `send`/`recv` before the call returns. The server part (the handler and
 * the server, at the top level, as the worker pool needs) and the client part
 * (`converse`) live in one file; run it to see both:
 *
 * ```sh
 * deno run --allow-net=127.0.0.1,localhost --allow-read examples/chat.ts
 * deno run --allow-net=127.0.0.1,localhost --allow-read examples/chat.ts Ada "I like Deno" bye
 * ```
 *
 * The arguments are the client's lines (a name, then anything; "bye" ends
 * the chat). On the wire each message is a `tcpy.message` notification tied
 * to the call's id (PROTOCOL.md, "Conversations").
 *
 * @module
 */
import { TCPClient, TCPHandler, TCPServer } from "../mod.ts";

/** What the bot says: one message from the handler to the client. */
export interface BotLine {
  /** The text. */
  bot: string;
}

/**
 * Asks for a name, then answers every line until the client says "bye",
 * and returns how the chat went.
 */
export class ChatHandler extends TCPHandler<{ bot?: string }> {
  async execute() {
    const bot = this.params.bot ?? "tcpy-bot";
    await this.send({ bot: `Hi, I am ${bot}. What is your name?` } satisfies BotLine);
    const name = String(await this.recv());
    await this.send({ bot: `Nice to meet you, ${name}. Say anything; "bye" ends the chat.` });
    let lines = 0;
    while (true) {
      const line = String(await this.recv());
      if (line.trim().toLowerCase() === "bye") {
        await this.send({ bot: `Bye, ${name}!` });
        return this.success({ name, lines });
      }
      lines++;
      const words = line.split(/\s+/).filter(Boolean).length;
      await this.send({ bot: `"${line}": ${words} word${words === 1 ? "" : "s"}, noted.` });
    }
  }
}

/** The server's commands; `TCPClient<typeof commands>` checks calls against them. */
export const commands = { chat: ChatHandler };

// The server at the top level: each worker imports this module and finds
// ChatHandler in `server.commands`. `listen()` only runs under import.meta.main.
export const server = new TCPServer({ port: 0, threads: 2, commands });

/** One chat seen from the client: every line in order, and the call's result. */
export interface Transcript {
  /** `bot: ...` and `you: ...` lines, in the order they were exchanged. */
  lines: string[];
  /** What the handler returned. */
  result: { name: string; lines: number };
}

/**
 * The client part: answers each bot line with the next of `answers` until the
 * bot says goodbye. `answers` should end with "bye".
 *
 * @param client A client for a server with the `chat` command.
 * @param answers The client's lines: a name first.
 * @returns The transcript and the result.
 */
export async function converse(
  client: TCPClient<typeof commands>,
  answers: string[],
): Promise<Transcript> {
  const call = client.call("chat");
  const lines: string[] = [];
  for (const answer of answers) {
    lines.push(`bot: ${(await call.recv<BotLine>()).bot}`);
    lines.push(`you: ${answer}`);
    await call.send(answer);
  }
  const result = await call.result;
  // Messages sent before the result stay readable after it: the goodbye.
  lines.push(`bot: ${(await call.recv<BotLine>()).bot}`);
  return { lines, result };
}

if (import.meta.main) {
  const answers = Deno.args.length > 0 ? Deno.args : ["Ada", "hello there", "bye"];
  if (answers.at(-1)?.toLowerCase() !== "bye") answers.push("bye");
  const { port } = await server.listen();
  try {
    await using client = new TCPClient<typeof commands>({ port, timeout: 10_000 });
    const { lines, result } = await converse(client, answers);
    for (const line of lines) console.log(line);
    console.log("result:", result);
  } finally {
    await server.close();
  }
}

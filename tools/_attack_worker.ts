/**
 * The worker that runs one attack of `tools/attack.ts` (`tools/_attackers.ts`)
 * off the harness's main thread. It receives `{ name, context }`, runs that
 * attack and answers `{ report }` or `{ error }`.
 *
 * @module
 */
import { type AttackContext, ATTACKS } from "./_attackers.ts";

interface Start {
  name: string;
  context: AttackContext;
}

const scope = self as unknown as {
  onmessage: ((event: MessageEvent<Start>) => void) | null;
  postMessage(message: unknown): void;
};

scope.onmessage = async (event) => {
  const { name, context } = event.data;
  try {
    const report = await ATTACKS[name](context);
    scope.postMessage({ report });
  } catch (error) {
    scope.postMessage({ error: `${(error as Error).name}: ${(error as Error).message}` });
  }
};

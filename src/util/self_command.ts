/**
 * The command line that runs this same program again: the single executable itself, Node on the bundle it
 * was given, or Deno on src/main.ts (as scripts/keylime-ts runs it).
 */
import { fileURLToPath } from "node:url";

interface DenoRuntime {
  execPath(): string;
  mainModule: string;
}

export function selfCommand(args: readonly string[]): { command: string; args: string[] } {
  const deno = (globalThis as { Deno?: DenoRuntime }).Deno;
  if (deno) {
    // Under Deno the entry must be this program's (a test runner's entry would run the tests again).
    if (!deno.mainModule.endsWith("/src/main.ts")) {
      throw new Error(`cannot run this program again: started from ${deno.mainModule}, not src/main.ts`);
    }
    return { command: deno.execPath(), args: ["run", "-A", "--quiet", fileURLToPath(deno.mainModule), ...args] };
  }
  const script = process.argv[1];
  // A single executable's argv[1] is the name it was started as, never a script file.
  if (script && /\.[cm]?js$/.test(script)) return { command: process.execPath, args: [script, ...args] };
  return { command: process.execPath, args: [...args] };
}

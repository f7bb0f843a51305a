/** Every command the simulator implements, by command code, from the handler groups. */
import { COMMANDS } from "../../src/tpm/commands.ts";
import type { Handler } from "../sim_tpm.ts";

/** A group of handlers keyed by the Part 3 command name (without TPM2_). */
export type HandlerGroup = Readonly<Record<string, Handler>>;

export function registry(...groups: HandlerGroup[]): Map<number, Handler> {
  const byName = new Map([...COMMANDS.values()].map((d) => [d.name, d.code]));
  const out = new Map<number, Handler>();
  for (const group of groups) {
    for (const [name, handler] of Object.entries(group)) {
      const code = byName.get(name);
      if (code === undefined) throw new Error(`handler for undeclared command ${name}`);
      if (out.has(code)) throw new Error(`two handlers for ${name}`);
      out.set(code, handler);
    }
  }
  return out;
}

/**
 * Handlers registered by their command declaration and typed by it: `handle(Quote, quote)` takes a
 * function from `CommandArgs<typeof Quote>` to `ResponseArgs<typeof Quote>`, so an argument the
 * command does not have, or a response field it does not declare, fails the type check.
 */
import type { AuthRole, CommandDef, Handles, ParamFields, Params } from "../../src/tpm/command.ts";
import { COMMANDS } from "../../src/tpm/commands.ts";
import { decode, encode } from "../../src/tpm/marshal.ts";
import type { Call, Handler, SimTpm } from "../sim_tpm.ts";

/** Keys of `R` that `Out` does not declare. */
type Undeclared<R, Out> = Exclude<keyof R, keyof Out>;

/**
 * Register `fn` for command `def`. The response must carry exactly the declared fields: a returned
 * field the command does not declare (a misspelling) asks for an argument that cannot be given.
 */
export function handle<
  H extends Record<string, AuthRole>,
  P extends ParamFields,
  RH extends string,
  RP extends ParamFields,
  R extends Handles<RH> & Params<RP>,
>(
  def: CommandDef<H, P, RH, RP>,
  fn: (tpm: SimTpm, args: Handles<keyof H> & Params<P>, call: Call) => R | Promise<R>,
  ...undeclared: [Undeclared<R, Handles<RH> & Params<RP>>] extends [never] ? []
    : [undeclaredResponseField: Undeclared<R, Handles<RH> & Params<RP>>]
): Handler {
  void undeclared;
  return {
    def,
    prepare(handleValues, parameters) {
      // Every declared handle gets its value: the frame decoder read exactly def.handles.length.
      const handles: Partial<Handles<keyof H>> = {};
      def.handles.forEach(([name], i) => (handles[name] = handleValues[i]));
      const args = { ...(handles as Handles<keyof H>), ...decode(def.params, parameters) };
      return async (tpm, call) => {
        const out = await fn(tpm, args, call);
        return {
          handles: def.responseHandle === undefined ? [] : [out[def.responseHandle]],
          parameters: encode(def.response, out),
        };
      };
    },
  };
}

/** Every handler by command code; a handler for an undeclared command, or two for one, is a bug. */
export function registry(...groups: readonly (readonly Handler[])[]): Map<number, Handler> {
  const out = new Map<number, Handler>();
  for (const h of groups.flat()) {
    if (COMMANDS.get(h.def.code) !== h.def) throw new Error(`handler for undeclared command ${h.def.name}`);
    if (out.has(h.def.code)) throw new Error(`two handlers for ${h.def.name}`);
    out.set(h.def.code, h);
  }
  return out;
}

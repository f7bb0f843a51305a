/**
 * How a Part 3 command is declared: code, handles (and the authorization role of each), parameter
 * structure, response handle and response parameters. commands.ts holds the declarations; frame.ts
 * turns them into bytes in all four directions.
 */
import { type Codec, type Field, type FieldType, type Shape, struct } from "./marshal.ts";

/**
 * Authorization role of a command handle (Part 3 §4.3.4 "Auth Index / Auth Role"):
 * none = no session; user/admin/dup = the handle takes one authorization session in that role.
 */
export type AuthRole = "none" | "user" | "admin" | "dup";

export type ParamFields = Record<string, Field<unknown>>;
/** Values of declared parameters, by name. */
export type Params<F extends ParamFields> = { [K in keyof F]: FieldType<F[K]> };
/** Handle values by handle name (a command's handles, or its response handle). */
export type Handles<H extends PropertyKey> = { [K in H]: number };

export interface CommandDef<
  H extends Record<string, AuthRole> = Record<string, AuthRole>,
  P extends ParamFields = ParamFields,
  RH extends string = string,
  RP extends ParamFields = ParamFields,
> {
  /** Part 3 name without the TPM2_ prefix, e.g. "Quote". */
  readonly name: string;
  readonly code: number;
  /** Handle names in wire order with their authorization roles. */
  readonly handles: readonly (readonly [keyof H & string, AuthRole])[];
  /** Number of handles that take an authorization session (Part 1 §18.6). */
  readonly authCount: number;
  readonly params: Codec<Params<P>>;
  /** The response handle's name, when the command returns one (CreatePrimary's objectHandle ...). */
  readonly responseHandle: RH | undefined;
  readonly response: Codec<Params<RP>>;
  /** Names of the parameters and response parameters, in order (for error messages: parameter n). */
  readonly paramNames: readonly string[];
  readonly responseNames: readonly string[];
  /** Whether the first parameter is a TPM2B, so a session may encrypt it (Part 1 §21.1). */
  readonly canDecrypt: boolean;
  readonly canEncrypt: boolean;
}

export type AnyCommand = CommandDef<Record<string, AuthRole>, ParamFields, string, ParamFields>;

/** The client's input to a command: handles by name, then parameters by name. */
export type CommandArgs<C> = C extends CommandDef<infer H, infer P, string, ParamFields> ? Handles<keyof H> & Params<P>
  : never;

/** The client's output of a command: the response handle by name, then response parameters by name. */
export type ResponseArgs<C> = C extends CommandDef<Record<string, AuthRole>, ParamFields, infer RH, infer RP>
  ? Handles<RH> & Params<RP>
  : never;

function firstIsSized(fields: ParamFields): boolean {
  const first = Object.values(fields)[0];
  if (!first || !("shape" in first)) return false;
  const shape: Shape = first.shape;
  return (shape.kind === "bytes" && shape.sizeBits === 16) || shape.kind === "sized";
}

/** Declare a Part 3 command. */
export function command<
  const H extends Record<string, AuthRole> = Record<never, AuthRole>,
  const P extends ParamFields = Record<never, Field<unknown>>,
  const RP extends ParamFields = Record<never, Field<unknown>>,
  const RH extends string = never,
>(
  name: string,
  code: number,
  decl: { handles?: H; params?: P; response?: { handle?: RH; params?: RP } },
): CommandDef<H, P, RH, RP> {
  const handles = Object.entries(decl.handles ?? {}) as [keyof H & string, AuthRole][];
  const params = (decl.params ?? {}) as P;
  const response = (decl.response?.params ?? {}) as RP;
  return {
    name,
    code,
    handles,
    authCount: handles.filter(([, role]) => role !== "none").length,
    params: struct(`TPM2_${name} parameters`, params) as Codec<Params<P>>,
    responseHandle: decl.response?.handle,
    response: struct(`TPM2_${name} response`, response) as Codec<Params<RP>>,
    paramNames: Object.keys(params),
    responseNames: Object.keys(response),
    canDecrypt: firstIsSized(params),
    canEncrypt: firstIsSized(response),
  };
}

/**
 * Command and response framing (Part 1 §18; Part 3 §4), in all four directions:
 *   client:    encodeCommand → bytes → … → decodeResponse
 *   simulator: decodeCommand ← bytes ← … ← encodeResponse
 *
 * The byte-level frames carry the parameter area as bytes, so the session layer can hash and
 * encrypt it (cpHash/rpHash, parameter encryption) between marshalling and framing.
 */
import type { AnyCommand } from "./command.ts";
import { hex, nameOf, TPM_CC, TPM_RC, TPM_ST } from "./constants.ts";
import { MarshalError } from "./errors.ts";
import { decode, decodeNamed, type DecodeOptions, encode, Reader, Writer } from "./marshal.ts";
import {
  TPMS_AUTH_COMMAND,
  type TPMS_AUTH_COMMAND as AuthCommand,
  TPMS_AUTH_RESPONSE,
  type TPMS_AUTH_RESPONSE as AuthResponse,
} from "./structures.ts";

export type { AuthCommand, AuthResponse };

/** Header bytes shared by commands and responses: u16 tag, u32 size, u32 code. */
export const HEADER_SIZE = 10;
/** At most three authorization sessions per command (Part 1 §19.6.1). */
export const MAX_SESSIONS = 3;

export interface CommandFrame {
  readonly code: number;
  readonly handles: readonly number[];
  /** Empty for TPM_ST_NO_SESSIONS. */
  readonly auths: readonly AuthCommand[];
  readonly parameters: Uint8Array;
}

export interface ResponseFrame {
  readonly rc: number;
  readonly handles: readonly number[];
  readonly parameters: Uint8Array;
  /** One per command session, empty when the command had none. */
  readonly auths: readonly AuthResponse[];
}

/** "TPM2_Quote", or the hex code for commands this library does not declare. */
export function commandName(code: number): string {
  const n = nameOf(TPM_CC, code);
  return n ? `TPM2_${n}` : `command ${hex(code, 8)}`;
}

// ---- byte-level frames ---------------------------------------------------------------------------

export function encodeCommandFrame(f: CommandFrame): Uint8Array {
  if (f.auths.length > MAX_SESSIONS) {
    throw new MarshalError(`${f.auths.length} sessions exceed the maximum of ${MAX_SESSIONS}`, "size", "encode")
      .at(commandName(f.code));
  }
  const w = new Writer(HEADER_SIZE + 4 * f.handles.length + f.parameters.length + 80 * f.auths.length);
  w.u16(f.auths.length ? TPM_ST.SESSIONS : TPM_ST.NO_SESSIONS);
  w.u32(0); // commandSize, set below
  w.u32(f.code);
  for (const h of f.handles) w.u32(h);
  if (f.auths.length) {
    const fillAuth = w.lengthSlot(4);
    for (const a of f.auths) TPMS_AUTH_COMMAND.encode(w, a);
    fillAuth();
  }
  w.bytes(f.parameters);
  const out = w.finish();
  new DataView(out.buffer).setUint32(2, out.length);
  return out;
}

/**
 * Parse a command. `handleCount` says how many handles the code carries (the buffer does not);
 * undefined means the command is unknown, which is a TPM_RC_COMMAND_CODE error for the caller.
 */
export function decodeCommandFrame(
  bytes: Uint8Array,
  handleCount: (code: number) => number | undefined,
): CommandFrame & { tag: number } {
  const r = new Reader(bytes);
  const tag = r.u16();
  const size = r.u32();
  const code = r.u32();
  if (tag !== TPM_ST.NO_SESSIONS && tag !== TPM_ST.SESSIONS) {
    throw new MarshalError(`bad tag ${hex(tag)}`, "tag").at("command header");
  }
  if (size !== bytes.length) {
    throw new MarshalError(`commandSize ${size} but ${bytes.length} bytes received`, "size").at("command header");
  }
  const n = handleCount(code);
  if (n === undefined) {
    throw new MarshalError(`unknown command code ${hex(code, 8)}`, "value").at("command header");
  }
  const handles: number[] = [];
  for (let i = 0; i < n; i++) handles.push(r.u32());
  const auths: AuthCommand[] = [];
  if (tag === TPM_ST.SESSIONS) {
    const authSize = r.u32();
    if (authSize > r.remaining) {
      throw new MarshalError(`authorizationSize ${authSize} exceeds the ${r.remaining} bytes left`, "size")
        .at("authorization area");
    }
    const area = r.sub(authSize);
    while (area.remaining > 0) {
      if (auths.length === MAX_SESSIONS) {
        throw new MarshalError(`more than ${MAX_SESSIONS} sessions`, "size").at("authorization area");
      }
      auths.push(decodeNamed(TPMS_AUTH_COMMAND, area));
    }
    if (auths.length === 0) throw new MarshalError("tag SESSIONS but no session", "size").at("authorization area");
  }
  return { tag, code, handles, auths, parameters: r.bytes(r.remaining) };
}

export function encodeResponseFrame(f: ResponseFrame): Uint8Array {
  if (f.rc !== TPM_RC.SUCCESS) {
    const w = new Writer(HEADER_SIZE);
    w.u16(TPM_ST.NO_SESSIONS);
    w.u32(HEADER_SIZE);
    w.u32(f.rc);
    return w.finish();
  }
  const w = new Writer(HEADER_SIZE + 4 + f.parameters.length + 80 * f.auths.length);
  w.u16(f.auths.length ? TPM_ST.SESSIONS : TPM_ST.NO_SESSIONS);
  w.u32(0); // responseSize, set below
  w.u32(f.rc);
  for (const h of f.handles) w.u32(h);
  if (f.auths.length) w.u32(f.parameters.length);
  w.bytes(f.parameters);
  for (const a of f.auths) TPMS_AUTH_RESPONSE.encode(w, a);
  const out = w.finish();
  new DataView(out.buffer).setUint32(2, out.length);
  return out;
}

/**
 * Parse a response to a command that was sent with `sessionCount` sessions and expects
 * `responseHandles` handles. Error responses carry only the header.
 */
export function decodeResponseFrame(
  bytes: Uint8Array,
  expect: { responseHandles: number; sessionCount: number },
  options: DecodeOptions = {},
): ResponseFrame {
  const r = new Reader(bytes, 0, bytes.length, options.alias === true);
  const tag = r.u16();
  const size = r.u32();
  const rc = r.u32();
  const at = "response header";
  if (size !== bytes.length) {
    throw new MarshalError(`responseSize ${size} but ${bytes.length} bytes received`, "size").at(at);
  }
  if (tag !== TPM_ST.NO_SESSIONS && tag !== TPM_ST.SESSIONS) {
    throw new MarshalError(`bad tag ${hex(tag)}`, "tag").at(at);
  }
  if (rc !== TPM_RC.SUCCESS) {
    // An error response is the bare header, and it never carries sessions (Part 1 §18.4).
    if (tag !== TPM_ST.NO_SESSIONS) {
      throw new MarshalError(
        `error response (rc ${hex(rc, 3)}) tagged ${hex(tag)}; an error response has tag TPM_ST_NO_SESSIONS (0x8001)`,
        "tag",
      ).at(at);
    }
    if (size !== HEADER_SIZE) throw new MarshalError(`error response of ${size} bytes, expected 10`, "size").at(at);
    return { rc, handles: [], parameters: new Uint8Array(0), auths: [] };
  }
  const withSessions = expect.sessionCount > 0;
  if ((tag === TPM_ST.SESSIONS) !== withSessions) {
    throw new MarshalError(
      `tag ${hex(tag)} does not match a command sent with ${expect.sessionCount} session(s)`,
      "tag",
    ).at(at);
  }
  const handles: number[] = [];
  for (let i = 0; i < expect.responseHandles; i++) handles.push(r.u32());
  if (!withSessions) return { rc, handles, parameters: r.bytes(r.remaining), auths: [] };
  const paramSize = r.u32();
  if (paramSize > r.remaining) {
    throw new MarshalError(`parameterSize ${paramSize} exceeds the ${r.remaining} bytes left`, "size").at(at);
  }
  const parameters = r.bytes(paramSize);
  const auths: AuthResponse[] = [];
  while (r.remaining > 0 && auths.length < expect.sessionCount) auths.push(decodeNamed(TPMS_AUTH_RESPONSE, r));
  if (auths.length !== expect.sessionCount || r.remaining !== 0) {
    throw new MarshalError(
      `expected ${expect.sessionCount} session response(s), got ${auths.length} and ${r.remaining} extra byte(s)`,
      "size",
    ).at("response authorization area");
  }
  return { rc, handles, parameters, auths };
}

// ---- typed commands ------------------------------------------------------------------------------

type Values = Record<string, unknown>;

/** The handles of a command, in wire order, taken from the named arguments. */
export function commandHandles(def: AnyCommand, args: Values): number[] {
  return def.handles.map(([name]) => {
    const h = args[name];
    if (typeof h !== "number") {
      throw new MarshalError(`handle ${name} is missing`, "value", "encode").at(commandName(def.code));
    }
    return h;
  });
}

/** Marshal a command's parameter area. */
export function encodeParameters(def: AnyCommand, args: Values): Uint8Array {
  return encode(def.params, args as never);
}

/** Simulator side: a parsed, typed command. */
export interface DecodedCommand {
  readonly def: AnyCommand;
  readonly frame: CommandFrame & { tag: number };
  /** Handles by name, then parameters by name. */
  readonly args: Values;
}

/**
 * Simulator side: parse a command against the declarations. A MarshalError's `fault` and
 * `fieldName` tell the caller which format error (and parameter number) to answer.
 */
export function decodeCommand(bytes: Uint8Array, table: ReadonlyMap<number, AnyCommand>): DecodedCommand {
  const frame = decodeCommandFrame(bytes, (code) => table.get(code)?.handles.length);
  const def = table.get(frame.code)!;
  const params = decode(def.params, frame.parameters) as Values;
  const args: Values = { ...params };
  def.handles.forEach(([name], i) => (args[name] = frame.handles[i]));
  return { def, frame, args };
}

/** Simulator side: marshal a successful response from named values. */
export function encodeResponse(def: AnyCommand, values: Values, auths: readonly AuthResponse[] = []): Uint8Array {
  const handles: number[] = [];
  if (def.responseHandle !== undefined) {
    const h = values[def.responseHandle];
    if (typeof h !== "number") {
      throw new MarshalError(`response handle missing`, "value", "encode").at(commandName(def.code));
    }
    handles.push(h);
  }
  return encodeResponseFrame({ rc: TPM_RC.SUCCESS, handles, parameters: encode(def.response, values as never), auths });
}

/** 1-based parameter number of a named parameter (for TPM_RC_* + RC_P + n), or 0 if unknown. */
export function parameterNumber(def: AnyCommand, name: string | undefined): number {
  return name === undefined ? 0 : def.paramNames.indexOf(name) + 1;
}

/**
 * Error classes with stable codes, and TPM_RC decoding (Part 2 §6.6).
 */
import { nameOf, TPM_RC } from "./constants.ts";

/** Base of every error this library raises; `code` is stable and meant for programs. */
export abstract class TpmLibraryError extends Error {
  abstract readonly code: string;
}

/** Why a decoder refused its input; maps onto the TPM's own format errors. */
export type MarshalFault = "insufficient" | "size" | "value" | "selector" | "tag";

/** Whether bytes were being read into values or values written into bytes. */
export type MarshalDirection = "decode" | "encode";

/**
 * Bytes that do not form the declared structure, or a value that cannot be marshalled.
 * The message names the direction and the path from the outermost structure to the failing field, e.g.
 * `Cannot decode TPM2B_PUBLIC > TPMT_PUBLIC.parameters > TPMS_RSA_PARMS.keyBits: need 2 bytes ...` or
 * `Cannot encode TPM2B_DIGEST: a object is not a Uint8Array`.
 */
export class MarshalError extends TpmLibraryError {
  readonly code = "ERR_TPM_MARSHAL";
  readonly reason: string;
  readonly fault: MarshalFault;
  readonly direction: MarshalDirection;
  /** Innermost named structure and field where decoding failed. */
  structure: string | undefined;
  fieldName: string | undefined;
  /** The fields the failure happened in, outermost first (a command's parameter, then inward). */
  readonly fieldPath: string[] = [];
  private readonly frames: string[] = [];
  private pending: string[] = [];

  constructor(reason: string, fault: MarshalFault, direction: MarshalDirection = "decode") {
    super(reason);
    this.name = "MarshalError";
    this.reason = reason;
    this.fault = fault;
    this.direction = direction;
  }

  /** Any error met while (un)marshalling becomes a MarshalError; a codec never leaks a TypeError. */
  static wrap(e: unknown, direction: MarshalDirection = "decode"): MarshalError {
    if (e instanceof MarshalError) return e;
    const m = new MarshalError(e instanceof Error ? e.message : String(e), "value", direction);
    if (e instanceof Error) m.cause = e;
    return m;
  }

  /** Record that the failure happened inside field `key` of the structure being decoded. */
  field(key: string): this {
    this.pending.unshift(key);
    this.fieldPath.unshift(key);
    this.fieldName ??= key;
    return this.refresh();
  }

  /** Record the structure (and optionally its field) the failure happened in. */
  at(structure: string, key?: string): this {
    if (key !== undefined) this.field(key);
    const path = this.pending.map((k) => (k.startsWith("[") ? k : `.${k}`)).join("");
    this.frames.unshift(structure + path);
    this.pending = [];
    this.structure ??= structure;
    return this.refresh();
  }

  get path(): string {
    return this.frames.join(" > ");
  }

  private refresh(): this {
    this.message = this.frames.length ? `Cannot ${this.direction} ${this.path}: ${this.reason}` : this.reason;
    return this;
  }
}

/** Where a format-1 response code points. */
export type RcSubject = "parameter" | "handle" | "session";

export interface DecodedRc {
  readonly rc: number;
  /** The code with its parameter/handle/session number removed, e.g. 0x08E for 0x98E. */
  readonly base: number;
  /** TPM_RC_* name, or a descriptive fallback for unknown codes. */
  readonly name: string;
  readonly subject?: RcSubject;
  /** 1-based parameter, handle or session number (0 = unspecified handle). */
  readonly index?: number;
  readonly warning: boolean;
  readonly vendor: boolean;
  readonly tpm12: boolean;
}

const RC_VER1 = 0x100;
const RC_FMT1 = 0x080;
const RC_WARN = 0x900;

/** Split a response code into its name and subject (Part 2 §6.6.2, Figure 26/27). */
export function decodeRc(rc: number): DecodedRc {
  const flags = { warning: false, vendor: false, tpm12: false };
  if (rc === TPM_RC.SUCCESS) return { rc, base: rc, name: "TPM_RC_SUCCESS", ...flags };
  if (rc & RC_FMT1) {
    const base = RC_FMT1 | (rc & 0x3f);
    const name = `TPM_RC_${nameOf(TPM_RC, base) ?? `0x${base.toString(16).padStart(3, "0")}`}`;
    if (rc & 0x040) return { rc, base, name, subject: "parameter", index: (rc >>> 8) & 0xf, ...flags };
    if (rc & 0x800) return { rc, base, name, subject: "session", index: (rc >>> 8) & 0x7, ...flags };
    return { rc, base, name, subject: "handle", index: (rc >>> 8) & 0x7, ...flags };
  }
  if (!(rc & RC_VER1)) return { rc, base: rc, name: `TPM 1.2 code 0x${rc.toString(16)}`, ...flags, tpm12: true };
  if (rc & 0x400) return { rc, base: rc, name: `vendor code 0x${rc.toString(16)}`, ...flags, vendor: true };
  const warning = (rc & 0x800) !== 0;
  const base = (warning ? RC_WARN : RC_VER1) | (rc & 0x7f);
  const known = nameOf(TPM_RC, base);
  const name = known ? `TPM_RC_${known}` : `TPM_RC 0x${rc.toString(16)}`;
  return { rc, base, name, ...flags, warning };
}

/** "TPM_RC_AUTH_FAIL (session 1)", "TPM_RC_VALUE (parameter 1)", "TPM_RC_INITIALIZE". */
export function describeRc(rc: number): string {
  const d = decodeRc(rc);
  const where = d.subject ? d.index === 0 ? ` (${d.subject} unspecified)` : ` (${d.subject} ${d.index})` : "";
  return `${d.name}${where}`;
}

/**
 * The TPM answered a command with a response code other than success. Only the response decoder
 * raises it: a check the client makes itself is a TpmProtocolError or a TpmUsageError.
 */
export class TpmResponseError extends TpmLibraryError {
  readonly code = "ERR_TPM_RC";
  readonly rc: number;
  readonly decoded: DecodedRc;
  /** The command that failed, as TPM2_<Name>. */
  readonly command: string;

  constructor(command: string, rc: number) {
    const d = decodeRc(rc);
    super(`${command} failed: ${describeRc(rc)}, rc 0x${rc.toString(16).padStart(3, "0")}${hintFor(d.base)}`);
    this.name = "TpmResponseError";
    this.rc = rc;
    this.decoded = d;
    this.command = command;
  }

  /** True when the code (ignoring its parameter/handle/session number) equals `base`. */
  is(base: number): boolean {
    return this.decoded.base === base;
  }
}

function hintFor(base: number): string {
  switch (base) {
    case TPM_RC.INITIALIZE:
      return " (the TPM needs TPM2_Startup)";
    case TPM_RC.FAILURE:
      return " (the TPM is in failure mode or was not initialised; for swtpm send CMD_INIT)";
    case TPM_RC.OBJECT_MEMORY:
      return " (out of transient object slots; flush unused handles or use a resource manager)";
    case TPM_RC.SESSION_MEMORY:
      return " (out of session slots; flush unused sessions)";
    case TPM_RC.LOCKOUT:
      return " (dictionary-attack lockout is active)";
    default:
      return "";
  }
}

/**
 * The TPM answered, but the answer is inconsistent: a Name that is not its public area's, PCRs that
 * were not asked for, a capability list of another kind. Retrying will not help unless the TPM changes.
 */
export class TpmProtocolError extends TpmLibraryError {
  readonly code: string = "ERR_TPM_PROTOCOL";
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "TpmProtocolError";
  }
}

/** PCRs kept changing while they were read or quoted: a transient state, worth retrying (HTTP 503). */
export class PcrsUnstableError extends TpmProtocolError {
  override readonly code = "ERR_TPM_PCR_UNSTABLE";
  constructor(message: string) {
    super(message);
    this.name = "PcrsUnstableError";
  }
}

/**
 * The caller asked for something that cannot work, found before or without asking the TPM: a scheme
 * that does not fit the key, a handle that is not persistent, an algorithm this library does not know.
 */
export class TpmUsageError extends TpmLibraryError {
  readonly code = "ERR_TPM_USAGE";
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "TpmUsageError";
  }
}

/** The connection to the TPM failed, or it sent something that is not a response. */
export class TransportError extends TpmLibraryError {
  readonly code: string = "ERR_TRANSPORT";
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "TransportError";
  }
}

/** The TPM did not answer in time. */
export class TransportTimeoutError extends TransportError {
  override readonly code = "ERR_TRANSPORT_TIMEOUT";
  constructor(message: string) {
    super(message);
    this.name = "TransportTimeoutError";
  }
}

/** A TPM URI / TCTI string that cannot be used. */
export class TpmUriError extends TpmLibraryError {
  readonly code = "ERR_TPM_URI";
  constructor(message: string) {
    super(message);
    this.name = "TpmUriError";
  }
}

/**
 * The TPM side of authorization (Part 1 §19, §21; ms-tpm-20-ref SessionProcess.c): check each
 * session of a command, decrypt its first parameter, and build the response's session area.
 */
import { randomBytes } from "node:crypto";
import type { AnyCommand } from "../src/tpm/command.ts";
import { handleType, TPM_ALG, TPM_HT, TPM_RC, TPM_RS_PW } from "../src/tpm/constants.ts";
import { concat } from "../src/tpm/crypto.ts";
import type { AuthCommand, AuthResponse } from "../src/tpm/frame.ts";
import { sameSecret } from "../src/tpm/bytes.ts";
import {
  cpHash,
  parameterCipher,
  rpHash,
  sessionHmac,
  sessionHmacValid,
  trimAuth,
} from "../src/tpm/session_digests.ts";
import { TPMA_SESSION } from "../src/tpm/structures.ts";
import { rcSession, TpmRc } from "./rc.ts";
import type { SimSession } from "./state.ts";

/** What authorization needs to know about the entity behind a command handle. */
export interface Entity {
  readonly handle: number;
  readonly name: Uint8Array;
  readonly authValue: Uint8Array;
  readonly authPolicy: Uint8Array;
  /** Whether a wrong authValue counts against dictionary-attack protection (AUTH_FAIL vs BAD_AUTH). */
  readonly daProtected: boolean;
  /** For objects: whether USER role may use the authValue, and whether ADMIN role needs a policy. */
  readonly userWithAuth: boolean;
  readonly adminWithPolicy: boolean;
}

/** A session of this command, checked, with what the response needs. */
export interface ActiveSession {
  readonly auth: AuthCommand;
  /** Undefined for the password session. */
  readonly session: SimSession | undefined;
  /** The entity this session authorizes, if it authorizes one. */
  readonly entity: Entity | undefined;
  /** The HMAC key of the command. */
  readonly hmacKey: Uint8Array;
  /**
   * Whether hmacKey includes the entity's authValue (ms-tpm-20-ref includeAuth). The response
   * takes the authValue as it is after the command: see respondSessions.
   */
  readonly includeAuth: boolean;
}

const CONTINUE = TPMA_SESSION.of("continueSession");

export interface CheckInput {
  readonly def: AnyCommand;
  readonly auths: readonly AuthCommand[];
  /** Entities of the handles with an authorization role, in order. */
  readonly entities: readonly Entity[];
  readonly names: readonly Uint8Array[];
  /** The parameter area as received (still encrypted). */
  readonly parameters: Uint8Array;
  readonly sessions: ReadonlyMap<number, SimSession>;
  /** Called on a failed authValue check of a DA-protected entity. */
  readonly onAuthFailure: (entity: Entity) => void;
}

/** Attributes a password session may not carry (ms-tpm-20-ref RetrieveSessionData). */
const NOT_FOR_PASSWORD = ["decrypt", "encrypt", "audit", "auditExclusive", "auditReset"] as const;

/**
 * The first pass over the sessions, as ms-tpm-20-ref RetrieveSessionData: each session in order is
 * found, and checked on its own (password attributes and nonce, one decrypt and one encrypt session,
 * a cipher for either), so the number in an error is the first session that is wrong by itself.
 */
function retrieveSessions(input: CheckInput) {
  const { def, auths } = input;
  let decrypting = -1;
  let encrypting = -1;
  const found = auths.map((a, i) => {
    const n = i + 1;
    const has = (bit: Parameters<typeof TPMA_SESSION.has>[1]) => TPMA_SESSION.has(a.sessionAttributes, bit);
    if (a.sessionHandle === TPM_RS_PW) {
      if (NOT_FOR_PASSWORD.some(has)) throw rcSession(TPM_RC.ATTRIBUTES, n);
      if (a.nonce.length !== 0) throw rcSession(TPM_RC.NONCE, n);
      return undefined;
    }
    const type = handleType(a.sessionHandle);
    const s = input.sessions.get(a.sessionHandle);
    if (!s || (type !== TPM_HT.HMAC_SESSION && type !== TPM_HT.POLICY_SESSION)) {
      throw new TpmRc(TPM_RC.REFERENCE_S0 + i); // the session is not loaded
    }
    if (auths.slice(0, i).some((b) => b.sessionHandle === a.sessionHandle)) throw rcSession(TPM_RC.HANDLE, n);
    if (has("decrypt")) {
      if (!def.canDecrypt || decrypting >= 0) throw rcSession(TPM_RC.ATTRIBUTES, n);
      if (s.symmetric.algorithm === TPM_ALG.NULL) throw rcSession(TPM_RC.SYMMETRIC, n);
      decrypting = i;
    }
    if (has("encrypt")) {
      if (!def.canEncrypt || encrypting >= 0) throw rcSession(TPM_RC.ATTRIBUTES, n);
      if (s.symmetric.algorithm === TPM_ALG.NULL) throw rcSession(TPM_RC.SYMMETRIC, n);
      encrypting = i;
    }
    if (has("audit") && s.kind === "policy") throw rcSession(TPM_RC.ATTRIBUTES, n);
    return s;
  });
  return { found, decrypting, encrypting };
}

/** Check every session; returns them, plus the parameter area with the first parameter decrypted. */
export function checkSessions(input: CheckInput): { active: ActiveSession[]; parameters: Uint8Array } {
  const { def, auths } = input;
  const { found, decrypting, encrypting } = retrieveSessions(input);
  // The nonces of another decrypt or encrypt session go into session 1's HMAC when session 1
  // authorizes (Part 1 §19.6.5; ComputeCommandHMAC).
  const extra: Uint8Array[] = [];
  if (decrypting > 0) extra.push(found[decrypting]!.nonceTPM);
  if (encrypting > 0 && encrypting !== decrypting) extra.push(found[encrypting]!.nonceTPM);

  const active = auths.map((a, i): ActiveSession => {
    const s = found[i];
    const entity = input.entities[i];
    const n = i + 1;
    const attrs = a.sessionAttributes;
    const has = (bit: Parameters<typeof TPMA_SESSION.has>[1]) => TPMA_SESSION.has(attrs, bit);
    if (!s) {
      // A password session authorizes a handle, or it has no business here.
      if (!entity) throw rcSession(TPM_RC.HANDLE, n);
      checkAuthValueRole(def, entity, i);
      if (!sameSecret(trimAuth(a.hmac), trimAuth(entity.authValue))) fail(input, entity, n);
      return { auth: a, session: undefined, entity, hmacKey: new Uint8Array(0), includeAuth: false };
    }
    if (s.kind === "trial") throw rcSession(TPM_RC.ATTRIBUTES, n);
    if (!entity && !has("decrypt") && !has("encrypt") && !has("audit")) throw rcSession(TPM_RC.ATTRIBUTES, n);
    // No size rule for nonceCaller beyond TPM2B_NONCE's: the reference and libtpms take any, and
    // libtss2-esys sends an empty one with a PolicyPassword session.

    let includeAuth = false;
    if (entity && s.kind === "policy") {
      checkPolicy(def, entity, s, n);
      if (s.policy.passwordNeeded) {
        if (!sameSecret(trimAuth(a.hmac), trimAuth(entity.authValue))) fail(input, entity, n);
        return { auth: a, session: s, entity, hmacKey: EMPTY_KEY, includeAuth: false };
      }
      includeAuth = s.policy.authValueNeeded;
    } else if (entity) {
      checkAuthValueRole(def, entity, i);
      // A session bound to this very entity, with the authValue it had then, already has that
      // authValue in the session key (IsSessionBindEntity).
      const bound = s.boundEntity !== null && sameSecret(s.boundEntity, boundEntity(entity.name, entity.authValue));
      includeAuth = !bound;
    }
    const key = includeAuth ? concat(s.sessionKey, trimAuth(entity!.authValue)) : s.sessionKey;
    const cp = cpHash(s.authHash, def.code, input.names, input.parameters);
    const expected = sessionHmac(s.authHash, key, cp, a.nonce, s.nonceTPM, attrs, i === 0 && entity ? extra : []);
    if (!sessionHmacValid(a.hmac, expected, key)) {
      if (entity) fail(input, entity, n);
      throw rcSession(TPM_RC.BAD_AUTH, n);
    }
    return { auth: a, session: s, entity, hmacKey: key, includeAuth };
  });

  let parameters = input.parameters;
  if (decrypting >= 0) {
    const d = active[decrypting]!;
    parameters = transformFirst(
      parameters,
      (data) => cipherOf(d, d.auth.nonce, d.session!.nonceTPM).decrypt(data),
      decrypting + 1,
    );
  }
  return { active, parameters };
}

const EMPTY_KEY = new Uint8Array(0);

/** Size of the TPMU_NAME buffer the bound-entity value fills (a TPMT_HA of the largest digest). */
const BOUND_ENTITY_SIZE = 2 + 64;

/**
 * What a bound session remembers of its bind entity (ms-tpm-20-ref SessionComputeBoundEntity): the
 * Name, zero-padded to the name buffer, with the authValue (trailing zeros removed) XORed into its
 * end. Changing the entity's authValue ends the binding, so a new authValue is not skipped in HMACs.
 */
export function boundEntity(name: Uint8Array, authValue: Uint8Array): Uint8Array {
  const out = new Uint8Array(BOUND_ENTITY_SIZE);
  out.set(name.subarray(0, BOUND_ENTITY_SIZE));
  const auth = trimAuth(authValue);
  const at = BOUND_ENTITY_SIZE - auth.length;
  auth.forEach((b, i) => (out[at + i]! ^= b));
  return out;
}

function fail(input: CheckInput, entity: Entity, n: number): never {
  if (entity.daProtected) {
    input.onAuthFailure(entity);
    throw rcSession(TPM_RC.AUTH_FAIL, n);
  }
  throw rcSession(TPM_RC.BAD_AUTH, n);
}

/** Roles that let an authValue (password or HMAC) authorize (Part 1 §19.7.4). */
function checkAuthValueRole(def: AnyCommand, entity: Entity, i: number): void {
  const role = def.handles.filter(([, r]) => r !== "none")[i]?.[1];
  if (role === "user" && !entity.userWithAuth) throw new TpmRc(TPM_RC.AUTH_UNAVAILABLE);
  if (role === "admin" && entity.adminWithPolicy) throw new TpmRc(TPM_RC.AUTH_UNAVAILABLE);
  if (role === "dup") throw new TpmRc(TPM_RC.AUTH_TYPE);
}

/** A policy session must have reached the entity's authPolicy (and the command it was limited to). */
function checkPolicy(def: AnyCommand, entity: Entity, s: SimSession, n: number): void {
  if (s.policy.commandCode !== null && s.policy.commandCode !== def.code) throw rcSession(TPM_RC.POLICY_CC, n);
  if (entity.authPolicy.length === 0 || !sameSecret(s.policy.digest, entity.authPolicy)) {
    throw rcSession(TPM_RC.POLICY_FAIL, n);
  }
}

/**
 * The parameter cipher (AES-CFB or XOR) of a decrypt or encrypt session: its key includes the
 * authorized entity's authValue whenever there is one (SessionProcess.c).
 */
function cipherOf(a: ActiveSession, newer: Uint8Array, older: Uint8Array) {
  const s = a.session!;
  const keyValue = a.entity ? concat(s.sessionKey, trimAuth(a.entity.authValue)) : s.sessionKey;
  // StartAuthSession admits only ciphers parameterCipher implements.
  return parameterCipher({ symmetric: s.symmetric, authHash: s.authHash, keyValue }, newer, older)!;
}

function transformFirst(area: Uint8Array, f: (d: Uint8Array) => Uint8Array, n: number): Uint8Array {
  if (area.length < 2) throw rcSession(TPM_RC.SIZE, n);
  const size = (area[0]! << 8) | area[1]!;
  if (2 + size > area.length) throw rcSession(TPM_RC.SIZE, n);
  const out = area.slice();
  out.set(f(area.subarray(2, 2 + size)), 2);
  return out;
}

/**
 * The response session area: fresh nonces, the first response parameter encrypted, and HMACs over
 * rpHash. Returns the (possibly encrypted) parameters and the entries.
 *
 * The encryption key and the HMAC key take the authorized entity's authValue as it is after the
 * command (`authValueOf`; ms-tpm-20-ref BuildResponseSession, ComputeResponseHMAC): the new one after
 * TPM2_HierarchyChangeAuth, the empty lockoutAuth after TPM2_Clear. ESYS checks it so.
 */
export function respondSessions(
  def: AnyCommand,
  sessions: readonly ActiveSession[],
  parameters: Uint8Array,
  authValueOf: (entity: Entity) => Uint8Array = (e) => e.authValue,
): { parameters: Uint8Array; auths: AuthResponse[] } {
  const active = sessions.map((a): ActiveSession => {
    if (!a.entity || !a.session) return a;
    const entity = { ...a.entity, authValue: authValueOf(a.entity) };
    const hmacKey = a.includeAuth ? concat(a.session.sessionKey, trimAuth(entity.authValue)) : a.hmacKey;
    return { ...a, entity, hmacKey };
  });
  for (const a of active) if (a.session) a.session.nonceTPM = new Uint8Array(randomBytes(a.session.nonceTPM.length));
  const encrypting = active.findIndex((a) => TPMA_SESSION.has(a.auth.sessionAttributes, "encrypt"));
  let out = parameters;
  if (encrypting >= 0) {
    const e = active[encrypting]!;
    out = transformFirst(out, (data) => cipherOf(e, e.session!.nonceTPM, e.auth.nonce).encrypt(data), encrypting + 1);
  }
  const auths = active.map((a): AuthResponse => {
    const attrs = a.auth.sessionAttributes;
    if (!a.session) return { nonce: new Uint8Array(0), sessionAttributes: CONTINUE, hmac: new Uint8Array(0) };
    const s = a.session;
    if (s.kind === "policy" && s.policy.passwordNeeded && a.entity) {
      return { nonce: s.nonceTPM, sessionAttributes: attrs, hmac: new Uint8Array(0) };
    }
    if (a.hmacKey.length === 0 && a.auth.hmac.length === 0) {
      return { nonce: s.nonceTPM, sessionAttributes: attrs, hmac: new Uint8Array(0) };
    }
    const rp = rpHash(s.authHash, def.code, out);
    const mac = sessionHmac(s.authHash, a.hmacKey, rp, s.nonceTPM, a.auth.nonce, attrs);
    return { nonce: s.nonceTPM, sessionAttributes: attrs, hmac: mac };
  });
  return { parameters: out, auths };
}

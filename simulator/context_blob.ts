/**
 * The opaque contextBlob of TPMS_CONTEXT (Part 1 §30, Part 2 §14.5): a saved object or session,
 * encrypted and integrity-protected under a key only this TPM holds (persistent.contextKey). The
 * layout follows ms-tpm-20-ref ContextSave.c / ContextLoad.c (encrypt, then MAC):
 *
 *   contextBlob = TPM2B_DIGEST(integrity) ‖ enc
 *   enc         = AES-256-CFB(K, IV, u64 sequence ‖ payload)
 *   K ‖ IV      = KDFa(SHA256, contextKey, "CONTEXT", u64 sequence, u32 savedHandle, 256 + 128)
 *   integrity   = HMAC-SHA256(KDFa(SHA256, contextKey ‖ hierarchy proof, "INTEGRITY", "", "", 256),
 *                   u32 resetCount ‖ [u32 restartCount] ‖ u64 sequence ‖ u32 savedHandle ‖ u32 hierarchy ‖ enc)
 *
 * resetCount makes every context unloadable after a TPM Reset; restartCount (only for savedHandle
 * 0x80000002, stClear objects) after a TPM Restart too, as ComputeContextIntegrity does.
 */
import type { JsonWebKey } from "node:crypto";
import { hmac } from "@noble/hashes/hmac";
import { sha256 } from "@noble/hashes/sha2";
import { TPM_ALG, TPM_RC, TPM_RH, TPM_SE } from "../src/tpm/constants.ts";
import { concat } from "../src/tpm/crypto.ts";
import { aesCfbDecrypt, aesCfbEncrypt, kdfa } from "../src/tpm/kdf.ts";
import { decode, encode, list, sizedBytes, struct, TPMI_YES_NO, u16, u32, u8 } from "../src/tpm/marshal.ts";
import {
  TPM2B_AUTH,
  TPM2B_DIGEST,
  TPM2B_NAME,
  TPM2B_NONCE,
  TPM2B_PUBLIC,
  type TPMS_CONTEXT,
  TPMT_SYM_DEF,
} from "../src/tpm/structures.ts";
import { makeObject, type SimObject } from "./object.ts";
import { rcParam } from "./rc.ts";
import type { Persistent, SimSession } from "./state.ts";
import { sameSecret, u32be, u64be } from "../src/tpm/bytes.ts";
import { fromBase64url, toBase64url } from "../src/util/encoding.ts";

/** savedHandle of an object context, and of one whose object has stClear (ContextSave.c). */
export const SAVED_OBJECT = 0x80000000;
export const SAVED_STCLEAR_OBJECT = 0x80000002;

/** Policy-session state that PolicyState (state.ts) has no field for yet; see handlers/policy.ts. */
export interface PolicyExtras {
  /** cpHashA given to PolicySecret; empty when none. */
  cpHash: Uint8Array;
  /** pcrUpdateCounter when PolicyPCR ran, or null. */
  pcrCounter: number | null;
}

// ---- payload codecs -------------------------------------------------------------------------------

/** JWK members that are base64url numbers; the rest (kty, crv) are text. */
const JWK_BINARY = new Set(["n", "e", "d", "p", "q", "dp", "dq", "qi", "x", "y", "k"]);
const JWK_MEMBER = struct("SimJwkMember", { name: sizedBytes("name", 16, 8), value: sizedBytes("value", 1024) });
const JWK = list("SimJwk", JWK_MEMBER, 16);

const OBJECT = struct("SimObjectContext", {
  public: TPM2B_PUBLIC,
  qualifiedName: TPM2B_NAME,
  hierarchy: u32,
  authValue: TPM2B_AUTH,
  seedValue: TPM2B_DIGEST,
  hasKey: TPMI_YES_NO,
  key: JWK,
  hasSecret: TPMI_YES_NO,
  secret: sizedBytes("secret", 1024),
});

const SESSION = struct("SimSessionContext", {
  handle: u32,
  sessionType: u8,
  authHash: u16,
  symmetric: TPMT_SYM_DEF,
  sessionKey: TPM2B_DIGEST,
  bound: TPMI_YES_NO,
  boundEntity: TPM2B_NAME,
  nonceTPM: TPM2B_NONCE,
  policyDigest: TPM2B_DIGEST,
  /** 0 = not limited to a command (no command has code 0). */
  commandCode: u32,
  authValueNeeded: TPMI_YES_NO,
  passwordNeeded: TPMI_YES_NO,
  cpHash: TPM2B_DIGEST,
  hasPcrCounter: TPMI_YES_NO,
  pcrCounter: u32,
});

const text = new TextEncoder();
const untext = new TextDecoder();
const EMPTY = new Uint8Array(0);

function jwkToMembers(jwk: JsonWebKey): { name: Uint8Array; value: Uint8Array }[] {
  return Object.entries(jwk)
    .filter((e): e is [string, string] => typeof e[1] === "string")
    .map(([k, v]) => ({
      name: text.encode(k),
      value: JWK_BINARY.has(k) ? fromBase64url(v) : text.encode(v),
    }));
}

function membersToJwk(members: readonly { name: Uint8Array; value: Uint8Array }[]): JsonWebKey {
  const jwk: Record<string, string> = {};
  for (const { name, value } of members) {
    const k = untext.decode(name);
    jwk[k] = JWK_BINARY.has(k) ? toBase64url(value) : untext.decode(value);
  }
  return jwk as JsonWebKey;
}

export function encodeObject(o: SimObject): Uint8Array {
  return encode(OBJECT, {
    public: o.public,
    qualifiedName: o.qualifiedName,
    hierarchy: o.hierarchy,
    authValue: o.authValue,
    seedValue: o.seedValue,
    hasKey: o.privateJwk !== null,
    key: o.privateJwk ? jwkToMembers(o.privateJwk) : [],
    hasSecret: o.secret !== null,
    secret: o.secret ?? EMPTY,
  });
}

export function decodeObject(bytes: Uint8Array): SimObject {
  const v = decode(OBJECT, bytes);
  const o = makeObject({
    public: v.public,
    hierarchy: v.hierarchy,
    authValue: v.authValue,
    seedValue: v.seedValue,
    privateJwk: v.hasKey ? membersToJwk(v.key) : null,
    secret: v.hasSecret ? v.secret : null,
  }, EMPTY);
  // The qualified name depends on the parent chain, which the context cannot recompute: keep it.
  return { ...o, qualifiedName: v.qualifiedName };
}

const KIND_TO_SE = { hmac: TPM_SE.HMAC, policy: TPM_SE.POLICY, trial: TPM_SE.TRIAL } as const;

export function encodeSession(s: SimSession, extras: PolicyExtras): Uint8Array {
  return encode(SESSION, {
    handle: s.handle,
    sessionType: KIND_TO_SE[s.kind],
    authHash: s.authHash,
    symmetric: s.symmetric,
    sessionKey: s.sessionKey,
    bound: s.boundEntity !== null,
    boundEntity: s.boundEntity ?? EMPTY,
    nonceTPM: s.nonceTPM,
    policyDigest: s.policy.digest,
    commandCode: s.policy.commandCode ?? 0,
    authValueNeeded: s.policy.authValueNeeded,
    passwordNeeded: s.policy.passwordNeeded,
    cpHash: extras.cpHash,
    hasPcrCounter: extras.pcrCounter !== null,
    pcrCounter: extras.pcrCounter ?? 0,
  });
}

export function decodeSession(bytes: Uint8Array): { session: SimSession; extras: PolicyExtras } {
  const v = decode(SESSION, bytes);
  const kind = v.sessionType === TPM_SE.HMAC ? "hmac" : v.sessionType === TPM_SE.POLICY ? "policy" : "trial";
  return {
    session: {
      handle: v.handle,
      kind,
      authHash: v.authHash,
      symmetric: v.symmetric,
      sessionKey: v.sessionKey,
      boundEntity: v.bound ? v.boundEntity : null,
      nonceTPM: v.nonceTPM,
      policy: {
        digest: v.policyDigest,
        commandCode: v.commandCode === 0 ? null : v.commandCode,
        authValueNeeded: v.authValueNeeded,
        passwordNeeded: v.passwordNeeded,
      },
    },
    extras: { cpHash: v.cpHash, pcrCounter: v.hasPcrCounter ? v.pcrCounter : null },
  };
}

// ---- protection -----------------------------------------------------------------------------------

const KEY_BITS = 256;

type Header = Pick<TPMS_CONTEXT, "sequence" | "savedHandle" | "hierarchy">;

function cipherKey(p: Persistent, h: Header): { key: Uint8Array; iv: Uint8Array } {
  const bytes = kdfa(TPM_ALG.SHA256, p.contextKey, "CONTEXT", u64be(h.sequence), u32be(h.savedHandle), KEY_BITS + 128);
  return { key: bytes.subarray(0, KEY_BITS / 8), iv: bytes.subarray(KEY_BITS / 8) };
}

/**
 * The proof of the context's hierarchy. TPM2_Clear replaces the owner and endorsement proofs, and
 * with them every saved context of those hierarchies (ms-tpm-20-ref ComputeContextIntegrity keys the
 * HMAC with HierarchyGetProof), even when resetCount was already zero. NULL-hierarchy objects and
 * sessions are bound to resetCount instead.
 */
function hierarchyProof(p: Persistent, hierarchy: number): Uint8Array {
  if (hierarchy === TPM_RH.OWNER) return p.owner.proof;
  if (hierarchy === TPM_RH.ENDORSEMENT) return p.endorsement.proof;
  if (hierarchy === TPM_RH.PLATFORM) return p.platform.proof;
  return EMPTY;
}

function integrity(p: Persistent, h: Header, enc: Uint8Array): Uint8Array {
  const secret = concat(p.contextKey, hierarchyProof(p, h.hierarchy));
  const key = kdfa(TPM_ALG.SHA256, secret, "INTEGRITY", EMPTY, EMPTY, 256);
  const restart = h.savedHandle === SAVED_STCLEAR_OBJECT ? u32be(p.restartCount) : EMPTY;
  return hmac(
    sha256,
    key,
    concat(u32be(p.resetCount), restart, u64be(h.sequence), u32be(h.savedHandle), u32be(h.hierarchy), enc),
  );
}

/** The contextBlob for `payload` under the header it will travel with. */
export function sealContext(p: Persistent, h: Header, payload: Uint8Array): Uint8Array {
  const { key, iv } = cipherKey(p, h);
  const enc = aesCfbEncrypt(key, iv, concat(u64be(h.sequence), payload));
  return concat(encode(TPM2B_DIGEST, integrity(p, h, enc)), enc);
}

/** The payload of a context, or TPM_RC_INTEGRITY (parameter 1) when it was not made by this TPM as is. */
export function openContext(p: Persistent, context: TPMS_CONTEXT): Uint8Array {
  const blob = context.contextBlob;
  const fail = () => rcParam(TPM_RC.INTEGRITY, 1);
  if (blob.length < 2) throw fail();
  const size = (blob[0]! << 8) | blob[1]!;
  if (size !== 32 || blob.length < 2 + size + 8) throw fail();
  const mac = blob.subarray(2, 2 + size);
  const enc = blob.subarray(2 + size);
  const expected = integrity(p, context, enc);
  if (!sameSecret(mac, expected)) throw fail();
  const { key, iv } = cipherKey(p, context);
  const plain = aesCfbDecrypt(key, iv, enc);
  // The fingerprint: a blob that authenticates but carries another sequence was not made by us.
  if (new DataView(plain.buffer, plain.byteOffset).getBigUint64(0) !== context.sequence) throw fail();
  return plain.subarray(8);
}

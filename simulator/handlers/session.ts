/**
 * TPM2_StartAuthSession (Part 3 §11.1; Part 1 §19.6; ms-tpm-20-ref StartAuthSession.c, SessionCreate):
 * an HMAC, policy or trial session, optionally salted with a secret encrypted to a loaded key and
 * bound to an entity's authValue.
 */
import type { CommandArgs, ResponseArgs } from "../../src/tpm/command.ts";
import { StartAuthSession } from "../../src/tpm/commands.ts";
import {
  DIGEST_SIZE,
  HANDLE_RANGE,
  handleType,
  TPM_ALG,
  TPM_HT,
  TPM_RC,
  TPM_RH,
  TPM_SE,
} from "../../src/tpm/constants.ts";
import { secretDecrypt } from "../../src/tpm/secret.ts";
import { deriveSessionKey } from "../../src/tpm/session_digests.ts";
import { symXorHash, TPMA_OBJECT, type TPMT_SYM_DEF } from "../../src/tpm/structures.ts";
import { boundEntity } from "../auth.ts";
import { privateKeyOf } from "../object.ts";
import { rc, rcHandle, rcParam } from "../rc.ts";
import type { SimTpm } from "../sim_tpm.ts";
import type { SimSession } from "../state.ts";
import { savedSessions } from "./context.ts";
import { handle } from "./index.ts";

const EMPTY = new Uint8Array(0);
/** Session hashes this TPM offers (the PCR banks' hashes plus SHA-512, as swtpm). */
const SESSION_HASHES: ReadonlySet<number> = new Set([TPM_ALG.SHA1, TPM_ALG.SHA256, TPM_ALG.SHA384, TPM_ALG.SHA512]);

function sessionKind(type: number): SimSession["kind"] {
  if (type === TPM_SE.HMAC) return "hmac";
  if (type === TPM_SE.POLICY) return "policy";
  if (type === TPM_SE.TRIAL) return "trial";
  throw rcParam(TPM_RC.VALUE, 3);
}

/** NULL, XOR with a hash this TPM has, or AES-128/192/256 in CFB mode: the parameter encryption auth.ts implements. */
function checkSymmetric(s: TPMT_SYM_DEF): void {
  if (s.algorithm === TPM_ALG.NULL) return;
  if (s.algorithm === TPM_ALG.XOR) {
    if (!SESSION_HASHES.has(symXorHash(s))) throw rcParam(TPM_RC.HASH, 4);
    return;
  }
  if (s.algorithm !== TPM_ALG.AES) throw rcParam(TPM_RC.SYMMETRIC, 4);
  if (s.keyBits !== 128 && s.keyBits !== 192 && s.keyBits !== 256) throw rcParam(TPM_RC.VALUE, 4);
  if (s.mode !== TPM_ALG.CFB) throw rcParam(TPM_RC.MODE, 4);
}

/** The salt, recovered with tpmKey's private key; the error order is StartAuthSession.c's. */
function recoverSalt(tpm: SimTpm, tpmKey: number, encryptedSalt: Uint8Array): Uint8Array {
  if (tpmKey === TPM_RH.NULL) {
    if (encryptedSalt.length !== 0) throw rcParam(TPM_RC.VALUE, 2);
    return EMPTY;
  }
  const t = handleType(tpmKey);
  if (t !== TPM_HT.TRANSIENT && t !== TPM_HT.PERSISTENT) throw rcHandle(TPM_RC.VALUE, 1);
  const key = tpm.object(tpmKey, 1);
  if (key.public.type !== TPM_ALG.RSA && key.public.type !== TPM_ALG.ECC) throw rcHandle(TPM_RC.KEY, 1);
  if (encryptedSalt.length === 0) throw rcParam(TPM_RC.VALUE, 2);
  // A public-only object (LoadExternal without a private part) cannot decrypt.
  if (!key.privateJwk) throw rcHandle(TPM_RC.HANDLE, 1);
  if (!TPMA_OBJECT.has(key.public.objectAttributes, "decrypt")) throw rcHandle(TPM_RC.ATTRIBUTES, 1);
  try {
    return secretDecrypt(privateKeyOf(key), key.public, "SECRET", encryptedSalt);
  } catch {
    throw rcParam(TPM_RC.VALUE, 2);
  }
}

/**
 * The session handle. Like the reference (and swtpm), HMAC and policy sessions share one slot
 * index, and a saved session keeps its slot: with 0x03000000 saved, the next HMAC session is
 * 0x02000001 (tests/testdata/tpm-vectors/flow-trace/093-096).
 */
function allocateHandle(tpm: SimTpm, kind: SimSession["kind"]): number {
  const loaded = tpm.volatile.sessions;
  const saved = savedSessions(tpm);
  if (loaded.size >= tpm.sessionSlots) throw rc(TPM_RC.SESSION_MEMORY);
  // Saved sessions count against TPM_PT_ACTIVE_SESSIONS_MAX, which capability.ts reports as sessionSlots.
  if (loaded.size + saved.size >= tpm.sessionSlots) throw rc(TPM_RC.SESSION_HANDLES);
  const taken = (i: number) =>
    [HANDLE_RANGE.HMAC_SESSION_FIRST + i, HANDLE_RANGE.POLICY_SESSION_FIRST + i].some((h) =>
      loaded.has(h) || saved.has(h)
    );
  let i = 0;
  while (taken(i)) i++;
  return (kind === "hmac" ? HANDLE_RANGE.HMAC_SESSION_FIRST : HANDLE_RANGE.POLICY_SESSION_FIRST) + i;
}

function startAuthSession(
  tpm: SimTpm,
  a: CommandArgs<typeof StartAuthSession>,
): ResponseArgs<typeof StartAuthSession> {
  // Handle types first (they unmarshal first), then parameters in order, then the checks of
  // StartAuthSession.c: nonce size, tpmKey and salt, bind.
  const bindType = handleType(a.bind);
  if (bindType === TPM_HT.HMAC_SESSION || bindType === TPM_HT.POLICY_SESSION) throw rcHandle(TPM_RC.VALUE, 2);
  const kind = sessionKind(a.sessionType);
  checkSymmetric(a.symmetric);
  if (!SESSION_HASHES.has(a.authHash)) throw rcParam(TPM_RC.HASH, 5);
  const digestSize = DIGEST_SIZE[a.authHash]!;
  if (a.nonceCaller.length < 16 || a.nonceCaller.length > digestSize) throw rcParam(TPM_RC.SIZE, 1);
  const salt = recoverSalt(tpm, a.tpmKey, a.encryptedSalt);
  const bind = a.bind === TPM_RH.NULL ? undefined : tpm.entity(a.bind, 2);

  const sessionHandle = allocateHandle(tpm, kind);
  const nonceTPM = tpm.random(digestSize);
  // Empty only when neither bound nor salted: a bind entity with an empty authValue still gives a
  // KDFa with an empty key (SessionCreate; ESYS computes the same).
  const sessionKey = deriveSessionKey(a.authHash, bind?.authValue, salt, nonceTPM, a.nonceCaller);
  tpm.volatile.sessions.set(sessionHandle, {
    handle: sessionHandle,
    kind,
    authHash: a.authHash,
    symmetric: a.symmetric,
    sessionKey,
    // Only HMAC sessions are bound (SessionCreate); a policy session includes no authValue by binding.
    boundEntity: bind && kind === "hmac" ? boundEntity(bind.name, bind.authValue) : null,
    nonceTPM,
    policy: { digest: new Uint8Array(digestSize), commandCode: null, authValueNeeded: false, passwordNeeded: false },
  });
  return { sessionHandle, nonceTPM: nonceTPM.slice() };
}

export const session = [handle(StartAuthSession, startAuthSession)];

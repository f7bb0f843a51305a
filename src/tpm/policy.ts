/**
 * Policy commands on a policy session, and the policy digests they produce (Part 3 §23), so a
 * caller can both satisfy a policy on the TPM and compute the digest it must equal in software.
 */
import type { Tpm } from "./client.ts";
import {
  PolicyAuthValue,
  PolicyCommandCode,
  PolicyGetDigest,
  PolicyOR,
  PolicyPassword,
  PolicySecret,
} from "./commands.ts";
import { DIGEST_SIZE, TPM_CC } from "./constants.ts";
import { hash } from "./crypto.ts";
import type { Session } from "./sessions.ts";
import type { AuthSession } from "./sessions.ts";
import { u32be } from "./bytes.ts";

/** The digest every policy session starts from: all zeros. */
export function emptyPolicy(alg: number): Uint8Array {
  return new Uint8Array(DIGEST_SIZE[alg]!);
}

/** PolicySecret's update: d = H(H(d ‖ CC_PolicySecret ‖ authName) ‖ policyRef) (Part 3 §23.4). */
export function policySecretDigest(
  alg: number,
  digest: Uint8Array,
  authName: Uint8Array,
  policyRef = new Uint8Array(),
) {
  return hash(alg, hash(alg, digest, u32be(TPM_CC.PolicySecret), authName), policyRef);
}

/** PolicyOR's update: d = H(0…0 ‖ CC_PolicyOR ‖ digests…) (Part 3 §23.6). */
export function policyOrDigest(alg: number, branches: readonly Uint8Array[]): Uint8Array {
  return hash(alg, emptyPolicy(alg), u32be(TPM_CC.PolicyOR), ...branches);
}

/** PolicyCommandCode's update: d = H(d ‖ CC_PolicyCommandCode ‖ code). */
export function policyCommandCodeDigest(alg: number, digest: Uint8Array, code: number): Uint8Array {
  return hash(alg, digest, u32be(TPM_CC.PolicyCommandCode), u32be(code));
}

/** PolicyAuthValue's / PolicyPassword's update (both extend with CC_PolicyAuthValue). */
export function policyAuthValueDigest(alg: number, digest: Uint8Array): Uint8Array {
  return hash(alg, digest, u32be(TPM_CC.PolicyAuthValue));
}

export interface PolicySecretOptions {
  /** How the secret's owner is authorized (default: empty password). */
  auth?: Session;
  policyRef?: Uint8Array;
  /** Seconds; 0 = no expiry. Negative asks for a ticket. */
  expiration?: number;
}

/** TPM2_PolicySecret(authHandle) on `session`, with empty nonceTPM and cpHash as Keylime uses it. */
export async function policySecret(
  tpm: Tpm,
  session: AuthSession,
  authHandle: number,
  options: PolicySecretOptions = {},
): Promise<void> {
  await tpm.execute(
    PolicySecret,
    {
      authHandle,
      policySession: session.handle,
      nonceTPM: new Uint8Array(),
      cpHashA: new Uint8Array(),
      policyRef: options.policyRef ?? new Uint8Array(),
      expiration: options.expiration ?? 0,
    },
    options.auth ? { sessions: [options.auth] } : {},
  );
}

export async function policyOR(tpm: Tpm, session: AuthSession, branches: readonly Uint8Array[]): Promise<void> {
  await tpm.execute(PolicyOR, { policySession: session.handle, pHashList: [...branches] });
}

export async function policyCommandCode(tpm: Tpm, session: AuthSession, code: number): Promise<void> {
  await tpm.execute(PolicyCommandCode, { policySession: session.handle, code });
}

/** TPM2_PolicyAuthValue: from now on the session's HMAC includes the entity's authValue. */
export async function policyAuthValue(tpm: Tpm, session: AuthSession): Promise<void> {
  await tpm.execute(PolicyAuthValue, { policySession: session.handle });
  session.policyAuthValue = true;
}

/** TPM2_PolicyPassword: from now on the session carries the entity's authValue in clear. */
export async function policyPassword(tpm: Tpm, session: AuthSession): Promise<void> {
  await tpm.execute(PolicyPassword, { policySession: session.handle });
  session.policyPassword = true;
}

export async function policyGetDigest(tpm: Tpm, session: AuthSession): Promise<Uint8Array> {
  return (await tpm.execute(PolicyGetDigest, { policySession: session.handle })).policyDigest;
}

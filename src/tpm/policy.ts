/**
 * Policy commands on a policy session (Part 3 §23). The digests they produce, which a caller computes
 * in software to compare, are in session_digests.ts.
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
import type { Session } from "./sessions.ts";
import type { AuthSession } from "./sessions.ts";

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

/**
 * TPM2_ActivateCredential as Keylime uses it (keylime.md §1.5, §3): the AK (admin role, empty
 * password) and the EK (policy session satisfying its policy) recover the credential a registrar
 * made for the AK's Name. The policy session encrypts the blob and the answer.
 */
import type { Tpm } from "./client.ts";
import { ActivateCredential } from "./commands.ts";
import { type Ek, withEkPolicy } from "./ek.ts";
import type { LoadedKey } from "./objects.ts";
import { EMPTY_PASSWORD, type Session } from "./sessions.ts";

export interface ActivateOptions {
  /** How the endorsement hierarchy is authorized for PolicySecret (default: empty password). */
  endorsementAuth?: Session;
}

/** Recover certInfo (the credential) from a TPM2B_ID_OBJECT and TPM2B_ENCRYPTED_SECRET. */
export async function activateCredential(
  tpm: Tpm,
  ak: LoadedKey,
  ek: Ek,
  credentialBlob: Uint8Array,
  secret: Uint8Array,
  options: ActivateOptions = {},
): Promise<Uint8Array> {
  const r = await withEkPolicy(
    tpm,
    ek,
    (policy) =>
      tpm.execute(
        ActivateCredential,
        { activateHandle: ak.handle, keyHandle: ek.handle, credentialBlob, secret },
        { sessions: [EMPTY_PASSWORD, policy], names: [ak.name, ek.name] },
      ),
    options.endorsementAuth ? { endorsementAuth: options.endorsementAuth } : {},
  );
  return r.certInfo.slice();
}

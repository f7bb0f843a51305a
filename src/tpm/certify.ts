/**
 * TPM2_Certify (Part 3 §18.2): the AK signs that an object with a given Name is loaded in this TPM,
 * over the caller's qualifyingData. With TPM2_LoadExternal of a software key pair this binds the
 * agent's key to the AK (spec/nk-certify.md).
 */
import type { KeyObject } from "node:crypto";
import type { Tpm } from "./client.ts";
import { Certify } from "./commands.ts";
import { TPM_ALG } from "./constants.ts";
import { type ExternalKeyUse, externalPublic, externalSensitive } from "./external_key.ts";
import { encode } from "./marshal.ts";
import { type LoadedKey, loadExternal, withTransient } from "./objects.ts";
import { flushSession, startAuthSession } from "./session_start.ts";
import { EMPTY_PASSWORD } from "./sessions.ts";
import { TPMS_ATTEST, type TPMS_ATTEST as Attest, type TPMT_PUBLIC, type TPMT_SIGNATURE } from "./structures.ts";

export interface CertifyResult {
  /** The TPMS_ATTEST bytes that were signed. */
  readonly attest: Uint8Array;
  readonly attestation: Attest;
  readonly signature: TPMT_SIGNATURE;
}

/** TPM2_Certify(object, signer = ak, qualifyingData) with the AK's own scheme. */
export async function certify(
  tpm: Tpm,
  object: LoadedKey,
  ak: LoadedKey,
  qualifyingData: Uint8Array,
): Promise<CertifyResult> {
  // The object (admin role) by empty password; the AK by an HMAC session that encrypts certifyInfo.
  const session = await startAuthSession(tpm, { flags: { encrypt: true } });
  try {
    const r = await tpm.execute(
      Certify,
      {
        objectHandle: object.handle,
        signHandle: ak.handle,
        qualifyingData,
        inScheme: { scheme: TPM_ALG.NULL, details: null },
      },
      { sessions: [EMPTY_PASSWORD, session], names: [object.name, ak.name] },
    );
    return { attest: encode(TPMS_ATTEST, r.certifyInfo), attestation: r.certifyInfo, signature: r.signature };
  } finally {
    await flushSession(tpm, session);
  }
}

/**
 * Load a software key pair with TPM2_LoadExternal into the NULL hierarchy, have the AK certify it,
 * and flush it. Returns the public area the TPM was given (its Name is what the attestation names).
 */
export async function certifySoftwareKey(
  tpm: Tpm,
  privateKey: KeyObject,
  ak: LoadedKey,
  qualifyingData: Uint8Array,
  use: ExternalKeyUse = "sign",
): Promise<CertifyResult & { public: TPMT_PUBLIC; name: Uint8Array }> {
  const pub = externalPublic(privateKey, use);
  return await withTransient(tpm, loadExternal(tpm, pub, externalSensitive(privateKey)), async (key) => ({
    ...(await certify(tpm, key, ak, qualifyingData)),
    public: key.public,
    name: key.name,
  }));
}

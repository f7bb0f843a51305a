/**
 * The agent's side of the NK certify extension (spec/nk-certify.md): the AK certifies the NK, loaded with
 * TPM2_LoadExternal for the one command and flushed, over the registrar's nonce (registration) or a
 * caller's (quotes/identity?binding=certify); the result as the wire's nk_tpm, nk_attest and nk_sign.
 */
import type { Tpm } from "../tpm/client.ts";
import { certifySoftwareKey } from "../tpm/certify.ts";
import { encode } from "../tpm/marshal.ts";
import type { LoadedKey } from "../tpm/objects.ts";
import { TPM2B_PUBLIC, TPMT_SIGNATURE } from "../tpm/structures.ts";
import type { CertifiedNk } from "./identity.ts";

/** nk_tpm (TPM2B_PUBLIC as loaded), nk_attest (TPMS_ATTEST), nk_sign (TPMT_SIGNATURE): the bytes. */
export interface NkFields {
  nk_tpm: Uint8Array;
  nk_attest: Uint8Array;
  nk_sign: Uint8Array;
}

/** TPM2_Certify(NK, AK, qualifyingData); nothing stays loaded but the AK. */
export async function certifyNk(
  tpm: Tpm,
  nk: CertifiedNk,
  ak: LoadedKey,
  qualifyingData: Uint8Array,
): Promise<NkFields> {
  const c = await certifySoftwareKey(tpm, nk.privateKey, ak, qualifyingData, nk.use);
  return {
    nk_tpm: encode(TPM2B_PUBLIC, c.public),
    nk_attest: c.attest,
    nk_sign: encode(TPMT_SIGNATURE, c.signature),
  };
}

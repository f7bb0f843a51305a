/**
 * The PCR 16 binding of the NK as upstream's verifier checks it (keylime.md §6): after the agent resets
 * PCR 16 and extends it with H(pubkey PEM), PCR 16 = H(0…0 ‖ H(pem)). Upstream: keylime/keylime
 * keylime/tpm/tpm_main.py (check_pcrs, sim_extend), keylime/config.py TPM_DATA_PCR.
 */
import { DIGEST_SIZE } from "../tpm/constants.ts";
import { algName, hash } from "../tpm/crypto.ts";
import { toHex } from "../util/encoding.ts";

export const DATA_PCR = 16;

/** PCR 16 of the `hashAlg` bank after the agent bound `nkPem` (the exact PEM text it sends as `pubkey`). */
export function nkPcr16(nkPem: string, hashAlg: number): Uint8Array {
  return hash(hashAlg, new Uint8Array(DIGEST_SIZE[hashAlg]!), hash(hashAlg, new TextEncoder().encode(nkPem)));
}

/** Why PCR 16 does not bind the NK, as upstream names it (missing_pcr_16, invalid_pcr_16); undefined: it does. */
export function checkNkPcr16(
  nkPem: string,
  hashAlg: number,
  pcrs: ReadonlyMap<number, Uint8Array>,
): string | undefined {
  const got = pcrs.get(DATA_PCR);
  if (!got) return `missing_pcr_16: the quote has no ${algName(hashAlg)} PCR 16`;
  const want = nkPcr16(nkPem, hashAlg);
  if (toHex(got) !== toHex(want)) {
    return `invalid_pcr_16: PCR 16 is ${toHex(got)}, H(0 ‖ H(pubkey)) of the agent's NK is ${toHex(want)}`;
  }
  return undefined;
}

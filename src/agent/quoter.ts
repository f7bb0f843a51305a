/**
 * The agent's quotes (keylime.md §5, §6): PCR 16 reset and extended with the NK's digest before any quote,
 * then TPM2_Quote over the asked PCRs plus 16 with the AK, as the quote string. Every TPM sequence runs
 * under one lock so a quote never sees PCR 16 half set and two requests' commands never interleave; what
 * does not need the TPM never waits for it. The AK comes from an AkAccess, which decides whether it stays
 * loaded between requests (tpm_access.ts).
 * Upstream: keylime/rust-keylime keylime/src/tpm.rs (quote, pubkey_to_tpm_digest), keylime-agent/src/main.rs.
 */
import { encodePcrBlob } from "../protocol/pcr_blob.ts";
import { encodeQuote } from "../protocol/quote.ts";
import type { Tpm } from "../tpm/client.ts";
import { TPM_ALG, TPM_ECC_CURVE } from "../tpm/constants.ts";
import { algName, hash } from "../tpm/crypto.ts";
import type { LoadedKey } from "../tpm/objects.ts";
import { pcrExtend, pcrReset } from "../tpm/pcrs.ts";
import { quote } from "../tpm/quote.ts";
import { EMPTY_PASSWORD } from "../tpm/sessions.ts";
import { publicAsym, publicEcc, publicRsa, type TPMT_PUBLIC } from "../tpm/structures.ts";
import type { CertifiedNk } from "./identity.ts";
import { certifyNk, type NkFields } from "./nk_certification.ts";
import { SerialWork } from "./serial.ts";

/** keylime/config.py TPM_DATA_PCR: where the NK's digest is extended. */
export const DATA_PCR = 16;

/** The AK, as the quoter uses it: loaded for the duration of `use`. */
export interface AkAccess {
  /** The AK's public area (known without the TPM). */
  readonly public: TPMT_PUBLIC;
  /** agent/info's ak_handle: the AK's handle when the agent took it over, the same for every request. */
  readonly handle: number;
  /** Run `fn` with the TPM and the loaded AK. */
  use<T>(fn: (tpm: Tpm, ak: LoadedKey) => Promise<T>): Promise<T>;
  /** Run `fn` with the TPM only (no AK needed). */
  useTpm<T>(fn: (tpm: Tpm) => Promise<T>): Promise<T>;
}

/** The algorithm names a quote answer carries (keylime/src/algorithms.rs spellings). */
export interface QuoteAlgorithms {
  hashAlg: string;
  signAlg: string;
  encKind: "rsa" | "ecc";
  /** RSA modulus or curve size in bits, for the 2.5+ `enc_alg` (rsa2048, ecc256). */
  encSize: number;
}

const SIGN_NAMES: Readonly<Record<number, string>> = {
  [TPM_ALG.RSASSA]: "rsassa",
  [TPM_ALG.RSAPSS]: "rsapss",
  [TPM_ALG.ECDSA]: "ecdsa",
  [TPM_ALG.ECSCHNORR]: "ecschnorr",
};
const CURVE_BITS: Readonly<Record<number, number>> = {
  [TPM_ECC_CURVE.NIST_P256]: 256,
  [TPM_ECC_CURVE.NIST_P384]: 384,
  [TPM_ECC_CURVE.NIST_P521]: 521,
};

/** The algorithms of an AK public area and the quote bank. */
export function quoteAlgorithms(ak: TPMT_PUBLIC, hashAlg: number): QuoteAlgorithms {
  const scheme = publicAsym(ak).scheme.scheme;
  const signAlg = SIGN_NAMES[scheme] ?? algName(scheme);
  if (ak.type === TPM_ALG.RSA) {
    return { hashAlg: algName(hashAlg), signAlg, encKind: "rsa", encSize: publicRsa(ak).keyBits };
  }
  const curve = publicEcc(ak).curveID;
  return { hashAlg: algName(hashAlg), signAlg, encKind: "ecc", encSize: CURVE_BITS[curve] ?? 0 };
}

/** PCR indices of a 32-bit mask, ascending. */
export function maskPcrs(mask: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < 32; i++) if ((mask >>> i) & 1) out.push(i);
  return out;
}

export class Quoter {
  readonly #lock = new SerialWork();
  readonly algorithms: QuoteAlgorithms;

  constructor(readonly ak: AkAccess, readonly hashAlg: number) {
    this.algorithms = quoteAlgorithms(ak.public, hashAlg);
  }

  /** PCR 16 := extend(0, H(nkPem)): reset then extend, before any quote is served. */
  bindNk(nkPem: string): Promise<void> {
    const digest = hash(this.hashAlg, new TextEncoder().encode(nkPem));
    return this.#lock.run(() =>
      this.ak.useTpm(async (tpm) => {
        await pcrReset(tpm, DATA_PCR);
        await pcrExtend(tpm, DATA_PCR, [{ hashAlg: this.hashAlg, digest }]);
      })
    );
  }

  /**
   * The quote string over `pcrs` ∪ {16} with the nonce's ASCII as qualifyingData.
   * The AK is authorized with the empty password, as tpm2_quote does. rust-keylime instead starts an
   * unsalted, unbound HMAC session with parameter encryption for each quote (tss-esapi's
   * execute_with_nullauth_session); such a session's HMAC and AES keys derive from the empty AK auth and
   * the nonces on the wire alone, so they hide and protect nothing, and they cost two TPM commands
   * (StartAuthSession, FlushContext) per quote. The verifier receives the same quote either way.
   */
  quote(nonce: string, pcrs: readonly number[]): Promise<string> {
    const selected = [...new Set([...pcrs, DATA_PCR])].sort((a, b) => a - b);
    return this.#lock.run(() =>
      this.ak.use(async (tpm, ak) => {
        const q = await quote(tpm, ak, {
          nonce: new TextEncoder().encode(nonce),
          pcrs: selected,
          hashAlg: this.hashAlg,
          session: EMPTY_PASSWORD,
        });
        const pcrBlob = encodePcrBlob([q.selection], [[...q.pcrs.values()]]);
        return encodeQuote({ attest: q.attest, signature: q.signature, pcrBlob });
      })
    );
  }

  /** TPM2_Certify of the NK by the AK over `qualifyingData` (spec/nk-certify.md), the NK loaded only for it. */
  certifyNk(nk: CertifiedNk, qualifyingData: Uint8Array): Promise<NkFields> {
    return this.#lock.run(() => this.ak.use((tpm, ak) => certifyNk(tpm, nk, ak, qualifyingData)));
  }

  /** Run other TPM work under the same lock. */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    return this.#lock.run(fn);
  }
}

/** An AK that stays loaded (behind a resource manager, or for tests). */
export function keptAk(tpm: Tpm, ak: LoadedKey): AkAccess {
  return {
    public: ak.public,
    handle: ak.handle,
    use: (fn) => fn(tpm, ak),
    useTpm: (fn) => fn(tpm),
  };
}

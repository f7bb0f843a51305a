/**
 * The TPM2_Certify binding of the agent's key, the NK (../shared/spec/nk-certify.md): checks 3-6 of
 * "Registration" step 5, once. The registrar runs them at activation, a tenant or verifier runs them on
 * the registrar's stored binding or on a fresh `quotes/identity?binding=certify` answer.
 * Pure: no I/O, no Tpm.
 */
import { createPublicKey, type KeyObject, X509Certificate } from "node:crypto";
import { AttestationError, parseAttest } from "../tpm/attest.ts";
import { sameBytes } from "../tpm/bytes.ts";
import { TPM_ALG, TPM_ST } from "../tpm/constants.ts";
import { algName, objectName, publicKeyOf, sameKey } from "../tpm/crypto.ts";
import { decode } from "../tpm/marshal.ts";
import { SignatureError, signatureHashAlg, verifySignature } from "../tpm/signature.ts";
import {
  attestCertify,
  publicAsym,
  TPM2B_PUBLIC,
  type TPMS_ATTEST,
  type TPMT_PUBLIC,
  TPMT_SIGNATURE,
} from "../tpm/structures.ts";
import { toHex } from "../util/encoding.ts";

/**
 * The checks of nk-certify.md step 5, by name, in the order they run. `auth_tag` and `nonce` (known,
 * unexpired, unused) are the registrar's, on its stored record; `attest`, `name`, `signature` and `key`
 * are verifyNkCertification's.
 */
export const NK_CERTIFY_CHECKS = ["auth_tag", "nonce", "attest", "name", "signature", "key"] as const;
export type NkCertifyCheck = typeof NK_CERTIFY_CHECKS[number];

/** An NK certification that failed a check; `check` names it, and the message starts with it. */
export class NkCertifyError extends Error {
  readonly code = "ERR_NK_CERTIFY";
  readonly check: NkCertifyCheck;
  constructor(check: NkCertifyCheck, message: string, options?: { cause?: unknown }) {
    super(`NK certification failed (${check}): ${message}`, options);
    this.name = "NkCertifyError";
    this.check = check;
  }
}

/** The three values an agent sends (registration) or answers (identity proof), decoded from base64. */
export interface NkCertification {
  /** TPM2B_PUBLIC of the NK as loaded with TPM2_LoadExternal (size prefix included). */
  readonly nkTpm: Uint8Array;
  /** TPMS_ATTEST from TPM2_Certify (no size prefix). */
  readonly nkAttest: Uint8Array;
  /** TPMT_SIGNATURE from TPM2_Certify. */
  readonly nkSign: Uint8Array;
}

export interface VerifyNkCertificationInput extends NkCertification {
  /** The AK: the registrar's `aik_tpm` bytes (TPM2B_PUBLIC) or its parsed public area. */
  readonly akTpm: Uint8Array | TPMT_PUBLIC;
  /** The qualifying data the certification must carry: the 32 nonce bytes, or ASCII of a query nonce. */
  readonly nonce: Uint8Array;
  /** The key the NK must be: a KeyObject, or PEM of a certificate (`mtls_cert`) or of an SPKI (`transport_key`). */
  readonly expectedKey: KeyObject | string;
}

export interface VerifiedNkCertification {
  /** The NK's public area from nk_tpm. */
  readonly nk: TPMT_PUBLIC;
  /** The NK's public key. */
  readonly nkKey: KeyObject;
  readonly attest: TPMS_ATTEST;
  /** The signature's (and AK scheme's) hash algorithm. */
  readonly hashAlg: number;
}

/** The qualifying data of an identity proof: the ASCII bytes of the query nonce, as for quotes. */
export function identityNonceBytes(nonce: string): Uint8Array {
  return new TextEncoder().encode(nonce);
}

/** The public key the NK must be: of `mtls_cert` when mTLS is on, else of `transport_key` (nk-certify.md check 6). */
export function expectedNkKey(pem: KeyObject | string): KeyObject {
  if (typeof pem !== "string") return pem;
  return pem.includes("-----BEGIN CERTIFICATE-----") ? new X509Certificate(pem).publicKey : createPublicKey(pem);
}

/** Checks 3-6 of nk-certify.md step 5, in that order; throws NkCertifyError naming the first that fails. */
export function verifyNkCertification(input: VerifyNkCertificationInput): VerifiedNkCertification {
  // 3. nk_attest parses exactly as a certification by a TPM, over this nonce.
  let attest: TPMS_ATTEST;
  try {
    attest = parseAttest(input.nkAttest, TPM_ST.ATTEST_CERTIFY);
  } catch (e) {
    if (e instanceof AttestationError) throw new NkCertifyError("attest", `nk_attest: ${e.message}`, { cause: e });
    throw e;
  }
  if (!sameBytes(attest.extraData, input.nonce)) {
    throw new NkCertifyError(
      "attest",
      `nk_attest: extraData (${attest.extraData.length} bytes) is not the nonce (${input.nonce.length} bytes)`,
    );
  }

  // 4. The certified object is nk_tpm.
  const nk = fieldParse("name", "nk_tpm", () => decode(TPM2B_PUBLIC, input.nkTpm));
  const name = fieldParse("name", "nk_tpm", () => objectName(nk));
  const certified = attestCertify(attest).name;
  if (!sameBytes(certified, name)) {
    throw new NkCertifyError(
      "name",
      `nk_attest certifies the object ${toHex(certified)}, nk_tpm's Name is ${toHex(name)}`,
    );
  }

  // 5. The AK signed it, with its own scheme and hash.
  const hashAlg = checkAkSignature(input);

  // 6. The NK is the key peers use: the mTLS certificate's or the transport key's.
  const nkKey = fieldParse("key", "nk_tpm", () => publicKeyOf(nk));
  const expected = fieldParse("key", "the expected key", () => expectedNkKey(input.expectedKey));
  if (!sameKey(nkKey, expected)) {
    throw new NkCertifyError("key", "the key in nk_tpm is not the key of mtls_cert (or of transport_key)");
  }
  return { nk, nkKey, attest, hashAlg };
}

/** RSASSA or ECDSA with the hash of the AK's scheme (keylime.md §0.9), verified over nk_attest. */
function checkAkSignature(input: VerifyNkCertificationInput): number {
  const ak = input.akTpm instanceof Uint8Array
    ? fieldParse("signature", "aik_tpm", () => decode(TPM2B_PUBLIC, input.akTpm as Uint8Array))
    : input.akTpm;
  const sig = fieldParse("signature", "nk_sign", () => decode(TPMT_SIGNATURE, input.nkSign));
  const scheme = ak.type === TPM_ALG.RSA || ak.type === TPM_ALG.ECC ? publicAsym(ak).scheme : undefined;
  const want = ak.type === TPM_ALG.RSA ? TPM_ALG.RSASSA : TPM_ALG.ECDSA;
  if (scheme?.scheme !== want || scheme.details?.hashAlg === undefined) {
    throw new NkCertifyError("signature", `the AK must be an RSASSA or ECDSA signing key with a fixed hash`);
  }
  const hashAlg = fieldParse("signature", "nk_sign", () => signatureHashAlg(sig));
  if (sig.sigAlg !== want || hashAlg !== scheme.details.hashAlg) {
    throw new NkCertifyError(
      "signature",
      `nk_sign is ${algName(sig.sigAlg)}/${algName(hashAlg)}, the AK signs with ` +
        `${algName(want)}/${algName(scheme.details.hashAlg)}`,
    );
  }
  try {
    verifySignature(ak, input.nkAttest, sig);
  } catch (e) {
    if (e instanceof SignatureError) throw new NkCertifyError("signature", `nk_sign: ${e.message}`, { cause: e });
    throw e;
  }
  return hashAlg;
}

/** Run a parse that belongs to `check`; any failure becomes that check's, naming the field. */
function fieldParse<T>(check: NkCertifyCheck, field: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof NkCertifyError) throw e;
    throw new NkCertifyError(check, `${field}: ${(e as Error).message}`, { cause: e });
  }
}

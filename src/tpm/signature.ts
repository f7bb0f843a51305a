/**
 * Software verification of TPM signatures (Part 1 §C.2 (RSA), §C.4 (ECC); Part 2 §11.3 TPMT_SIGNATURE)
 * with node:crypto: RSASSA-PKCS1-v1_5, RSASSA-PSS and ECDSA over H_sig.hash(message).
 *
 * The signature's structure, the signer's key type and fixed scheme are checked before any crypto runs,
 * so a caller learns *why* a signature was refused, not only that it was.
 */
import { constants, type KeyObject, verify } from "node:crypto";
import { DIGEST_SIZE, hex, TPM_ALG, TPM_ECC_CURVE } from "./constants.ts";
import { algName, NODE_HASH, publicKeyOf } from "./crypto.ts";
import { TpmLibraryError } from "./errors.ts";
import {
  publicAsym,
  publicEcc,
  signatureEcc,
  signatureHmac,
  signatureRsa,
  TPMA_OBJECT,
  type TPMS_SIGNATURE_ECC,
  type TPMS_SIGNATURE_RSA,
  type TPMT_PUBLIC,
  type TPMT_SIGNATURE,
  uniqueRsa,
} from "./structures.ts";

/** Why a signature was refused. */
export type SignatureFault =
  /** The signature algorithm does not fit the key type (RSA key, ECDSA signature ...). */
  | "key-type"
  /** The key has a fixed signing scheme and the signature used another scheme or hash. */
  | "scheme"
  /** The signature's hash algorithm is NULL or not supported. */
  | "hash"
  /** A scheme this library does not verify (ECDAA, SM2, ECSCHNORR, HMAC, NULL) or an unusable key. */
  | "unsupported"
  /** The signature value has the wrong size for the key. */
  | "malformed"
  /** The signature does not verify with the key. */
  | "invalid";

/** A TPM signature that does not verify; `reason` says which check failed. */
export class SignatureError extends TpmLibraryError {
  readonly code = "ERR_TPM_SIGNATURE";
  readonly reason: SignatureFault;
  constructor(reason: SignatureFault, message: string, options?: { cause?: unknown }) {
    super(`Signature check failed (${reason}): ${message}`, options);
    this.name = "SignatureError";
    this.reason = reason;
  }
}

/** Byte size of the field (and so of r and s) for the curves publicKeyOf supports. */
const CURVE_BYTES: Readonly<Record<number, number>> = {
  [TPM_ECC_CURVE.NIST_P256]: 32,
  [TPM_ECC_CURVE.NIST_P384]: 48,
  [TPM_ECC_CURVE.NIST_P521]: 66,
};

const RSA_SCHEMES: ReadonlySet<number> = new Set([TPM_ALG.RSASSA, TPM_ALG.RSAPSS]);
const ECC_SCHEMES: ReadonlySet<number> = new Set([TPM_ALG.ECDSA, TPM_ALG.ECDAA, TPM_ALG.SM2, TPM_ALG.ECSCHNORR]);

/** The hash algorithm a TPMT_SIGNATURE was made with (TPM_ALG_NULL for a NULL signature). */
export function signatureHashAlg(sig: TPMT_SIGNATURE): number {
  if (sig.sigAlg === TPM_ALG.NULL) return TPM_ALG.NULL;
  if (sig.sigAlg === TPM_ALG.HMAC) return signatureHmac(sig).hashAlg;
  if (RSA_SCHEMES.has(sig.sigAlg)) return signatureRsa(sig).hash;
  if (ECC_SCHEMES.has(sig.sigAlg)) return signatureEcc(sig).hash;
  throw new SignatureError("unsupported", `signature algorithm ${algName(sig.sigAlg)} carries no hash algorithm`);
}

/**
 * Throws SignatureError unless `sig` is a valid signature by `signer` over H_sig.hash(message).
 * RSAPSS accepts a salt of the digest length (what the TPM uses) and the maximum salt (older TPMs).
 */
export function verifySignature(signer: TPMT_PUBLIC, message: Uint8Array, sig: TPMT_SIGNATURE): void {
  const alg = sig.sigAlg;
  if (signer.type === TPM_ALG.RSA) {
    if (!RSA_SCHEMES.has(alg)) {
      throw new SignatureError("key-type", `an RSA key cannot have made a ${algName(alg)} signature`);
    }
  } else if (signer.type === TPM_ALG.ECC) {
    if (!ECC_SCHEMES.has(alg)) {
      throw new SignatureError("key-type", `an ECC key cannot have made a ${algName(alg)} signature`);
    }
    if (alg !== TPM_ALG.ECDSA) throw new SignatureError("unsupported", `${algName(alg)} signatures are not supported`);
  } else {
    throw new SignatureError("key-type", `a ${algName(signer.type)} object is not an asymmetric signing key`);
  }

  // A TPM signs only with keys that have the sign attribute, so no such signature can be genuine.
  if (!TPMA_OBJECT.has(signer.objectAttributes, "sign")) {
    throw new SignatureError("key-type", "the key's objectAttributes lack sign: it cannot have made a signature");
  }

  const hashAlg = signatureHashAlg(sig);
  const nodeHash = NODE_HASH[hashAlg];
  if (!nodeHash) throw new SignatureError("hash", `hash algorithm ${algName(hashAlg)} is not supported`);

  // A key with a scheme signs only with that scheme and hash (Part 1 §C.2, Part 3 TPM2_Sign inScheme).
  const fixed = publicAsym(signer).scheme;
  if (fixed.scheme !== TPM_ALG.NULL) {
    const fixedHash = fixed.details?.hashAlg;
    if (fixed.scheme !== alg || (fixedHash !== undefined && fixedHash !== hashAlg)) {
      throw new SignatureError(
        "scheme",
        `the key signs with ${algName(fixed.scheme)}/${fixedHash === undefined ? "?" : algName(fixedHash)}, ` +
          `the signature is ${algName(alg)}/${algName(hashAlg)}`,
      );
    }
  }

  let key: KeyObject;
  try {
    key = publicKeyOf(signer);
  } catch (e) {
    throw new SignatureError("unsupported", `the signer's public key cannot be used: ${(e as Error).message}`, {
      cause: e,
    });
  }

  if (alg === TPM_ALG.ECDSA) {
    verifyEcdsa(signer, key, nodeHash, message, signatureEcc(sig));
  } else {
    verifyRsa(signer, key, nodeHash, hashAlg, alg, message, signatureRsa(sig));
  }
}

function verifyRsa(
  signer: TPMT_PUBLIC,
  key: KeyObject,
  nodeHash: string,
  hashAlg: number,
  alg: number,
  message: Uint8Array,
  s: TPMS_SIGNATURE_RSA,
): void {
  const modulus = uniqueRsa(signer);
  // The TPM always returns a signature as long as the modulus (Part 1 §C.2); shorter means truncated.
  if (s.sig.length !== modulus.length) {
    throw new SignatureError(
      "malformed",
      `RSA signature is ${s.sig.length} bytes, the key's modulus ${modulus.length}`,
    );
  }
  let ok: boolean;
  if (alg === TPM_ALG.RSASSA) {
    ok = tryVerify(nodeHash, message, { key, padding: constants.RSA_PKCS1_PADDING }, s.sig);
  } else {
    const hLen = DIGEST_SIZE[hashAlg]!;
    const modBits = key.asymmetricKeyDetails?.modulusLength ?? modulus.length * 8;
    const maxSalt = Math.ceil((modBits - 1) / 8) - hLen - 2;
    ok = [hLen, maxSalt].some((saltLength) =>
      saltLength >= 0 &&
      tryVerify(nodeHash, message, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength }, s.sig)
    );
  }
  if (!ok) throw new SignatureError("invalid", `${algName(alg)}/${nodeHash} signature does not verify with the key`);
}

function verifyEcdsa(
  signer: TPMT_PUBLIC,
  key: KeyObject,
  nodeHash: string,
  message: Uint8Array,
  s: TPMS_SIGNATURE_ECC,
): void {
  const { curveID } = publicEcc(signer);
  const n = CURVE_BYTES[curveID];
  if (n === undefined) throw new SignatureError("unsupported", `ECC curve ${hex(curveID)} is not supported`);
  // IEEE P1363 wants r ‖ s, each left-padded to the field size; the TPM may strip leading zeros.
  const r = stripZeros(s.signatureR);
  const sv = stripZeros(s.signatureS);
  if (r.length === 0 || sv.length === 0 || r.length > n || sv.length > n) {
    throw new SignatureError(
      "malformed",
      `ECDSA r (${s.signatureR.length} bytes) and s (${s.signatureS.length} bytes) must be non-zero and fit ${n} bytes`,
    );
  }
  const p1363 = new Uint8Array(2 * n);
  p1363.set(r, n - r.length);
  p1363.set(sv, 2 * n - sv.length);
  if (!tryVerify(nodeHash, message, { key, dsaEncoding: "ieee-p1363" }, p1363)) {
    throw new SignatureError("invalid", `ecdsa/${nodeHash} signature does not verify with the key`);
  }
}

function stripZeros(b: Uint8Array): Uint8Array {
  let i = 0;
  while (i < b.length && b[i] === 0) i++;
  return b.subarray(i);
}

type VerifyKey = Parameters<typeof verify>[2];

/** node:crypto verify, with an OpenSSL refusal of a malformed value counted as "does not verify". */
function tryVerify(nodeHash: string, message: Uint8Array, key: VerifyKey, sig: Uint8Array): boolean {
  try {
    return verify(nodeHash, message, key, sig);
  } catch {
    return false;
  }
}

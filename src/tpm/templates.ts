/**
 * Key templates as data, shared by the client and the simulator: the TCG EK templates (EK Credential
 * Profile 2.x, Annex B: low range L-1/L-2, high range H-3..H-7), their policies A/B/C, and the
 * Keylime AK template (keylime.md §3; rust-keylime via tss-esapi abstraction/ak.rs).
 */
import { EK_NV, TPM_ALG, TPM_ECC_CURVE } from "./constants.ts";
import { algName } from "./crypto.ts";
import { TpmUsageError } from "./errors.ts";
import { emptyPolicy, policyOrDigest, policySecretDigest } from "./session_digests.ts";
import { TPMA_OBJECT, type TPMT_PUBLIC, type TPMT_SYM_DEF_OBJECT } from "./structures.ts";
import { fromHex } from "../util/encoding.ts";

// ---- EK policies ------------------------------------------------------------------------------------

/** PolicyC: PolicyAuthorizeNV(0x01C07F01), per hash (EK profile §B.6; tpm2-tools, tss-esapi). */
export const POLICY_C: Readonly<Record<number, Uint8Array>> = {
  [TPM_ALG.SHA256]: fromHex("3767e2edd43ff45a3a7e1eaefcef78643dca964632e7aad82c673a30d8633fde"),
  [TPM_ALG.SHA384]: fromHex(
    "d6032ce61f2fb3c240eb3cf6a33237ef2b6a16f4293c22b455e261cffd217ad5b4947c2d73e63005eed2dc2b3593d165",
  ),
  [TPM_ALG.SHA512]: fromHex(
    "589ee1e146544716e8deafe6db247b01b81e9f9c7dd16b814aa15913874910" +
      "5fba5388dd1dea702f35240c184933121e2c61b8f50d3ef91393a49a38c3f73fc8",
  ),
};

const ENDORSEMENT_NAME = Uint8Array.of(0x40, 0x00, 0x00, 0x0b);

/** PolicyA = PolicySecret(TPM_RH_ENDORSEMENT), the low-range EK policy. */
export function ekPolicyA(alg: number): Uint8Array {
  return policySecretDigest(alg, emptyPolicy(alg), ENDORSEMENT_NAME);
}

/** PolicyB = PolicyOR(PolicyA, PolicyC), the high-range EK policy. */
export function ekPolicyB(alg: number): Uint8Array {
  const c = POLICY_C[alg];
  if (!c) throw new TpmUsageError(`no EK PolicyC is known for hash ${algName(alg)}: use SHA-256, SHA-384 or SHA-512`);
  return policyOrDigest(alg, [ekPolicyA(alg), c]);
}

/** PolicyA-SHA256, the authPolicy of the L-1 and L-2 templates. */
export const POLICY_A_SHA256 = ekPolicyA(TPM_ALG.SHA256);

// ---- EK templates -----------------------------------------------------------------------------------

/** The EK kinds Keylime's tpm_encryption_alg selects; rsa/ecc are the low-range L-1/L-2 templates. */
export type EkAlg = "rsa" | "ecc" | "rsa3072" | "rsa4096" | "ecc384" | "ecc521";
export const EK_ALGS: readonly EkAlg[] = ["rsa", "ecc", "rsa3072", "rsa4096", "ecc384", "ecc521"];

const LOW_ATTRIBUTES = TPMA_OBJECT.of(
  "fixedTPM",
  "fixedParent",
  "sensitiveDataOrigin",
  "adminWithPolicy",
  "restricted",
  "decrypt",
);
/** High-range templates add userWithAuth (0x000300F2). */
const HIGH_ATTRIBUTES = LOW_ATTRIBUTES + TPMA_OBJECT.of("userWithAuth");

const aesCfb = (keyBits: 128 | 256): TPMT_SYM_DEF_OBJECT => ({
  algorithm: TPM_ALG.AES,
  keyBits,
  mode: TPM_ALG.CFB,
  details: null,
});
const NULL_SCHEME = { scheme: TPM_ALG.NULL, details: null };

function rsaTemplate(range: "low" | "high", nameAlg: number, keyBits: number, aes: 128 | 256): TPMT_PUBLIC {
  return {
    type: TPM_ALG.RSA,
    nameAlg,
    objectAttributes: range === "low" ? LOW_ATTRIBUTES : HIGH_ATTRIBUTES,
    authPolicy: range === "low" ? ekPolicyA(nameAlg) : ekPolicyB(nameAlg),
    parameters: { symmetric: aesCfb(aes), scheme: NULL_SCHEME, keyBits, exponent: 0 },
    // The low range fills unique with zeros of the key size; the high range leaves it empty.
    unique: new Uint8Array(range === "low" ? keyBits / 8 : 0),
  };
}

function eccTemplate(range: "low" | "high", nameAlg: number, curveID: number, aes: 128 | 256): TPMT_PUBLIC {
  const size = range === "low" ? 32 : 0;
  return {
    type: TPM_ALG.ECC,
    nameAlg,
    objectAttributes: range === "low" ? LOW_ATTRIBUTES : HIGH_ATTRIBUTES,
    authPolicy: range === "low" ? ekPolicyA(nameAlg) : ekPolicyB(nameAlg),
    parameters: { symmetric: aesCfb(aes), scheme: NULL_SCHEME, curveID, kdf: NULL_SCHEME },
    unique: { x: new Uint8Array(size), y: new Uint8Array(size) },
  };
}

/** TCG EK templates (profile v2.6 §B.3.3-B.3.4 L-1/L-2; §B.4.4 H-3, H-4, H-6, H-7). */
export const EK_TEMPLATES: Readonly<Record<EkAlg, TPMT_PUBLIC>> = {
  rsa: rsaTemplate("low", TPM_ALG.SHA256, 2048, 128),
  ecc: eccTemplate("low", TPM_ALG.SHA256, TPM_ECC_CURVE.NIST_P256, 128),
  ecc384: eccTemplate("high", TPM_ALG.SHA384, TPM_ECC_CURVE.NIST_P384, 256),
  ecc521: eccTemplate("high", TPM_ALG.SHA512, TPM_ECC_CURVE.NIST_P521, 256),
  rsa3072: rsaTemplate("high", TPM_ALG.SHA384, 3072, 256),
  rsa4096: rsaTemplate("high", TPM_ALG.SHA384, 4096, 256),
};

/** NV index of the EK certificate for each template. */
export const EK_CERT_INDEX: Readonly<Record<EkAlg, number>> = {
  rsa: EK_NV.RSA2048_CERT,
  ecc: EK_NV.ECC_P256_CERT,
  ecc384: EK_NV.H3_ECC_P384_CERT,
  ecc521: EK_NV.H4_ECC_P521_CERT,
  rsa3072: EK_NV.H6_RSA3072_CERT,
  rsa4096: EK_NV.H7_RSA4096_CERT,
};

// ---- AK template ------------------------------------------------------------------------------------

/** The key of an AK: RSA of some size, or ECC on some curve. */
export type AkKey = { type: "rsa"; bits: 1024 | 2048 | 3072 | 4096 } | { type: "ecc"; curve: number };

export interface AkAlgorithms {
  /** Keylime's tpm_encryption_alg (default RSA-2048). */
  readonly key?: AkKey;
  /** Keylime's tpm_hash_alg: nameAlg and signature hash (default SHA-256). */
  readonly hashAlg?: number;
  /** Keylime's tpm_signing_alg: RSASSA/RSAPSS for RSA, ECDSA/ECSCHNORR/ECDAA for ECC (default RSASSA / ECDSA). */
  readonly signAlg?: number;
}

/** fixedTPM, fixedParent, sensitiveDataOrigin, userWithAuth, restricted, sign: what Keylime's registrar expects. */
export const AK_ATTRIBUTES = TPMA_OBJECT.of(
  "fixedTPM",
  "fixedParent",
  "sensitiveDataOrigin",
  "userWithAuth",
  "restricted",
  "sign",
);

const RSA_SCHEMES: readonly number[] = [TPM_ALG.RSASSA, TPM_ALG.RSAPSS];
const ECC_SCHEMES: readonly number[] = [TPM_ALG.ECDSA, TPM_ALG.ECSCHNORR, TPM_ALG.ECDAA, TPM_ALG.SM2];
const NULL_SYM = { algorithm: TPM_ALG.NULL, keyBits: null, mode: null, details: null };

/** The AK template for the chosen algorithms; a signing scheme that does not fit the key is a TpmUsageError. */
export function akTemplate(algs: AkAlgorithms = {}): TPMT_PUBLIC {
  const key = algs.key ?? { type: "rsa", bits: 2048 };
  const hashAlg = algs.hashAlg ?? TPM_ALG.SHA256;
  if (key.type === "rsa") {
    const scheme = algs.signAlg ?? TPM_ALG.RSASSA;
    if (!RSA_SCHEMES.includes(scheme)) {
      throw new TpmUsageError(`AK template: ${algName(scheme)} is not an RSA signing scheme (use RSASSA or RSAPSS)`);
    }
    return {
      type: TPM_ALG.RSA,
      nameAlg: hashAlg,
      objectAttributes: AK_ATTRIBUTES,
      authPolicy: new Uint8Array(0),
      parameters: { symmetric: NULL_SYM, scheme: { scheme, details: { hashAlg } }, keyBits: key.bits, exponent: 0 },
      unique: new Uint8Array(0),
    };
  }
  const scheme = algs.signAlg ?? TPM_ALG.ECDSA;
  if (!ECC_SCHEMES.includes(scheme)) {
    throw new TpmUsageError(
      `AK template: ${algName(scheme)} is not an ECC signing scheme (use ECDSA, ECSCHNORR, ECDAA or SM2)`,
    );
  }
  const details = scheme === TPM_ALG.ECDAA ? { hashAlg, count: 0 } : { hashAlg };
  return {
    type: TPM_ALG.ECC,
    nameAlg: hashAlg,
    objectAttributes: AK_ATTRIBUTES,
    authPolicy: new Uint8Array(0),
    parameters: {
      symmetric: NULL_SYM,
      scheme: { scheme, details },
      curveID: key.curve,
      kdf: { scheme: TPM_ALG.NULL, details: null },
    },
    unique: { x: new Uint8Array(0), y: new Uint8Array(0) },
  };
}

const AK_CURVES: Readonly<Record<string, number>> = {
  "192": TPM_ECC_CURVE.NIST_P192,
  "224": TPM_ECC_CURVE.NIST_P224,
  "256": TPM_ECC_CURVE.NIST_P256,
  "384": TPM_ECC_CURVE.NIST_P384,
  "521": TPM_ECC_CURVE.NIST_P521,
};

/** Keylime's tpm_encryption_alg spelling of an AK key: rsa, rsa2048, ecc, ecc384, ecc_nist_p256 ... */
export function parseAkKey(s: string): AkKey {
  const v = s.trim().toLowerCase();
  if (v === "rsa") return { type: "rsa", bits: 2048 };
  const rsa = /^rsa(1024|2048|3072|4096)$/.exec(v);
  if (rsa) return { type: "rsa", bits: Number(rsa[1]) as 1024 | 2048 | 3072 | 4096 };
  if (v === "ecc") return { type: "ecc", curve: TPM_ECC_CURVE.NIST_P256 };
  const ecc = /^ecc(?:_nist_p)?(192|224|256|384|521)$/.exec(v);
  if (ecc) return { type: "ecc", curve: AK_CURVES[ecc[1]!]! };
  if (v === "ecc_sm2") return { type: "ecc", curve: TPM_ECC_CURVE.SM2_P256 };
  throw new TpmUsageError(`"${s}" is not a key algorithm (rsa, rsa2048..rsa4096, ecc, ecc256..ecc521)`);
}

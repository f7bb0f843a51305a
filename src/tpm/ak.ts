/**
 * The attestation key as Keylime makes it (keylime.md §3; rust-keylime via tss-esapi
 * abstraction/ak.rs): a restricted signing key created under the EK with attributes 0x00050072,
 * saved as public + private parts and loaded again after the TPM restarts.
 */
import type { Tpm } from "./client.ts";
import { Create, Load } from "./commands.ts";
import { TPM_ALG, TPM_ECC_CURVE, TPM_RC } from "./constants.ts";
import { algName, objectName } from "./crypto.ts";
import { type Ek, withEkPolicy } from "./ek.ts";
import { TpmResponseError } from "./errors.ts";
import type { LoadedKey } from "./objects.ts";
import { TPMA_OBJECT, type TPMT_PUBLIC } from "./structures.ts";

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

/** The AK template for the chosen algorithms. */
export function akTemplate(algs: AkAlgorithms = {}): TPMT_PUBLIC {
  const key = algs.key ?? { type: "rsa", bits: 2048 };
  const hashAlg = algs.hashAlg ?? TPM_ALG.SHA256;
  if (key.type === "rsa") {
    const scheme = algs.signAlg ?? TPM_ALG.RSASSA;
    if (!RSA_SCHEMES.includes(scheme)) {
      throw new TpmResponseError(`AK template: ${algName(scheme)} is not an RSA signing scheme`, TPM_RC.SCHEME);
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
    throw new TpmResponseError(`AK template: ${algName(scheme)} is not an ECC signing scheme`, TPM_RC.SCHEME);
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

/** An AK as the agent keeps it between runs. */
export interface SavedAk {
  readonly public: TPMT_PUBLIC;
  /** The TPM2B_PRIVATE contents: the TPM-wrapped private part, usable only under the same EK. */
  readonly private: Uint8Array;
}

/** Create an AK under the EK (policy session satisfying the EK's policy, parameters encrypted). */
export async function createAk(tpm: Tpm, ek: Ek, algs: AkAlgorithms = {}): Promise<SavedAk & { name: Uint8Array }> {
  const r = await withEkPolicy(tpm, ek, (session) =>
    tpm.execute(
      Create,
      {
        parentHandle: ek.handle,
        inSensitive: { userAuth: new Uint8Array(0), data: new Uint8Array(0) },
        inPublic: akTemplate(algs),
        outsideInfo: new Uint8Array(0),
        creationPCR: [],
      },
      { sessions: [session], names: [ek.name] },
    ));
  return { public: r.outPublic, private: r.outPrivate.slice(), name: objectName(r.outPublic) };
}

/** Load a saved AK under the EK; the TPM's Name must be the public part's. */
export async function loadAk(tpm: Tpm, ek: Ek, saved: SavedAk): Promise<LoadedKey> {
  const r = await withEkPolicy(tpm, ek, (session) =>
    tpm.execute(
      Load,
      { parentHandle: ek.handle, inPrivate: saved.private, inPublic: saved.public },
      { sessions: [session], names: [ek.name] },
    ));
  const name = objectName(saved.public);
  if (Buffer.compare(name, r.name) !== 0) {
    throw new TpmResponseError("TPM2_Load (the Name does not match the saved AK public area)", TPM_RC.INTEGRITY);
  }
  return { handle: r.objectHandle, public: saved.public, name };
}

/** Keylime's tpm_encryption_alg spelling of an AK key: rsa, rsa2048, ecc, ecc384, ecc_nist_p256 ... */
export function parseAkKey(s: string): AkKey {
  const v = s.trim().toLowerCase();
  if (v === "rsa") return { type: "rsa", bits: 2048 };
  const rsa = /^rsa(1024|2048|3072|4096)$/.exec(v);
  if (rsa) return { type: "rsa", bits: Number(rsa[1]) as 1024 | 2048 | 3072 | 4096 };
  if (v === "ecc") return { type: "ecc", curve: TPM_ECC_CURVE.NIST_P256 };
  const ecc = /^ecc(?:_nist_p)?(192|224|256|384|521)$/.exec(v);
  if (ecc) {
    const curves: Record<string, number> = {
      "192": TPM_ECC_CURVE.NIST_P192,
      "224": TPM_ECC_CURVE.NIST_P224,
      "256": TPM_ECC_CURVE.NIST_P256,
      "384": TPM_ECC_CURVE.NIST_P384,
      "521": TPM_ECC_CURVE.NIST_P521,
    };
    return { type: "ecc", curve: curves[ecc[1]!]! };
  }
  if (v === "ecc_sm2") return { type: "ecc", curve: TPM_ECC_CURVE.SM2_P256 };
  throw new TpmResponseError(
    `"${s}" is not a key algorithm (rsa, rsa2048..rsa4096, ecc, ecc256..ecc521)`,
    TPM_RC.VALUE,
  );
}

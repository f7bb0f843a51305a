/**
 * The keys Keylime needs, starting with the endorsement key (TCG EK Credential Profile 2.x, Annex B):
 * templates, creation under the endorsement hierarchy, and the EK certificate in NV.
 */
import { X509Certificate } from "./x509.ts";
import type { Tpm } from "./client.ts";
import { CreatePrimary, FlushContext, ReadPublic } from "./commands.ts";
import { EK_NV, TPM_ALG, TPM_ECC_CURVE, TPM_RC, TPM_RH } from "./constants.ts";
import { TpmResponseError } from "./errors.ts";
import { objectName, publicKeyOf, publicKeyPem, sameKey } from "./crypto.ts";
import { nvRead } from "./nv.ts";
import { TPMA_OBJECT, type TPMT_PUBLIC } from "./structures.ts";

/** PolicyA-SHA256: PolicySecret(TPM_RH_ENDORSEMENT), the low-range EK authPolicy (profile §B.3.3). */
export const POLICY_A_SHA256 = Uint8Array.from(
  Buffer.from("837197674484b3f81a90cc8d46a5d724fd52d76e06520b64f2a1da1b331469aa", "hex"),
);

/** fixedTPM, fixedParent, sensitiveDataOrigin, adminWithPolicy, restricted, decrypt: 0x000300B2. */
const EK_ATTRIBUTES = TPMA_OBJECT.of(
  "fixedTPM",
  "fixedParent",
  "sensitiveDataOrigin",
  "adminWithPolicy",
  "restricted",
  "decrypt",
);

const AES_128_CFB = { algorithm: TPM_ALG.AES, keyBits: 128, mode: TPM_ALG.CFB, details: null };

export type EkAlg = "rsa" | "ecc";

/** TCG EK templates: L-1 RSA-2048 and L-2 ECC NIST P-256 (profile v2.6 §B.3.3, §B.3.4). */
export const EK_TEMPLATES: Readonly<Record<EkAlg, TPMT_PUBLIC>> = {
  rsa: {
    type: TPM_ALG.RSA,
    nameAlg: TPM_ALG.SHA256,
    objectAttributes: EK_ATTRIBUTES,
    authPolicy: POLICY_A_SHA256,
    parameters: {
      symmetric: AES_128_CFB,
      scheme: { scheme: TPM_ALG.NULL, details: null },
      keyBits: 2048,
      exponent: 0,
    },
    unique: new Uint8Array(256),
  },
  ecc: {
    type: TPM_ALG.ECC,
    nameAlg: TPM_ALG.SHA256,
    objectAttributes: EK_ATTRIBUTES,
    authPolicy: POLICY_A_SHA256,
    parameters: {
      symmetric: AES_128_CFB,
      scheme: { scheme: TPM_ALG.NULL, details: null },
      curveID: TPM_ECC_CURVE.NIST_P256,
      kdf: { scheme: TPM_ALG.NULL, details: null },
    },
    unique: { x: new Uint8Array(32), y: new Uint8Array(32) },
  },
};

/** NV index of the EK certificate for each template. */
export const EK_CERT_INDEX: Readonly<Record<EkAlg, number>> = {
  rsa: EK_NV.RSA2048_CERT,
  ecc: EK_NV.ECC_P256_CERT,
};

export interface LoadedKey {
  readonly handle: number;
  readonly public: TPMT_PUBLIC;
  readonly name: Uint8Array;
}

const EMPTY = new Uint8Array(0);

/** TPM2_CreatePrimary with a template; the returned Name is checked against the public area. */
export async function createPrimary(tpm: Tpm, hierarchy: number, template: TPMT_PUBLIC): Promise<LoadedKey> {
  const r = await tpm.execute(CreatePrimary, {
    primaryHandle: hierarchy,
    inSensitive: { userAuth: EMPTY, data: EMPTY },
    inPublic: template,
    outsideInfo: EMPTY,
    creationPCR: [],
  });
  const name = objectName(r.outPublic);
  if (Buffer.compare(name, r.name) !== 0) {
    await flush(tpm, r.objectHandle);
    throw new TpmResponseError("TPM2_CreatePrimary (Name does not match outPublic)", TPM_RC.INTEGRITY);
  }
  return { handle: r.objectHandle, public: r.outPublic, name };
}

/** TPM2_FlushContext. */
export async function flush(tpm: Tpm, handle: number): Promise<void> {
  await tpm.execute(FlushContext, { flushHandle: handle });
}

/** Run `fn` with a transient object and flush it afterwards, whatever happens. */
export async function withTransient<T>(
  tpm: Tpm,
  create: Promise<LoadedKey>,
  fn: (key: LoadedKey) => Promise<T> | T,
): Promise<T> {
  const key = await create;
  try {
    return await fn(key);
  } finally {
    await flush(tpm, key.handle);
  }
}

/** The EK public area, created from the template (deterministic for the TPM's EPS) and flushed again. */
export async function readEkPublic(tpm: Tpm, alg: EkAlg): Promise<{ public: TPMT_PUBLIC; name: Uint8Array }> {
  return await withTransient(tpm, createPrimary(tpm, TPM_RH.ENDORSEMENT, EK_TEMPLATES[alg]), (k) => ({
    public: k.public,
    name: k.name,
  }));
}

/** The public area and Name of a loaded or persistent object. */
export async function readPublic(tpm: Tpm, handle: number): Promise<{ public: TPMT_PUBLIC; name: Uint8Array }> {
  const r = await tpm.execute(ReadPublic, { objectHandle: handle });
  return { public: r.outPublic, name: r.name };
}

/** The DER EK certificate in NV, or null when the TPM holds none for this template. */
export async function readEkCertificate(tpm: Tpm, alg: EkAlg): Promise<Uint8Array | null> {
  try {
    return await nvRead(tpm, EK_CERT_INDEX[alg]);
  } catch (e) {
    if (e instanceof TpmResponseError && e.is(TPM_RC.HANDLE)) return null;
    throw e;
  }
}

export interface EkReport {
  readonly alg: EkAlg;
  readonly public: TPMT_PUBLIC;
  readonly name: Uint8Array;
  readonly publicKeyPem: string;
  readonly certificate: {
    readonly der: Uint8Array;
    readonly pem: string;
    readonly subject: string;
    readonly issuer: string;
    readonly notAfter: Date;
    /** True when the certificate's key is the EK's public key. */
    readonly matchesEk: boolean;
  } | null;
}

/** Everything `keylime-ts tpm ek` shows: the EK public key, its certificate, and whether they match. */
export async function ekReport(tpm: Tpm, alg: EkAlg): Promise<EkReport> {
  const ek = await readEkPublic(tpm, alg);
  const der = await readEkCertificate(tpm, alg);
  let certificate: EkReport["certificate"] = null;
  if (der) {
    const cert = new X509Certificate(trimDer(der).slice().buffer);
    certificate = {
      der: new Uint8Array(cert.rawData),
      pem: cert.toString("pem") + "\n",
      subject: cert.subject,
      issuer: cert.issuer,
      notAfter: cert.notAfter,
      matchesEk: sameKey(publicKeyOf(ek.public), cert.publicKeyObject),
    };
  }
  return { alg, public: ek.public, name: ek.name, publicKeyPem: publicKeyPem(ek.public), certificate };
}

/**
 * NV certificate areas are often larger than the certificate (zero padded); the DER SEQUENCE header
 * gives the real length.
 */
export function trimDer(nv: Uint8Array): Uint8Array {
  if (nv.length < 2 || nv[0] !== 0x30) return nv;
  const first = nv[1]!;
  if (first < 0x80) return nv.subarray(0, Math.min(nv.length, 2 + first));
  const n = first & 0x7f;
  if (n < 1 || n > 4 || nv.length < 2 + n) return nv;
  let len = 0;
  for (let i = 0; i < n; i++) len = len * 256 + nv[2 + i]!;
  return nv.subarray(0, Math.min(nv.length, 2 + n + len));
}

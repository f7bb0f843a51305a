/**
 * The endorsement key (TCG EK Credential Profile 2.x, Annex B): templates of the low range (L-1, L-2)
 * and high range (H-1..H-7), their policies, the policy session that authorizes EK use, an existing
 * persistent EK, and the EK certificate and CA chain in NV.
 */
import { X509Certificate } from "./x509.ts";
import type { Tpm } from "./client.ts";
import { DIGEST_SIZE, EK_NV, HANDLE_RANGE, TPM_ALG, TPM_ECC_CURVE, TPM_RC, TPM_RH } from "./constants.ts";
import { TpmResponseError } from "./errors.ts";
import { publicKeyOf, publicKeyPem, sameKey } from "./crypto.ts";
import { getHandles } from "./capabilities.ts";
import { nvRead } from "./nv.ts";
import { createPrimary, flush, type LoadedKey, readPublic, withTransient } from "./objects.ts";
import { emptyPolicy, policyOR, policyOrDigest, policySecret, policySecretDigest } from "./policy.ts";
import { flushSession, startAuthSession, withSession } from "./session_start.ts";
import type { AuthSession, Session } from "./sessions.ts";
import { publicAsym, TPMA_OBJECT, type TPMT_PUBLIC, type TPMT_SYM_DEF_OBJECT } from "./structures.ts";

const hex = (s: string) => Uint8Array.from(Buffer.from(s, "hex"));

/** PolicyC: PolicyAuthorizeNV(0x01C07F01), per hash (EK profile §B.6; tpm2-tools, tss-esapi). */
const POLICY_C: Readonly<Record<number, Uint8Array>> = {
  [TPM_ALG.SHA256]: hex("3767e2edd43ff45a3a7e1eaefcef78643dca964632e7aad82c673a30d8633fde"),
  [TPM_ALG.SHA384]: hex(
    "d6032ce61f2fb3c240eb3cf6a33237ef2b6a16f4293c22b455e261cffd217ad5b4947c2d73e63005eed2dc2b3593d165",
  ),
  [TPM_ALG.SHA512]: hex(
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
  if (!c) throw new TpmResponseError(`EK policy for hash 0x${alg.toString(16)} (no PolicyC known)`, TPM_RC.HASH);
  return policyOrDigest(alg, [ekPolicyA(alg), c]);
}

/** PolicyA-SHA256, the authPolicy of the L-1 and L-2 templates. */
export const POLICY_A_SHA256 = ekPolicyA(TPM_ALG.SHA256);

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

/** An EK in use: created from a template (and flushed after use) or persistent (never flushed). */
export interface Ek extends LoadedKey {
  readonly persistent: boolean;
}

/**
 * Create the EK of a template under the endorsement hierarchy (deterministic for the TPM's EPS),
 * through an HMAC session that encrypts the parameters, as rust-keylime does.
 */
export async function createEk(tpm: Tpm, alg: EkAlg): Promise<Ek> {
  const key = await withSession(
    tpm,
    (s) => createPrimary(tpm, TPM_RH.ENDORSEMENT, EK_TEMPLATES[alg], { sessions: [s] }),
  );
  return { ...key, persistent: false };
}

/**
 * Use an EK already persisted at `handle` (Keylime's ek_handle): it must be a restricted decryption
 * key in the endorsement hierarchy's style, or it cannot activate credentials.
 */
export async function persistentEk(tpm: Tpm, handle: number): Promise<Ek> {
  if (handle >>> 24 !== HANDLE_RANGE.PERSISTENT_FIRST >>> 24) {
    throw new TpmResponseError(
      `EK handle 0x${handle.toString(16)} is not a persistent handle (0x81...)`,
      TPM_RC.HANDLE,
    );
  }
  const key = await readPublic(tpm, handle);
  const a = key.public.objectAttributes;
  if (!TPMA_OBJECT.has(a, "restricted") || !TPMA_OBJECT.has(a, "decrypt") || TPMA_OBJECT.has(a, "sign")) {
    throw new TpmResponseError(
      `object 0x${handle.toString(16)} is not an EK: attributes 0x${a.toString(16)} lack restricted|decrypt`,
      TPM_RC.ATTRIBUTES,
    );
  }
  return { ...key, persistent: true };
}

/** Release an EK: flush a created one, keep a persistent one. */
export async function releaseEk(tpm: Tpm, ek: Ek): Promise<void> {
  if (!ek.persistent) await flush(tpm, ek.handle);
}

/**
 * A policy session that authorizes the EK's next use (Create/Load under it, ActivateCredential):
 * PolicySecret(TPM_RH_ENDORSEMENT), then PolicyOR(A, C) when the EK carries PolicyB. Salted to the EK
 * itself so parameter encryption (decrypt|encrypt, the EK's cipher) has a secret key, and one-shot
 * (continueSession clear): a policy session is reset after use anyway (spec/tpm.md §3).
 */
export async function ekPolicySession(
  tpm: Tpm,
  ek: LoadedKey,
  options: { endorsementAuth?: Session } = {},
): Promise<AuthSession> {
  const alg = ek.public.nameAlg;
  const symmetric = publicAsym(ek.public).symmetric;
  const session = await startAuthSession(tpm, {
    kind: "policy",
    authHash: alg,
    symmetric,
    salt: ek,
    flags: { continueSession: false, decrypt: true, encrypt: true },
  });
  try {
    await policySecret(
      tpm,
      session,
      TPM_RH.ENDORSEMENT,
      options.endorsementAuth ? { auth: options.endorsementAuth } : {},
    );
    if (DIGEST_SIZE[alg] && POLICY_C[alg] && Buffer.compare(ek.public.authPolicy, ekPolicyA(alg)) !== 0) {
      await policyOR(tpm, session, [ekPolicyA(alg), POLICY_C[alg]!]);
    }
    return session;
  } catch (e) {
    await flushSession(tpm, session).catch(() => {});
    throw e;
  }
}

/**
 * Run `fn` with a fresh EK policy session. The session is one-shot (continueSession clear), so the
 * TPM flushes it after a successful command; after a failed one the TPM keeps it, so flush it here.
 */
export async function withEkPolicy<T>(
  tpm: Tpm,
  ek: LoadedKey,
  fn: (session: AuthSession) => Promise<T>,
  options: { endorsementAuth?: Session } = {},
): Promise<T> {
  const session = await ekPolicySession(tpm, ek, options);
  try {
    return await fn(session);
  } catch (e) {
    await flushSession(tpm, session).catch(() => {});
    throw e;
  }
}

/** The EK public area of a template, created and flushed again. */
export async function readEkPublic(tpm: Tpm, alg: EkAlg): Promise<LoadedKey> {
  return await withTransient(tpm, createPrimary(tpm, TPM_RH.ENDORSEMENT, EK_TEMPLATES[alg]), (k) => k);
}

/** NV_Read answers through a session that encrypts the data (its first response parameter). */
const ENCRYPT_ONLY = { flags: { encrypt: true } };

/** The DER EK certificate in NV for a template, or null when the TPM holds none. */
export async function readEkCertificate(tpm: Tpm, alg: EkAlg): Promise<Uint8Array | null> {
  try {
    const index = EK_CERT_INDEX[alg];
    return trimDer(await withSession(tpm, (session) => nvRead(tpm, index, { session }), ENCRYPT_ONLY));
  } catch (e) {
    if (e instanceof TpmResponseError && e.is(TPM_RC.HANDLE)) return null;
    throw e;
  }
}

/**
 * The EK CA chain in NV 0x01C00100-0x01C001FF (EK profile §2.2.1.5.2), in index order; an index may
 * hold several DER certificates back to back.
 */
export async function readEkCertChain(tpm: Tpm): Promise<Uint8Array[]> {
  const indices = (await getHandles(tpm, EK_NV.CHAIN_FIRST)).filter((h) => h <= EK_NV.CHAIN_LAST);
  const out: Uint8Array[] = [];
  for (const index of indices) {
    out.push(...splitDer(await withSession(tpm, (session) => nvRead(tpm, index, { session }), ENCRYPT_ONLY)));
  }
  return out;
}

/** Length of the DER element at the start of `b`, or 0 when it does not start with one. */
function derLength(b: Uint8Array): number {
  if (b.length < 2 || b[0] !== 0x30) return 0;
  const first = b[1]!;
  if (first < 0x80) return 2 + first;
  const n = first & 0x7f;
  if (n < 1 || n > 4 || b.length < 2 + n) return 0;
  let len = 0;
  for (let i = 0; i < n; i++) len = len * 256 + b[2 + i]!;
  return 2 + n + len;
}

/** NV certificate areas are often longer than the certificate (padded); the DER header gives its length. */
export function trimDer(nv: Uint8Array): Uint8Array {
  const n = derLength(nv);
  return n > 0 && n <= nv.length ? nv.subarray(0, n) : nv;
}

/** Back-to-back DER certificates, stopping at padding. */
export function splitDer(b: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let at = 0; at < b.length;) {
    const n = derLength(b.subarray(at));
    if (n === 0 || at + n > b.length) break;
    out.push(b.slice(at, at + n));
    at += n;
  }
  return out;
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
  /** DER certificates of the EK CA chain in NV, if the TPM carries one. */
  readonly chain: Uint8Array[];
}

/** Everything `keylime-ts tpm ek` shows: the EK public key, its certificate, and whether they match. */
export async function ekReport(tpm: Tpm, alg: EkAlg): Promise<EkReport> {
  const ek = await readEkPublic(tpm, alg);
  const der = await readEkCertificate(tpm, alg);
  let certificate: EkReport["certificate"] = null;
  if (der) {
    const cert = new X509Certificate(der.slice().buffer);
    certificate = {
      der: new Uint8Array(cert.rawData),
      pem: cert.toString("pem") + "\n",
      subject: cert.subject,
      issuer: cert.issuer,
      notAfter: cert.notAfter,
      matchesEk: sameKey(publicKeyOf(ek.public), cert.publicKeyObject),
    };
  }
  const chain = await readEkCertChain(tpm);
  return { alg, public: ek.public, name: ek.name, publicKeyPem: publicKeyPem(ek.public), certificate, chain };
}

/**
 * The endorsement key (TCG EK Credential Profile 2.x): created from a template of templates.ts, or an
 * existing persistent EK; the policy session that authorizes EK use; the EK certificate and CA chain
 * in NV.
 */
import type { Tpm } from "./client.ts";
import { DIGEST_SIZE, EK_NV, HANDLE_RANGE, TPM_RC, TPM_RH } from "./constants.ts";
import { TpmResponseError, TpmUsageError } from "./errors.ts";
import { publicKeyOf, publicKeyPem, sameKey } from "./crypto.ts";
import { getHandles } from "./capabilities.ts";
import { nvRead } from "./nv.ts";
import { createPrimary, flush, type LoadedKey, readPublic, withTransient } from "./objects.ts";
import { policyOR, policySecret } from "./policy.ts";
import { flushSession, startAuthSession, withSession } from "./session_start.ts";
import type { AuthSession, Session } from "./sessions.ts";
import { publicAsym, TPMA_OBJECT, type TPMT_PUBLIC } from "./structures.ts";
import { EK_CERT_INDEX, EK_TEMPLATES, type EkAlg, ekPolicyA, POLICY_C } from "./templates.ts";

export interface EkOptions {
  /**
   * The endorsement hierarchy's authValue (Keylime's tpm_ownerpassword; empty by default), used to create
   * the EK and in every PolicySecret(TPM_RH_ENDORSEMENT) of its uses, as rust-keylime's
   * tr_set_auth(Endorsement) does for its whole context.
   */
  endorsementAuth?: Uint8Array;
}

/** An EK in use: created from a template (and flushed after use) or persistent (never flushed). */
export interface Ek extends LoadedKey {
  readonly persistent: boolean;
  /** The endorsement hierarchy's authValue its uses need, when not empty. */
  readonly endorsementAuth?: Uint8Array;
}

const withEndorsementAuth = (o: EkOptions) => (o.endorsementAuth?.length ? { endorsementAuth: o.endorsementAuth } : {});

/**
 * Create the EK of a template under the endorsement hierarchy (deterministic for the TPM's EPS),
 * through an HMAC session that encrypts the parameters, as rust-keylime does.
 */
export async function createEk(tpm: Tpm, alg: EkAlg, o: EkOptions = {}): Promise<Ek> {
  const auth = o.endorsementAuth;
  const key = await withSession(
    tpm,
    (s) =>
      createPrimary(tpm, TPM_RH.ENDORSEMENT, EK_TEMPLATES[alg], { sessions: [auth?.length ? s.withAuth(auth) : s] }),
  );
  return { ...key, persistent: false, ...withEndorsementAuth(o) };
}

/**
 * Use an EK already persisted at `handle` (Keylime's ek_handle): it must be a restricted decryption
 * key in the endorsement hierarchy's style, or it cannot activate credentials.
 */
export async function persistentEk(tpm: Tpm, handle: number, o: EkOptions = {}): Promise<Ek> {
  if (handle >>> 24 !== HANDLE_RANGE.PERSISTENT_FIRST >>> 24) {
    throw new TpmUsageError(`EK handle 0x${handle.toString(16)} is not a persistent handle (0x81...)`);
  }
  const key = await readPublic(tpm, handle);
  const a = key.public.objectAttributes;
  if (!TPMA_OBJECT.has(a, "restricted") || !TPMA_OBJECT.has(a, "decrypt") || TPMA_OBJECT.has(a, "sign")) {
    throw new TpmUsageError(
      `object 0x${handle.toString(16)} is not an EK: attributes 0x${a.toString(16)} lack restricted|decrypt ` +
        `or have sign; give the handle of a restricted decryption key (Keylime's ek_handle)`,
    );
  }
  return { ...key, persistent: true, ...withEndorsementAuth(o) };
}

/** Release an EK: flush a created one, keep a persistent one. */
export async function releaseEk(tpm: Tpm, ek: Ek): Promise<void> {
  if (!ek.persistent) await flush(tpm, ek.handle);
}

/**
 * A policy session that authorizes the EK's next use (Create/Load under it, ActivateCredential):
 * PolicySecret(TPM_RH_ENDORSEMENT) (authorized by options.endorsementAuth, else by an HMAC session with the
 * EK's endorsementAuth, else by the empty password), then PolicyOR(A, C) when the EK carries PolicyB. Salted to the EK
 * itself so parameter encryption (decrypt|encrypt, the EK's cipher) has a secret key, and one-shot
 * (continueSession clear): a policy session is reset after use anyway (spec/tpm.md §3).
 */
export async function ekPolicySession(
  tpm: Tpm,
  ek: LoadedKey & { endorsementAuth?: Uint8Array },
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
    const secret = (auth?: Session) => policySecret(tpm, session, TPM_RH.ENDORSEMENT, auth ? { auth } : {});
    if (options.endorsementAuth || !ek.endorsementAuth) await secret(options.endorsementAuth);
    else await withSession(tpm, (hmac) => secret(hmac.withAuth(ek.endorsementAuth!)));
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
  ek: LoadedKey & { endorsementAuth?: Uint8Array },
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
export async function readEkPublic(tpm: Tpm, alg: EkAlg, o: EkOptions = {}): Promise<LoadedKey> {
  // With an endorsement password, through createEk's session (it carries the password's HMAC).
  const made = o.endorsementAuth?.length
    ? createEk(tpm, alg, o)
    : createPrimary(tpm, TPM_RH.ENDORSEMENT, EK_TEMPLATES[alg]);
  return await withTransient(tpm, made, (k) => k);
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
export async function ekReport(tpm: Tpm, alg: EkAlg, o: EkOptions = {}): Promise<EkReport> {
  const ek = await readEkPublic(tpm, alg, o);
  const der = await readEkCertificate(tpm, alg);
  let certificate: EkReport["certificate"] = null;
  if (der) {
    // Loaded here only: the agent reads EK certificates without @peculiar/x509 (its idle memory).
    const { X509Certificate } = await import("./x509.ts");
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

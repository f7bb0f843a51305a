/**
 * Making objects: template checks, key material (derived for primaries, random for children),
 * and the TPM2B_PRIVATE wrapping that ties a child to its parent (Part 1 §22-§27; spec/tpm.md §4).
 */
import { createHash, generateKeyPairSync, type JsonWebKey, randomBytes } from "node:crypto";
import { hmac } from "@noble/hashes/hmac";
import { DIGEST_SIZE, TPM_ALG, TPM_ECC_CURVE, TPM_RC } from "../src/tpm/constants.ts";
import { concat, hashFor, objectName } from "../src/tpm/crypto.ts";
import { aesCfbDecrypt, aesCfbEncrypt, kdfa } from "../src/tpm/kdf.ts";
import { decode, encode, Reader } from "../src/tpm/marshal.ts";
import {
  publicAsym,
  publicEcc,
  publicRsa,
  publicSymcipher,
  symObjectKeyBits,
  TPM2B_DIGEST,
  TPM2B_IV,
  TPMA_OBJECT,
  type TPMT_PUBLIC as Public,
  TPMT_SENSITIVE,
  type TPMT_SENSITIVE as Sensitive,
  uniqueEcc,
  uniqueRsa,
} from "../src/tpm/structures.ts";
import { KdfStream, PRIMARY_OBJECT_CREATION } from "./drbg.ts";
import { deriveEccScalar, eccPublicFromScalar } from "./ecc_keygen.ts";
import { type SimObject } from "./object.ts";
import { rc, rcParam, TpmRc } from "./rc.ts";
import {
  bigIntToBytes,
  bytesToBigInt,
  generateRsaKey,
  generateRsaKeyAsync,
  rsaJwk,
  type RsaKeyBits,
  rsaKeyFromModulusAndPrime,
} from "./rsa_keygen.ts";
import type { RsaPrefetch } from "./rsa_prefetch.ts";
import type { Persistent } from "./state.ts";
import { fromBase64url, toBase64url } from "../src/util/encoding.ts";
import { sameSecret } from "../src/tpm/bytes.ts";

const CURVE_BYTES: Readonly<Record<number, number>> = {
  [TPM_ECC_CURVE.NIST_P256]: 32,
  [TPM_ECC_CURVE.NIST_P384]: 48,
  [TPM_ECC_CURVE.NIST_P521]: 66,
};
const CURVE_NODE: Readonly<Record<number, string>> = {
  [TPM_ECC_CURVE.NIST_P256]: "P-256",
  [TPM_ECC_CURVE.NIST_P384]: "P-384",
  [TPM_ECC_CURVE.NIST_P521]: "P-521",
};
const RSA_BITS: readonly number[] = [1024, 2048, 3072, 4096];
/** RSA primaries kept in the state (EKs, SRKs, a few more). */
const RSA_CACHE_ENTRIES = 16;

const b64u = (b: Uint8Array) => toBase64url(b);
const fromB64u = (s: string | undefined) => fromBase64url(s ?? "");

/** Template checks of TPM2_Create / CreatePrimary (Part 3 §12.1, Part 2 §12.2). Parameter `n` is inPublic. */
export function checkTemplate(t: Public, n = 2): void {
  if (!DIGEST_SIZE[t.nameAlg] || t.nameAlg === TPM_ALG.NULL) throw rcParam(TPM_RC.HASH, n);
  const a = t.objectAttributes;
  const has = (b: Parameters<typeof TPMA_OBJECT.has>[1]) => TPMA_OBJECT.has(a, b);
  if (has("fixedTPM") && !has("fixedParent")) throw rcParam(TPM_RC.ATTRIBUTES, n);
  if (has("restricted") && has("sign") === has("decrypt")) throw rcParam(TPM_RC.ATTRIBUTES, n);
  if (t.authPolicy.length !== 0 && t.authPolicy.length !== DIGEST_SIZE[t.nameAlg]) throw rcParam(TPM_RC.SIZE, n);
  if (t.type === TPM_ALG.RSA || t.type === TPM_ALG.ECC) {
    const p = publicAsym(t);
    const symNull = p.symmetric.algorithm === TPM_ALG.NULL;
    // A storage key needs a symmetric cipher to protect children; a signing key must not have one.
    if (has("restricted") && has("decrypt") && (symNull || p.symmetric.mode !== TPM_ALG.CFB)) {
      throw rcParam(TPM_RC.SYMMETRIC, n);
    }
    if (!has("decrypt") && !symNull) throw rcParam(TPM_RC.SYMMETRIC, n);
    if (has("restricted") && has("sign") && p.scheme.scheme === TPM_ALG.NULL) throw rcParam(TPM_RC.SCHEME, n);
    if (t.type === TPM_ALG.RSA) {
      const r = publicRsa(t);
      if (!RSA_BITS.includes(r.keyBits)) throw rcParam(TPM_RC.KEY_SIZE, n);
      if (r.exponent !== 0 && r.exponent !== 65537) throw rcParam(TPM_RC.VALUE, n);
    } else if (!CURVE_BYTES[publicEcc(t).curveID]) {
      throw rcParam(TPM_RC.CURVE, n);
    }
  } else if (t.type !== TPM_ALG.KEYEDHASH && t.type !== TPM_ALG.SYMCIPHER) {
    throw rcParam(TPM_RC.TYPE, n);
  }
}

export interface Material {
  readonly public: Public;
  readonly privateJwk: JsonWebKey | null;
  readonly secret: Uint8Array | null;
  readonly seedValue: Uint8Array;
}

/** Where key material comes from: a primary's derivation stream, or fresh randomness for a child. */
export type Source =
  | {
    kind: "primary";
    seed: Uint8Array;
    sensitiveData: Uint8Array;
    persistent: Persistent;
    /** RSA keys derived ahead of the command (SimTpm.prepare), looked for before deriving. */
    prefetched?: RsaPrefetch;
  }
  | { kind: "random"; sensitiveData: Uint8Array; prefetched?: RsaPrefetch };

function isStorage(t: Public): boolean {
  return TPMA_OBJECT.has(t.objectAttributes, "restricted") && TPMA_OBJECT.has(t.objectAttributes, "decrypt");
}

/**
 * A primary's key derivation: the stream its key material comes from, and an id that names the
 * derivation without revealing the seed (the key of Persistent.rsaPrimaries).
 */
function primaryDerivation(t: Public, seed: Uint8Array, sensitiveData: Uint8Array): { stream: KdfStream; id: string } {
  const context = concat(objectName(t), sensitiveData);
  return { stream: new KdfStream(t.nameAlg, seed, PRIMARY_OBJECT_CREATION, context), id: idOf(seed, context) };
}

const idOf = (seed: Uint8Array, context: Uint8Array) => createHash("sha256").update(seed).update(context).digest("hex");

/**
 * The RSA key makeMaterial derives for this primary, computed in slices that let the event loop
 * run (generateRsaKeyAsync), and its derivation id.
 */
export async function deriveRsaPrimaryAsync(
  t: Public,
  seed: Uint8Array,
  sensitiveData: Uint8Array,
): Promise<{ id: string; jwk: JsonWebKey }> {
  const { stream, id } = primaryDerivation(t, seed, sensitiveData);
  // makeMaterial draws a storage key's seedValue first: keep the stream in step.
  if (isStorage(t)) stream.next(DIGEST_SIZE[t.nameAlg]!);
  return { id, jwk: rsaJwk(await generateRsaKeyAsync(stream, publicRsa(t).keyBits as RsaKeyBits)) };
}

/** The derivation id of a primary (see primaryDerivation). */
export function primaryId(t: Public, seed: Uint8Array, sensitiveData: Uint8Array): string {
  return idOf(seed, concat(objectName(t), sensitiveData));
}

/** Key material for a template: same (seed, template, data) always gives the same primary key. */
export function makeMaterial(t: Public, source: Source): Material {
  const digestSize = DIGEST_SIZE[t.nameAlg]!;
  let stream: KdfStream | undefined;
  let cacheKey = "";
  if (source.kind === "primary") ({ stream, id: cacheKey } = primaryDerivation(t, source.seed, source.sensitiveData));
  const take = (n: number) => (stream ? stream.next(n) : new Uint8Array(randomBytes(n)));
  const seedValue = isStorage(t) ? take(digestSize) : new Uint8Array(0);

  if (t.type === TPM_ALG.RSA) {
    const bits = publicRsa(t).keyBits as RsaKeyBits;
    let jwk: JsonWebKey;
    if (stream && source.kind === "primary") {
      const cache = source.persistent.rsaPrimaries;
      const cached = cache.get(cacheKey);
      jwk = cached ?? source.prefetched?.takePrimary(cacheKey) ?? rsaJwk(generateRsaKey(stream, bits));
      if (!cached) {
        cache.set(cacheKey, jwk);
        // Bounded, oldest first out: a client creating many different RSA primaries must not grow
        // the state file without limit; an evicted key is simply derived again when asked for.
        while (cache.size > RSA_CACHE_ENTRIES) cache.delete(cache.keys().next().value!);
      }
    } else {
      jwk = source.prefetched?.takeRandom(bits) ??
        generateKeyPairSync("rsa", { modulusLength: bits }).privateKey.export({ format: "jwk" });
    }
    return { public: { ...t, unique: fromB64u(jwk.n) }, privateJwk: jwk, secret: null, seedValue };
  }
  if (t.type === TPM_ALG.ECC) {
    const curve = publicEcc(t).curveID;
    let jwk: JsonWebKey;
    if (stream) {
      const d = deriveEccScalar(stream, curve);
      const { x, y } = eccPublicFromScalar(curve, d);
      jwk = { kty: "EC", crv: CURVE_NODE[curve], x: b64u(x), y: b64u(y), d: b64u(d) };
    } else {
      jwk = generateKeyPairSync("ec", { namedCurve: CURVE_NODE[curve]! }).privateKey.export({ format: "jwk" });
    }
    const size = CURVE_BYTES[curve]!;
    const pad = (s: string | undefined) => bigIntToBytes(bytesToBigInt(fromB64u(s)), size);
    return { public: { ...t, unique: { x: pad(jwk.x), y: pad(jwk.y) } }, privateJwk: jwk, secret: null, seedValue };
  }
  // Keyed hash (HMAC keys and sealed data) and symmetric keys.
  const secret = source.sensitiveData.length > 0
    ? source.sensitiveData
    : take(t.type === TPM_ALG.SYMCIPHER ? symKeyBytes(t) : digestSize);
  const obfuscate = take(digestSize);
  const unique = hashFor(t.nameAlg)(concat(obfuscate, secret));
  return { public: { ...t, unique }, privateJwk: null, secret, seedValue: obfuscate };
}

function symKeyBytes(t: Public): number {
  return symObjectKeyBits(publicSymcipher(t).sym) / 8;
}

/** TPMT_SENSITIVE of an object: RSA carries one prime, ECC the scalar (Part 2 §12.3.2.3). */
export function sensitiveOf(
  o: Pick<SimObject, "public" | "authValue" | "seedValue" | "privateJwk" | "secret">,
): Sensitive {
  const sensitive = o.public.type === TPM_ALG.RSA
    ? fromB64u(o.privateJwk?.p)
    : o.public.type === TPM_ALG.ECC
    ? fromB64u(o.privateJwk?.d)
    : o.secret ?? new Uint8Array(0);
  return { sensitiveType: o.public.type, authValue: o.authValue, seedValue: o.seedValue, sensitive };
}

/** Rebuild the private key of a TPMT_SENSITIVE for its public area; TPM_RC_BINDING when they disagree. */
export function keyFromSensitive(pub: Public, s: Sensitive, n: number): Pick<Material, "privateJwk" | "secret"> {
  if (s.sensitiveType !== pub.type) throw rcParam(TPM_RC.TYPE, n);
  const material = s.sensitive;
  if (pub.type === TPM_ALG.RSA) {
    const modulus = bytesToBigInt(uniqueRsa(pub));
    const p = bytesToBigInt(material);
    const exponent = publicRsa(pub).exponent || 65537;
    if (p < 2n || modulus % p !== 0n) throw rcParam(TPM_RC.BINDING, n);
    return { privateJwk: rsaJwk(rsaKeyFromModulusAndPrime(modulus, p, exponent)), secret: null };
  }
  if (pub.type === TPM_ALG.ECC) {
    const curve = publicEcc(pub).curveID;
    const size = CURVE_BYTES[curve];
    if (!size) throw rcParam(TPM_RC.CURVE, n);
    let point: { x: Uint8Array; y: Uint8Array };
    try {
      point = eccPublicFromScalar(curve, bigIntToBytes(bytesToBigInt(material), size));
    } catch {
      throw rcParam(TPM_RC.BINDING, n);
    }
    const u = uniqueEcc(pub);
    const same = (a: Uint8Array, b: Uint8Array) => bytesToBigInt(a) === bytesToBigInt(b);
    if (!same(point.x, u.x) || !same(point.y, u.y)) throw rcParam(TPM_RC.BINDING, n);
    const jwk = {
      kty: "EC",
      crv: CURVE_NODE[curve],
      x: b64u(point.x),
      y: b64u(point.y),
      d: b64u(bigIntToBytes(bytesToBigInt(material), size)),
    };
    return { privateJwk: jwk, secret: null };
  }
  return { privateJwk: null, secret: material };
}

/** The protection keys a storage parent gives its children. */
function protection(parent: SimObject, name: Uint8Array) {
  const alg = parent.public.nameAlg;
  const keyBits = symObjectKeyBits(publicAsym(parent.public).symmetric);
  const symKey = kdfa(alg, parent.seedValue, "STORAGE", name, new Uint8Array(0), keyBits);
  const hmacKey = kdfa(alg, parent.seedValue, "INTEGRITY", new Uint8Array(0), new Uint8Array(0), DIGEST_SIZE[alg]! * 8);
  return { alg, symKey, hmacKey };
}

/**
 * TPM2B_PRIVATE contents (ms-tpm-20-ref SensitiveToPrivate):
 * TPM2B_DIGEST(HMAC(integrity key, TPM2B_IV ‖ enc ‖ Name)) ‖ TPM2B_IV(iv) ‖ AES-CFB(u16 size ‖ TPMT_SENSITIVE).
 */
export function wrapPrivate(parent: SimObject, name: Uint8Array, sensitive: Sensitive): Uint8Array {
  const { alg, symKey, hmacKey } = protection(parent, name);
  const iv = new Uint8Array(randomBytes(16));
  const inner = encode(TPMT_SENSITIVE, sensitive);
  const plain = concat(Uint8Array.of(inner.length >>> 8, inner.length & 0xff), inner);
  const enc = aesCfbEncrypt(symKey, iv, plain);
  const ivPart = encode(TPM2B_IV, iv);
  const integrity = hmac(hashFor(alg), hmacKey, concat(ivPart, enc, name));
  return concat(encode(TPM2B_DIGEST, integrity), ivPart, enc);
}

/** The reverse of wrapPrivate; TPM_RC_INTEGRITY (parameter 1, inPrivate) when the blob is not this parent's. */
export function unwrapPrivate(parent: SimObject, name: Uint8Array, blob: Uint8Array): Sensitive {
  const { alg, symKey, hmacKey } = protection(parent, name);
  let integrity: Uint8Array;
  let ivPart: Uint8Array;
  let iv: Uint8Array;
  let enc: Uint8Array;
  try {
    const r = new Reader(blob);
    integrity = TPM2B_DIGEST.decode(r);
    const ivStart = r.offset;
    iv = TPM2B_IV.decode(r);
    ivPart = blob.subarray(ivStart, r.offset);
    enc = r.bytes(r.remaining);
  } catch {
    throw rcParam(TPM_RC.INSUFFICIENT, 1);
  }
  const expected = hmac(hashFor(alg), hmacKey, concat(ivPart, enc, name));
  if (!sameSecret(integrity, expected)) throw rcParam(TPM_RC.INTEGRITY, 1);
  const plain = aesCfbDecrypt(symKey, iv, enc);
  const size = (plain[0]! << 8) | plain[1]!;
  try {
    if (size !== plain.length - 2) throw new Error("size");
    return decode(TPMT_SENSITIVE, plain.subarray(2));
  } catch {
    throw rcParam(TPM_RC.INTEGRITY, 1);
  }
}

export function assertSlot(used: number, slots: number): void {
  if (used >= slots) throw rc(TPM_RC.OBJECT_MEMORY);
}

export { TpmRc };

/**
 * Signing with a loaded key over a digest the TPM already has (Part 1 §C; ms-tpm-20-ref CryptUtil.c
 * CryptSelectSignScheme, CryptSign, CryptValidateSignature): the scheme chosen from the key's and the
 * caller's, checked against the key's type, then RSASSA, RSASSA-PSS, ECDSA or HMAC.
 *
 * The digest arrives already hashed, so RSA pads it by hand (a DigestInfo, or EMSA-PSS) for a raw
 * private-key operation, and ECDSA signs it with @noble/curves: node:crypto signs only messages it
 * hashes itself.
 */
import { constants, privateEncrypt, publicDecrypt, randomBytes } from "node:crypto";
import { p256, p384, p521 } from "@noble/curves/nist";
import { hmac } from "@noble/hashes/hmac";
import { DIGEST_SIZE, TPM_ALG, TPM_ECC_CURVE, TPM_RC } from "../src/tpm/constants.ts";
import { concat, hash, hashFor, publicKeyOf } from "../src/tpm/crypto.ts";
import {
  keyedHashHmac,
  publicAsym,
  publicEcc,
  publicKeyedHash,
  publicRsa,
  signatureEcc,
  signatureHmac,
  signatureRsa,
  sigSchemeDetails,
  TPMA_OBJECT,
  type TPMT_SIG_SCHEME,
  type TPMT_SIGNATURE,
  uniqueEcc,
  uniqueRsa,
} from "../src/tpm/structures.ts";
import { privateKeyOf, type SimObject } from "./object.ts";
import { bigIntToBytes, bytesToBigInt, modPow } from "./rsa_keygen.ts";
import { rcHandle, rcParam, TpmRc } from "./rc.ts";
import { fromBase64url, fromHex } from "../src/util/encoding.ts";
import { sameSecret } from "../src/tpm/bytes.ts";

export interface SignScheme {
  readonly scheme: number;
  readonly hashAlg: number;
}

/** Signature schemes this TPM implements, by the key type that signs with them. */
const SCHEMES_OF_TYPE: Readonly<Record<number, readonly number[]>> = {
  [TPM_ALG.RSA]: [TPM_ALG.RSASSA, TPM_ALG.RSAPSS],
  [TPM_ALG.ECC]: [TPM_ALG.ECDSA],
  [TPM_ALG.KEYEDHASH]: [TPM_ALG.HMAC],
};

/** DER DigestInfo prefixes (RFC 8017 §9.2 note 1). */
const DIGEST_INFO: Readonly<Record<number, string>> = {
  [TPM_ALG.SHA1]: "3021300906052b0e03021a05000414",
  [TPM_ALG.SHA256]: "3031300d060960864801650304020105000420",
  [TPM_ALG.SHA384]: "3041300d060960864801650304020205000430",
  [TPM_ALG.SHA512]: "3051300d060960864801650304020305000440",
};

const CURVES: Readonly<Record<number, typeof p256>> = {
  [TPM_ECC_CURVE.NIST_P256]: p256,
  [TPM_ECC_CURVE.NIST_P384]: p384,
  [TPM_ECC_CURVE.NIST_P521]: p521,
};

const b64u = (s: string | undefined) => fromBase64url(s ?? "");

/**
 * The scheme of a key's public area (TPMT_RSA_SCHEME, TPMT_ECC_SCHEME or TPMT_KEYEDHASH_SCHEME), with
 * TPM_ALG_NULL as hash for one that carries none (RSAES, XOR: no signing scheme anyway).
 */
function ownScheme(key: SimObject): SignScheme | undefined {
  const pub = key.public;
  if (pub.type === TPM_ALG.KEYEDHASH) {
    const own = publicKeyedHash(pub).scheme;
    if (own.scheme === TPM_ALG.NULL) return undefined;
    return { scheme: own.scheme, hashAlg: own.scheme === TPM_ALG.HMAC ? keyedHashHmac(own).hashAlg : TPM_ALG.NULL };
  }
  if (pub.type !== TPM_ALG.RSA && pub.type !== TPM_ALG.ECC) return undefined;
  const own = publicAsym(pub).scheme;
  if (own.scheme === TPM_ALG.NULL) return undefined;
  return { scheme: own.scheme, hashAlg: own.details?.hashAlg ?? TPM_ALG.NULL };
}

/**
 * CryptSelectSignScheme, and the key-type check CryptSign makes: the key's own scheme, or the
 * caller's for a key without one; both given must agree in scheme and hash. A key that cannot sign
 * is TPM_RC_KEY on its handle `keyN`; a scheme that does not fit is TPM_RC_SCHEME on parameter
 * `schemeN` (the inScheme of Sign, Quote and Certify is parameter 2).
 */
export function selectSignScheme(key: SimObject, inScheme: TPMT_SIG_SCHEME, keyN: number, schemeN = 2): SignScheme {
  if (!TPMA_OBJECT.has(key.public.objectAttributes, "sign") || !hasPrivate(key)) throw rcHandle(TPM_RC.KEY, keyN);
  const own = ownScheme(key);
  const given = inScheme.scheme === TPM_ALG.NULL
    ? undefined
    : { scheme: inScheme.scheme, hashAlg: sigSchemeDetails(inScheme).hashAlg };
  if (own && given && (own.scheme !== given.scheme || own.hashAlg !== given.hashAlg)) {
    throw rcParam(TPM_RC.SCHEME, schemeN);
  }
  const chosen = own ?? given;
  if (!chosen || !SCHEMES_OF_TYPE[key.public.type]?.includes(chosen.scheme)) throw rcParam(TPM_RC.SCHEME, schemeN);
  if (!DIGEST_SIZE[chosen.hashAlg] || chosen.hashAlg === TPM_ALG.NULL) throw rcParam(TPM_RC.SCHEME, schemeN);
  return chosen;
}

function hasPrivate(key: SimObject): boolean {
  return key.public.type === TPM_ALG.KEYEDHASH ? key.secret !== null : key.privateJwk !== null;
}

/** Sign `digest` (made with s.hashAlg) with `key` under a scheme selectSignScheme chose. */
export function signDigest(key: SimObject, s: SignScheme, digest: Uint8Array): TPMT_SIGNATURE {
  switch (s.scheme) {
    case TPM_ALG.RSASSA: {
      const info = concat(fromHex(DIGEST_INFO[s.hashAlg]!), digest);
      const sig = privateEncrypt({ key: privateKeyOf(key), padding: constants.RSA_PKCS1_PADDING }, info);
      return { sigAlg: s.scheme, signature: { hash: s.hashAlg, sig: new Uint8Array(sig) } };
    }
    case TPM_ALG.RSAPSS: {
      const em = emsaPssEncode(s.hashAlg, digest, modulusBytes(key));
      return { sigAlg: s.scheme, signature: { hash: s.hashAlg, sig: rsaPrivate(key, em) } };
    }
    case TPM_ALG.ECDSA: {
      const curve = curveOf(key);
      const sig = curve.sign(digest, b64u(key.privateJwk!.d), { prehash: false, lowS: false });
      const size = Math.ceil(curve.CURVE.n.toString(16).length / 2);
      const fixed = (v: bigint) => fromHex(v.toString(16).padStart(size * 2, "0"));
      return {
        sigAlg: s.scheme,
        signature: { hash: s.hashAlg, signatureR: fixed(sig.r), signatureS: fixed(sig.s) },
      };
    }
    case TPM_ALG.HMAC:
      // CryptHmacSign: HMAC keyed with the object's secret over the digest.
      return { sigAlg: s.scheme, signature: { hashAlg: s.hashAlg, digest: hmacOf(key, s.hashAlg, digest) } };
  }
  throw rcParam(TPM_RC.SCHEME, 2);
}

/** Sign a message (hashed here with the scheme's hash), as Quote and Certify sign a TPMS_ATTEST. */
export function signMessage(key: SimObject, s: SignScheme, message: Uint8Array): TPMT_SIGNATURE {
  return signDigest(key, s, hash(s.hashAlg, message));
}

/**
 * CryptValidateSignature: whether `sig` is `key`'s over `digest`. A signature algorithm that does
 * not fit the key is TPM_RC_SCHEME (the caller adds the parameter number).
 */
export function verifyDigest(key: SimObject, digest: Uint8Array, sig: TPMT_SIGNATURE): boolean {
  if (!SCHEMES_OF_TYPE[key.public.type]?.includes(sig.sigAlg)) throw new TpmRc(TPM_RC.SCHEME);
  const own = ownScheme(key);
  if (sig.sigAlg === TPM_ALG.HMAC) {
    const { hashAlg, digest: mac } = signatureHmac(sig);
    if (own && own.hashAlg !== hashAlg) throw new TpmRc(TPM_RC.SCHEME);
    if (key.secret === null) throw new TpmRc(TPM_RC.HANDLE); // a public-only keyed hash cannot verify
    const expected = hmacOf(key, hashAlg, digest);
    return mac !== null && sameSecret(mac, expected);
  }
  if (sig.sigAlg === TPM_ALG.ECDSA) {
    const { signatureR, signatureS } = signatureEcc(sig);
    const point = uniqueEcc(key.public);
    try {
      return curveOf(key).verify(concat(signatureR, signatureS), digest, concat(Uint8Array.of(4), point.x, point.y), {
        prehash: false,
        lowS: false,
      });
    } catch {
      return false;
    }
  }
  const { hash: hashAlg, sig: value } = signatureRsa(sig);
  if (sig.sigAlg === TPM_ALG.RSAPSS) {
    const em = rsaPublic(key, value);
    return em !== undefined && emsaPssVerify(hashAlg, digest, em, modulusBytes(key));
  }
  let em: Uint8Array;
  try {
    em = new Uint8Array(publicDecrypt({ key: publicKeyOf(key.public), padding: constants.RSA_PKCS1_PADDING }, value));
  } catch {
    return false;
  }
  const prefix = DIGEST_INFO[hashAlg];
  if (!prefix) return false;
  const expected = concat(fromHex(prefix), digest);
  return sameSecret(em, expected);
}

function hmacOf(key: SimObject, hashAlg: number, data: Uint8Array): Uint8Array {
  return hmac(hashFor(hashAlg), key.secret!, data);
}

function curveOf(key: SimObject) {
  const c = CURVES[publicEcc(key.public).curveID];
  if (!c) throw rcHandle(TPM_RC.CURVE, 1);
  return c;
}

function modulusBytes(key: SimObject): number {
  return uniqueRsa(key.public).length;
}

/**
 * The raw RSA private-key operation (with the CRT values of the JWK): node:crypto has no unpadded
 * private encryption on every runtime this runs on (Deno refuses RSA_NO_PADDING).
 */
function rsaPrivate(key: SimObject, em: Uint8Array): Uint8Array {
  const jwk = key.privateJwk!;
  const [p, q, dp, dq, qi] = [jwk.p, jwk.q, jwk.dp, jwk.dq, jwk.qi].map((v) => bytesToBigInt(b64u(v)));
  const c = bytesToBigInt(em);
  const m1 = modPow(c % p!, dp!, p!);
  const m2 = modPow(c % q!, dq!, q!);
  const h = (qi! * (((m1 - m2) % p!) + p!)) % p!;
  return bigIntToBytes(m2 + h * q!, modulusBytes(key));
}

/** The raw RSA public-key operation; undefined for a value not below the modulus. */
function rsaPublic(key: SimObject, sig: Uint8Array): Uint8Array | undefined {
  const n = bytesToBigInt(uniqueRsa(key.public));
  const e = BigInt(publicRsa(key.public).exponent || 65537);
  const s = bytesToBigInt(sig);
  if (sig.length !== modulusBytes(key) || s >= n) return undefined;
  return bigIntToBytes(modPow(s, e, n), modulusBytes(key));
}

/** MGF1 (RFC 8017 §B.2.1). */
function mgf1(hashAlg: number, seed: Uint8Array, length: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0, at = 0; at < length; i++) {
    const block = hash(hashAlg, seed, Uint8Array.of(i >>> 24, (i >>> 16) & 0xff, (i >>> 8) & 0xff, i & 0xff));
    out.set(block.subarray(0, length - at), at);
    at += block.length;
  }
  return out;
}

/**
 * EMSA-PSS-ENCODE (RFC 8017 §9.1.1) for a modulus of k bytes whose top bit is set. The salt is as
 * long as the digest, or the most that fits (ms-tpm-20-ref CryptRsa.c PssEncode; libtpms, and so
 * swtpm, use the digest length too).
 */
function emsaPssEncode(hashAlg: number, mHash: Uint8Array, k: number): Uint8Array {
  const hLen = mHash.length;
  const emLen = k;
  const sLen = Math.min(hLen, emLen - hLen - 2);
  const salt = new Uint8Array(randomBytes(sLen));
  const h = hash(hashAlg, new Uint8Array(8), mHash, salt);
  const db = new Uint8Array(emLen - hLen - 1);
  db[db.length - sLen - 1] = 1;
  db.set(salt, db.length - sLen);
  const mask = mgf1(hashAlg, h, db.length);
  for (let i = 0; i < db.length; i++) db[i]! ^= mask[i]!;
  db[0]! &= 0x7f; // emBits = 8k - 1
  return concat(db, h, Uint8Array.of(0xbc));
}

/** EMSA-PSS-VERIFY with the salt length recovered from the encoding (any length, as PssDecode). */
function emsaPssVerify(hashAlg: number, mHash: Uint8Array, em: Uint8Array, k: number): boolean {
  const hLen = mHash.length;
  if (hLen !== DIGEST_SIZE[hashAlg] || em.length !== k || em[k - 1] !== 0xbc || (em[0]! & 0x80) !== 0) return false;
  const db = em.slice(0, k - hLen - 1);
  const h = em.subarray(k - hLen - 1, k - 1);
  const mask = mgf1(hashAlg, h, db.length);
  for (let i = 0; i < db.length; i++) db[i]! ^= mask[i]!;
  db[0]! &= 0x7f;
  const one = db.findIndex((b) => b !== 0);
  if (one < 0 || db[one] !== 1) return false;
  const salt = db.subarray(one + 1);
  const expected = hash(hashAlg, new Uint8Array(8), mHash, salt);
  return sameSecret(expected, h);
}

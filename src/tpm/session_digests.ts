/**
 * The digests both ends of an authorization session compute (Part 1 §18.7-18.8, §19.6, Part 3 §23):
 * cpHash and rpHash, the session key, the session HMAC, the parameter-encryption key, and the policy
 * digests. The client (sessions.ts, session_start.ts, ek.ts) and the simulator import them from here,
 * so neither side needs the other's code.
 */
import { DIGEST_SIZE, TPM_ALG, TPM_CC } from "./constants.ts";
import { concat, hash, hmacOf } from "./crypto.ts";
import { aesCfbDecrypt, aesCfbEncrypt, kdfa } from "./kdf.ts";
import { symKeyBits, type TPMT_SYM_DEF } from "./structures.ts";
import { sameSecret, u32be } from "./bytes.ts";

/** authValues are used without trailing zero bytes (Part 1 §19.6.4; ms-tpm-20-ref MemoryRemoveTrailingZeros). */
export function trimAuth(v: Uint8Array): Uint8Array {
  let n = v.length;
  while (n > 0 && v[n - 1] === 0) n--;
  return v.subarray(0, n);
}

/** cpHash = H(u32 commandCode ‖ Name(h1) ‖ Name(h2) ‖ Name(h3) ‖ parameters) (Part 1 §18.7). */
export function cpHash(alg: number, code: number, names: readonly Uint8Array[], parameters: Uint8Array): Uint8Array {
  return hash(alg, u32be(code), ...names, parameters);
}

/** rpHash = H(u32 responseCode (0) ‖ u32 commandCode ‖ parameters) (Part 1 §18.8). */
export function rpHash(alg: number, code: number, parameters: Uint8Array): Uint8Array {
  return hash(alg, u32be(0), u32be(code), parameters);
}

/**
 * sessionKey = KDFa(authHash, bindAuth ‖ salt, "ATH", nonceTPM, nonceCaller, digestBits) (Part 1 §19.6.8).
 * A bound or salted session has one even when bindAuth ‖ salt is empty; only an unbound, unsalted
 * session has none.
 */
export function deriveSessionKey(
  alg: number,
  bindAuth: Uint8Array | undefined,
  salt: Uint8Array,
  nonceTPM: Uint8Array,
  nonceCaller: Uint8Array,
): Uint8Array {
  if (bindAuth === undefined && salt.length === 0) return new Uint8Array(0);
  const secret = concat(trimAuth(bindAuth ?? new Uint8Array(0)), salt);
  return kdfa(alg, secret, "ATH", nonceTPM, nonceCaller, DIGEST_SIZE[alg]! * 8);
}

/**
 * The session HMAC (Part 1 §19.6.5): HMAC(key, pHash ‖ nonceNewer ‖ nonceOlder ‖ extra nonces ‖ attributes).
 * A command's is over cpHash with nonceCaller newer; a response's over rpHash with nonceTPM newer. Only
 * session 1 of a command adds the nonces of the other sessions that decrypt or encrypt.
 */
export function sessionHmac(
  alg: number,
  key: Uint8Array,
  pHash: Uint8Array,
  nonceNewer: Uint8Array,
  nonceOlder: Uint8Array,
  attributes: number,
  extraNonces: readonly Uint8Array[] = [],
): Uint8Array {
  return hmacOf(alg, key, pHash, nonceNewer, nonceOlder, ...extraNonces, Uint8Array.of(attributes));
}

/**
 * Whether a received session HMAC is the expected one, compared in constant time. With an empty key
 * an empty HMAC is accepted too (the empty-HMAC rule, spec/tpm.md §3).
 */
export function sessionHmacValid(received: Uint8Array, expected: Uint8Array, key: Uint8Array): boolean {
  return (key.length === 0 && received.length === 0) || sameSecret(received, expected);
}

/**
 * The AES-CFB key and IV that encrypt a session's first parameter (Part 1 §21.3):
 * KDFa(authHash, sessionKey ‖ authValue, "CFB", nonceNewer, nonceOlder, keyBits + 128).
 */
export function parameterCfbKey(
  alg: number,
  keyBits: number,
  keyValue: Uint8Array,
  nonceNewer: Uint8Array,
  nonceOlder: Uint8Array,
): { key: Uint8Array; iv: Uint8Array } {
  const bytes = kdfa(alg, keyValue, "CFB", nonceNewer, nonceOlder, keyBits + 128);
  return { key: bytes.subarray(0, keyBits / 8), iv: bytes.subarray(keyBits / 8) };
}

/** What parameterCipher needs of a session; `keyValue` is sessionKey ‖ authValue (as it applies). */
export interface ParameterKey {
  readonly symmetric: TPMT_SYM_DEF;
  readonly authHash: number;
  readonly keyValue: Uint8Array;
}

/**
 * Parameter encryption of the first parameter's data (Part 1 §21), `nonceNewer` being the sender's
 * nonce (nonceCaller for a command, nonceTPM for a response): AES-CFB with parameterCfbKey, or the
 * XOR obfuscation of §21.2, data ⊕ KDFa(authHash, keyValue, "XOR", nonceNewer, nonceOlder, 8·size)
 * (ms-tpm-20-ref CryptXORObfuscation: the session's authHash, not the hash named in the TPMT_SYM_DEF).
 * Undefined for any other cipher.
 */
export function parameterCipher(
  k: ParameterKey,
  nonceNewer: Uint8Array,
  nonceOlder: Uint8Array,
): { encrypt(data: Uint8Array): Uint8Array; decrypt(data: Uint8Array): Uint8Array } | undefined {
  const { symmetric, authHash, keyValue } = k;
  if (symmetric.algorithm === TPM_ALG.XOR) {
    const xor = (data: Uint8Array) => {
      if (data.length === 0) return new Uint8Array(0);
      const mask = kdfa(authHash, keyValue, "XOR", nonceNewer, nonceOlder, data.length * 8);
      return data.map((b, i) => b ^ mask[i]!);
    };
    return { encrypt: xor, decrypt: xor };
  }
  if (symmetric.algorithm !== TPM_ALG.AES || symmetric.mode !== TPM_ALG.CFB) return undefined;
  const { key, iv } = parameterCfbKey(authHash, symKeyBits(symmetric), keyValue, nonceNewer, nonceOlder);
  return { encrypt: (data) => aesCfbEncrypt(key, iv, data), decrypt: (data) => aesCfbDecrypt(key, iv, data) };
}

/** The digest every policy session starts from: all zeros. */
export function emptyPolicy(alg: number): Uint8Array {
  return new Uint8Array(DIGEST_SIZE[alg]!);
}

/** PolicySecret's update: d = H(H(d ‖ CC_PolicySecret ‖ authName) ‖ policyRef) (Part 3 §23.4). */
export function policySecretDigest(
  alg: number,
  digest: Uint8Array,
  authName: Uint8Array,
  policyRef = new Uint8Array(),
): Uint8Array {
  return hash(alg, hash(alg, digest, u32be(TPM_CC.PolicySecret), authName), policyRef);
}

/** PolicyOR's update: d = H(0…0 ‖ CC_PolicyOR ‖ digests…) (Part 3 §23.6). */
export function policyOrDigest(alg: number, branches: readonly Uint8Array[]): Uint8Array {
  return hash(alg, emptyPolicy(alg), u32be(TPM_CC.PolicyOR), ...branches);
}

/** PolicyCommandCode's update: d = H(d ‖ CC_PolicyCommandCode ‖ code). */
export function policyCommandCodeDigest(alg: number, digest: Uint8Array, code: number): Uint8Array {
  return hash(alg, digest, u32be(TPM_CC.PolicyCommandCode), u32be(code));
}

/** PolicyAuthValue's / PolicyPassword's update (both extend with CC_PolicyAuthValue). */
export function policyAuthValueDigest(alg: number, digest: Uint8Array): Uint8Array {
  return hash(alg, digest, u32be(TPM_CC.PolicyAuthValue));
}

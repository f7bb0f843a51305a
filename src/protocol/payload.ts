/**
 * Payload delivery with the bootstrap key K = U xor V (keylime.md §8), both sides in one place so the agent,
 * the tenant code and the tests share one implementation:
 * - agent: RSA-OAEP-SHA1 (or, for an EC NK without mTLS, ECIES: nk_ecies.ts) decryption of U and V with the NK, pairing every U with every V until
 *   HMAC-SHA384(K, uuid) equals the tenant's auth_tag, AES-GCM decryption of the payload, keys/verify's HMAC;
 * - tenant: K, V and U, the auth_tag, U and V encrypted to the NK, the encrypted payload.
 * Upstream: keylime/rust-keylime keylime-agent/src/keys_handler.rs (try_combine_keys), keylime/src/crypto.rs
 * (rsa_oaep_decrypt, decrypt_aead, verify_hmac); keylime/keylime keylime/crypto.py (encrypt, rsa_encrypt,
 * do_hmac), keylime/tenant.py.
 */
import { Buffer } from "node:buffer";
import { createPrivateKey, createPublicKey, type KeyObject, randomBytes, webcrypto } from "node:crypto";
import { hmac } from "@noble/hashes/hmac";
import { sha384 } from "@noble/hashes/sha2";
import { fromHex, fromPem, toHex } from "../util/encoding.ts";
import { sameSecret } from "../tpm/bytes.ts";
import { ECDH_P256, eciesDecrypt, eciesEncrypt } from "./nk_ecies.ts";

const subtle = webcrypto.subtle;
type CryptoKey = webcrypto.CryptoKey;

/** AES-128 or AES-256: the lengths rust-keylime's SymmKey accepts for U, V and K. */
export const SYMM_KEY_LENGTHS: readonly number[] = [16, 32];
/** HMAC-SHA384 output: the auth_tag is 96 hex digits. */
export const AUTH_TAG_BYTES = 48;
/** keylime/crypto.py writes a 16-byte IV (not GCM's usual 12) before the ciphertext. */
export const PAYLOAD_IV_BYTES = 16;
export const PAYLOAD_TAG_BYTES = 16;
/** Bootstrap key material kept while waiting for the other half: old entries give way to new ones. */
export const MAX_PENDING_SHARES = 16;

export type PayloadErrorReason =
  | "key-decrypt"
  | "key-length"
  | "auth-tag"
  | "payload-decrypt"
  | "payload-format";

/** Input that cannot be a U, V, auth_tag or payload. Messages never contain key material. */
export class PayloadError extends Error {
  readonly code = "ERR_PAYLOAD";
  constructor(readonly reason: PayloadErrorReason, message: string) {
    super(message);
    this.name = "PayloadError";
  }
}

const encoder = new TextEncoder();
const OAEP = { name: "RSA-OAEP", hash: "SHA-1" } as const;

function der(key: KeyObject, type: "pkcs8" | "spki"): Uint8Array {
  return new Uint8Array(key.export({ format: "der", type }));
}

/**
 * How U and V are wrapped for an NK of this type: RSA-OAEP-SHA1 for RSA (upstream), ECIES for EC P-256
 * (spec/nk-certify.md, nk_ecies.ts); anything else cannot be an NK.
 */
function nkAlgorithm(key: KeyObject): typeof OAEP | typeof ECDH_P256 {
  if (key.asymmetricKeyType === "rsa") return OAEP;
  if (key.asymmetricKeyType === "ec" && key.asymmetricKeyDetails?.namedCurve === "prime256v1") return ECDH_P256;
  throw new PayloadError("payload-format", "the NK must be an RSA or EC P-256 key");
}

const isEcies = (nk: CryptoKey) => nk.algorithm.name === ECDH_P256.name;

/** The NK's private key for decrypting U and V (from a KeyObject or PKCS#8 DER): RSA-OAEP or ECIES by its type. */
export async function importNkPrivateKey(key: KeyObject | Uint8Array): Promise<CryptoKey> {
  const k = key instanceof Uint8Array ? createPrivateKey({ key: Buffer.from(key), format: "der", type: "pkcs8" }) : key;
  const alg = nkAlgorithm(k);
  return await subtle.importKey("pkcs8", der(k, "pkcs8"), alg, false, alg === OAEP ? ["decrypt"] : ["deriveBits"]);
}

/** The NK's public key for encrypting U and V (from a KeyObject, SPKI DER or the `pubkey` PEM). */
export async function importNkPublicKey(key: KeyObject | Uint8Array | string): Promise<CryptoKey> {
  let k: KeyObject;
  if (typeof key === "string") {
    const [spki] = fromPem(key, "PUBLIC KEY");
    if (!spki) throw new PayloadError("payload-format", "no PEM PUBLIC KEY block in the NK text");
    k = createPublicKey({ key: Buffer.from(spki), format: "der", type: "spki" });
  } else if (key instanceof Uint8Array) k = createPublicKey({ key: Buffer.from(key), format: "der", type: "spki" });
  else k = key.type === "private" ? createPublicKey(key) : key;
  const alg = nkAlgorithm(k);
  return await subtle.importKey("spki", der(k, "spki"), alg, false, alg === OAEP ? ["encrypt"] : []);
}

function checkShareLength(what: string, n: number): void {
  if (!SYMM_KEY_LENGTHS.includes(n)) {
    throw new PayloadError("key-length", `${what} is ${n} bytes; expected 16 or 32`);
  }
}

/** Agent: decryption of U or V with the NK (RSA-OAEP-SHA1, MGF1-SHA1, no label; or ECIES), 16 or 32 bytes. */
export async function decryptKeyShare(
  nk: CryptoKey,
  encrypted: Uint8Array,
  what = "encrypted_key",
): Promise<Uint8Array> {
  let plain: Uint8Array;
  try {
    plain = isEcies(nk) ? await eciesDecrypt(nk, encrypted) : new Uint8Array(await subtle.decrypt(OAEP, nk, encrypted));
  } catch {
    throw new PayloadError(
      "key-decrypt",
      `${what} does not decrypt with the NK (${isEcies(nk) ? "ECIES P-256" : "RSA-OAEP-SHA1"})`,
    );
  }
  checkShareLength(`the decrypted ${what}`, plain.length);
  return plain;
}

/** Tenant/verifier: encryption of U or V to the NK (RSA-OAEP-SHA1, or ECIES for an EC NK). */
export async function encryptKeyShare(nk: CryptoKey, share: Uint8Array): Promise<Uint8Array> {
  checkShareLength("the key share", share.length);
  return isEcies(nk) ? await eciesEncrypt(nk, share) : new Uint8Array(await subtle.encrypt(OAEP, nk, share));
}

/** The `auth_tag` field: hex (either case) of 48 bytes. */
export function parseAuthTag(hex: string): Uint8Array {
  let bytes: Uint8Array;
  try {
    bytes = fromHex(hex);
  } catch {
    throw new PayloadError("auth-tag", "auth_tag is not hex");
  }
  if (bytes.length !== AUTH_TAG_BYTES) {
    throw new PayloadError("auth-tag", `auth_tag is ${bytes.length} bytes; expected ${AUTH_TAG_BYTES}`);
  }
  return bytes;
}

function hmacSha384(key: Uint8Array, msg: string): Uint8Array {
  return hmac(sha384, key, encoder.encode(msg));
}

/** HMAC-SHA384(K, uuid) as lowercase hex: the tenant's auth_tag. */
export function authTagFor(k: Uint8Array, uuid: string): string {
  return toHex(hmacSha384(k, uuid));
}

/** Does K belong to this agent? HMAC-SHA384(K, uuid) against the auth_tag, in constant time. */
export function keyMatchesAuthTag(k: Uint8Array, uuid: string, authTag: Uint8Array): boolean {
  const mac = hmacSha384(k, uuid);
  return sameSecret(mac, authTag);
}

/** U xor V; undefined when the lengths differ (rust-keylime's SymmKey::xor refuses them). */
export function xorShares(u: Uint8Array, v: Uint8Array): Uint8Array | undefined {
  if (u.length !== v.length) return undefined;
  return u.map((b, i) => b ^ v[i]!);
}

/** keys/verify: lowercase hex HMAC-SHA384(K, challenge). */
export function verifyHmac(k: Uint8Array, challenge: string): string {
  return toHex(hmacSha384(k, challenge));
}

function aesKey(k: Uint8Array, usage: "encrypt" | "decrypt"): Promise<CryptoKey> {
  checkShareLength("K", k.length);
  return subtle.importKey("raw", k, { name: "AES-GCM" }, false, [usage]);
}

/** Agent: AES-GCM decryption of `iv(16) ‖ ciphertext ‖ tag(16)` with K (AES-128 or AES-256 by K's length). */
export async function decryptPayload(k: Uint8Array, data: Uint8Array): Promise<Uint8Array> {
  if (data.length < PAYLOAD_IV_BYTES + PAYLOAD_TAG_BYTES) {
    throw new PayloadError(
      "payload-format",
      `payload is ${data.length} bytes; shorter than the IV and tag (${PAYLOAD_IV_BYTES + PAYLOAD_TAG_BYTES})`,
    );
  }
  const key = await aesKey(k, "decrypt");
  const iv = data.subarray(0, PAYLOAD_IV_BYTES);
  try {
    return new Uint8Array(
      await subtle.decrypt({ name: "AES-GCM", iv, tagLength: 128 }, key, data.subarray(PAYLOAD_IV_BYTES)),
    );
  } catch {
    throw new PayloadError("payload-decrypt", "payload does not decrypt with K (AES-GCM tag mismatch)");
  }
}

/** Tenant: `iv(16) ‖ AES-GCM_K(plaintext) ‖ tag(16)`, a random IV unless given. */
export async function encryptPayload(
  k: Uint8Array,
  plaintext: Uint8Array,
  iv: Uint8Array = new Uint8Array(randomBytes(PAYLOAD_IV_BYTES)),
): Promise<Uint8Array> {
  if (iv.length !== PAYLOAD_IV_BYTES) throw new PayloadError("payload-format", "the IV must be 16 bytes");
  const key = await aesKey(k, "encrypt");
  const sealed = new Uint8Array(await subtle.encrypt({ name: "AES-GCM", iv, tagLength: 128 }, key, plaintext));
  const out = new Uint8Array(iv.length + sealed.length);
  out.set(iv);
  out.set(sealed, iv.length);
  return out;
}

/** What the tenant makes: K and its two halves. V goes to the verifier, U to the agent. */
export interface BootstrapKey {
  k: Uint8Array;
  u: Uint8Array;
  v: Uint8Array;
}

/** Tenant: K and V random, U = K xor V (keylime/tenant.py). */
export function generateBootstrapKey(length = 32): BootstrapKey {
  checkShareLength("K", length);
  const k = new Uint8Array(randomBytes(length));
  const v = new Uint8Array(randomBytes(length));
  return { k, v, u: xorShares(k, v)! };
}

/** The body of POST keys/ukey as the tenant builds it. */
export interface UKeyRequest {
  auth_tag: string;
  encrypted_key: Uint8Array;
  payload?: Uint8Array;
}

/** Tenant: the keys/ukey body for an agent (and the V the verifier sends in keys/vkey, encrypted). */
export async function tenantKeyRequests(
  nk: CryptoKey,
  uuid: string,
  opts: { key?: BootstrapKey; payload?: Uint8Array } = {},
): Promise<{ key: BootstrapKey; ukey: UKeyRequest; vkey: { encrypted_key: Uint8Array } }> {
  const key = opts.key ?? generateBootstrapKey();
  const ukey: UKeyRequest = { auth_tag: authTagFor(key.k, uuid), encrypted_key: await encryptKeyShare(nk, key.u) };
  if (opts.payload) ukey.payload = await encryptPayload(key.k, opts.payload);
  return { key, ukey, vkey: { encrypted_key: await encryptKeyShare(nk, key.v) } };
}

/** A decrypted U with what came with it in keys/ukey. */
export interface UShare {
  share: Uint8Array;
  authTag: Uint8Array;
  /** The encrypted payload, still encrypted. */
  payload?: Uint8Array;
}

/** K, once a U and a V pair up, with the payload that came with that U. */
export interface DerivedKey {
  k: Uint8Array;
  payload?: Uint8Array;
}

/**
 * The agent's pairing of received halves (keys_handler.rs worker): U and V arrive in either order and maybe
 * more than once; every U is tried with every V and the first K whose HMAC over the uuid matches that U's
 * auth_tag wins. Pending halves are then dropped. K stays until a new pair derives another.
 */
export class KeyPairing {
  #u: UShare[] = [];
  #v: Uint8Array[] = [];
  #k: Uint8Array | undefined;

  constructor(readonly uuid: string) {}

  /** K, once derived (keys/verify answers from then on). */
  get key(): Uint8Array | undefined {
    return this.#k;
  }

  addU(u: UShare): DerivedKey | undefined {
    checkShareLength("U", u.share.length);
    push(this.#u, u);
    return this.#combine();
  }

  addV(v: Uint8Array): DerivedKey | undefined {
    checkShareLength("V", v.length);
    push(this.#v, v);
    return this.#combine();
  }

  #combine(): DerivedKey | undefined {
    for (const u of this.#u) {
      for (const v of this.#v) {
        const k = xorShares(u.share, v);
        if (k && keyMatchesAuthTag(k, this.uuid, u.authTag)) {
          this.#u = [];
          this.#v = [];
          this.#k = k;
          return u.payload ? { k, payload: u.payload } : { k };
        }
      }
    }
    return undefined;
  }
}

function push<T>(list: T[], x: T): void {
  list.push(x);
  if (list.length > MAX_PENDING_SHARES) list.shift();
}

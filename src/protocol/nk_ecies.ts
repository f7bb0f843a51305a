/**
 * ECIES for an EC P-256 NK without mTLS (../shared/spec/nk-certify.md, "Payload keys without mTLS"):
 * `ephemeral point (uncompressed, 65 bytes) ‖ iv (12 bytes) ‖ AES-256-GCM ciphertext ‖ tag (16 bytes)`,
 * the AES key HKDF-SHA256(ikm = ECDH shared x-coordinate, salt = empty, info = ECIES_INFO, 32 bytes).
 * WebCrypto only; payload.ts chooses between this and RSA-OAEP by the NK's key type.
 */
import { randomBytes, webcrypto } from "node:crypto";

const subtle = webcrypto.subtle;
type CryptoKey = webcrypto.CryptoKey;

export const ECIES_INFO = "keylime-ts nk ecies v1";
export const ECDH_P256 = { name: "ECDH", namedCurve: "P-256" } as const;
const POINT_BYTES = 65;
const IV_BYTES = 12;
const TAG_BYTES = 16;

async function aesKey(shared: ArrayBuffer, usage: "encrypt" | "decrypt"): Promise<CryptoKey> {
  const ikm = await subtle.importKey("raw", shared, "HKDF", false, ["deriveKey"]);
  return await subtle.deriveKey(
    { name: "HKDF", hash: "SHA-256", salt: new Uint8Array(0), info: new TextEncoder().encode(ECIES_INFO) },
    ikm,
    { name: "AES-GCM", length: 256 },
    false,
    [usage],
  );
}

/** Encrypt `plain` to the NK's ECDH P-256 public key. */
export async function eciesEncrypt(nk: CryptoKey, plain: Uint8Array): Promise<Uint8Array> {
  const eph = await subtle.generateKey(ECDH_P256, true, ["deriveBits"]) as CryptoKeyPair;
  const shared = await subtle.deriveBits({ name: "ECDH", public: nk }, eph.privateKey, 256);
  const point = new Uint8Array(await subtle.exportKey("raw", eph.publicKey));
  const iv = new Uint8Array(randomBytes(IV_BYTES));
  const sealed = new Uint8Array(
    await subtle.encrypt({ name: "AES-GCM", iv, tagLength: 128 }, await aesKey(shared, "encrypt"), plain),
  );
  const out = new Uint8Array(point.length + iv.length + sealed.length);
  out.set(point);
  out.set(iv, point.length);
  out.set(sealed, point.length + iv.length);
  return out;
}

/** Decrypt with the NK's ECDH P-256 private key; throws (without detail) when the bytes do not decrypt. */
export async function eciesDecrypt(nk: CryptoKey, sealed: Uint8Array): Promise<Uint8Array> {
  if (sealed.length < POINT_BYTES + IV_BYTES + TAG_BYTES) {
    throw new Error(`${sealed.length} bytes is shorter than point, iv and tag (${POINT_BYTES + IV_BYTES + TAG_BYTES})`);
  }
  const point = await subtle.importKey("raw", sealed.subarray(0, POINT_BYTES), ECDH_P256, false, []);
  const shared = await subtle.deriveBits({ name: "ECDH", public: point }, nk, 256);
  const iv = sealed.subarray(POINT_BYTES, POINT_BYTES + IV_BYTES);
  const body = sealed.subarray(POINT_BYTES + IV_BYTES);
  return new Uint8Array(
    await subtle.decrypt({ name: "AES-GCM", iv, tagLength: 128 }, await aesKey(shared, "decrypt"), body),
  );
}

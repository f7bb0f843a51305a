/**
 * The TPM's key derivation functions (Part 1 §11.4.10): KDFa (SP 800-108 counter mode with HMAC)
 * and KDFe (SP 800-56A concatenation KDF), and the AES-CFB mode the TPM uses for parameter
 * encryption, credential and private-area protection (Part 1 §11.4.6; WebCrypto has no CFB).
 */
import { type Cipher, createCipheriv } from "node:crypto";
import { concat, hashFor, hmacOf } from "./crypto.ts";
import { DIGEST_SIZE } from "./constants.ts";
import { MarshalError } from "./errors.ts";
import { u32be } from "./bytes.ts";

const encoder = new TextEncoder();

/** A label as the TPM spells it: ASCII, with one terminating NUL (added unless already there). */
export function labelBytes(label: string | Uint8Array): Uint8Array {
  const b = typeof label === "string" ? encoder.encode(label) : label;
  return b.length > 0 && b[b.length - 1] === 0 ? b : concat(b, Uint8Array.of(0));
}

function digestSize(alg: number): number {
  const n = DIGEST_SIZE[alg];
  if (!n) throw new MarshalError(`hash algorithm 0x${alg.toString(16)} has no known digest size`, "value");
  return n;
}

/**
 * The counter-mode loop both KDFs share: K_i = block(u32 i) for i = 1, 2, ... until `bits` are
 * produced; output = leftmost bits. When bits is not a multiple of 8, the excess high bits of the
 * first byte are cleared.
 */
function counterKdf(hashAlg: number, bits: number, block: (counter: Uint8Array) => Uint8Array): Uint8Array {
  const bytes = Math.ceil(bits / 8);
  const size = digestSize(hashAlg);
  const out = new Uint8Array(Math.ceil(bytes / size) * size);
  for (let i = 1, at = 0; at < bytes; i++, at += size) out.set(block(u32be(i)), at);
  const result = out.slice(0, bytes);
  if (bits % 8) result[0]! &= (1 << (bits % 8)) - 1;
  return result;
}

/**
 * KDFa(hashAlg, key, label, contextU, contextV, bits):
 *   K_i = HMAC(key, u32 i ‖ label ‖ 00 ‖ contextU ‖ contextV ‖ u32 bits).
 * The NUL is appended only when the label does not end in one (ms-tpm-20-ref CryptKDFa).
 */
export function kdfa(
  hashAlg: number,
  key: Uint8Array,
  label: string | Uint8Array,
  contextU: Uint8Array,
  contextV: Uint8Array,
  bits: number,
): Uint8Array {
  const fixed = concat(labelBytes(label), contextU, contextV, u32be(bits));
  return counterKdf(hashAlg, bits, (i) => hmacOf(hashAlg, key, i, fixed));
}

/**
 * KDFe(hashAlg, Z, label, partyU, partyV, bits):
 *   K_i = H(u32 i ‖ Z ‖ label ‖ 00 ‖ partyUInfo ‖ partyVInfo).
 * Z is the x-coordinate of the shared point, padded to the curve's field size by the caller.
 */
export function kdfe(
  hashAlg: number,
  z: Uint8Array,
  label: string | Uint8Array,
  partyUInfo: Uint8Array,
  partyVInfo: Uint8Array,
  bits: number,
): Uint8Array {
  const hash = hashFor(hashAlg);
  const other = concat(labelBytes(label), partyUInfo, partyVInfo);
  return counterKdf(hashAlg, bits, (i) => hash(concat(i, z, other)));
}

const AES_BLOCK = 16;
const AES_KEY_BYTES = new Set([16, 24, 32]);

/**
 * The AES block function E(key, ·) as node:crypto's ECB with no padding: every runtime has it (Deno's
 * node:crypto has no CFB), and CFB needs nothing more.
 */
function blockCipher(key: Uint8Array, iv: Uint8Array): Cipher {
  if (!AES_KEY_BYTES.has(key.length)) {
    throw new MarshalError(`AES-CFB: a key of ${key.length} bytes (AES takes 16, 24 or 32)`, "value", "encode");
  }
  if (iv.length !== AES_BLOCK) {
    throw new MarshalError(`AES-CFB: an IV of ${iv.length} bytes (it takes 16)`, "value", "encode");
  }
  return createCipheriv(`aes-${key.length * 8}-ecb`, key, null).setAutoPadding(false);
}

/**
 * AES-CFB128 encryption with no padding (SP 800-38A §6.3; AES-128/192/256 by key length): each ciphertext
 * block is the next block's input, so the blocks go through E one at a time.
 */
export function aesCfbEncrypt(key: Uint8Array, iv: Uint8Array, data: Uint8Array): Uint8Array {
  const e = blockCipher(key, iv);
  const out = new Uint8Array(data.length);
  let input: Uint8Array = iv;
  for (let at = 0; at < data.length; at += AES_BLOCK) {
    const stream = e.update(input);
    const end = Math.min(at + AES_BLOCK, data.length);
    for (let i = at; i < end; i++) out[i] = data[i]! ^ stream[i - at]!;
    input = out.subarray(at, end);
  }
  return out;
}

/** AES-CFB128 decryption: the inputs to E are the IV and the ciphertext, all known, so one call does them. */
export function aesCfbDecrypt(key: Uint8Array, iv: Uint8Array, data: Uint8Array): Uint8Array {
  const e = blockCipher(key, iv);
  if (data.length === 0) return new Uint8Array(0);
  const blocks = Math.ceil(data.length / AES_BLOCK);
  const inputs = new Uint8Array(blocks * AES_BLOCK);
  inputs.set(iv);
  inputs.set(data.subarray(0, (blocks - 1) * AES_BLOCK), AES_BLOCK);
  const stream = e.update(inputs);
  const out = new Uint8Array(data.length);
  for (let i = 0; i < data.length; i++) out[i] = data[i]! ^ stream[i]!;
  return out;
}

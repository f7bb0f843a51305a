/** Big-endian integers as bytes, padding, and comparison: the small byte helpers every layer needs. */
import { timingSafeEqual } from "node:crypto";

export function u16be(v: number): Uint8Array {
  return Uint8Array.of(v >>> 8, v & 0xff);
}

export function u32be(v: number): Uint8Array {
  return Uint8Array.of(v >>> 24, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff);
}

export function u64be(v: bigint): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, v);
  return out;
}

/** `b` left-padded with zeros to `n` bytes (ECC coordinates, field elements); longer input is returned as is. */
export function leftPad(b: Uint8Array, n: number): Uint8Array {
  if (b.length >= n) return b;
  const out = new Uint8Array(n);
  out.set(b, n - b.length);
  return out;
}

/**
 * Byte equality for public values (Names, digests, stored keys and certificates); use sameSecret for secrets.
 * A plain loop: every() calls back once per byte, which the registrar feels on kilobyte certificates.
 */
export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Constant-time byte equality, for secrets (authValues, HMACs, integrity values); only the length leaks. */
export function sameSecret(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

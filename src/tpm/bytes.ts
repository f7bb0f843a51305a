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

/** Byte equality for public values (Names, digests); use sameSecret for secrets. */
export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** Constant-time byte equality, for secrets (authValues, HMACs, integrity values); only the length leaks. */
export function sameSecret(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * Deterministic ECC keys for the NIST curves from a KdfStream (spec/tpm.md §5: a primary key is a
 * function of (hierarchy seed, template)). The private scalar comes from the stream; the public
 * point is computed by node:crypto (native point multiplication), never here. The curve constants
 * are here for the scalar's range and for tests that check points lie on the curve.
 */
import { Buffer } from "node:buffer";
import { createPrivateKey, createPublicKey, type JsonWebKey } from "node:crypto";
import { TPM_ECC_CURVE } from "../src/tpm/constants.ts";
import type { KdfStream } from "./drbg.ts";
import { fromBase64url, fromHex, toBase64url, toHex } from "../src/util/encoding.ts";
import { concat } from "../src/tpm/crypto.ts";

export interface EccCurve {
  /** OpenSSL's curve name (createECDH, generateKeyPair's namedCurve). */
  readonly ecdhName: string;
  /** JWK "crv". */
  readonly crv: string;
  /** Field element and scalar size in bytes (the TPM's TPM2B_ECC_PARAMETER size). */
  readonly bytes: number;
  /** Field prime. */
  readonly p: bigint;
  /** Curve coefficient b of y² = x³ - 3x + b. */
  readonly b: bigint;
  /** Order of the base point. */
  readonly n: bigint;
  /** DER of a PKCS#8 PrivateKeyInfo holding only the scalar, up to where the scalar's bytes go (see below). */
  readonly pkcs8Prefix: string;
}

/** SP 800-186 §3.2.1 domain parameters (a = -3 for all three). */
export const ECC_CURVES: Readonly<Record<number, EccCurve>> = {
  [TPM_ECC_CURVE.NIST_P256]: {
    ecdhName: "prime256v1",
    crv: "P-256",
    bytes: 32,
    p: 0xffffffff00000001000000000000000000000000ffffffffffffffffffffffffn,
    b: 0x5ac635d8aa3a93e7b3ebbd55769886bc651d06b0cc53b0f63bce3c3e27d2604bn,
    n: 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n,
    pkcs8Prefix: "3041020100301306072a8648ce3d020106082a8648ce3d030107042730250201010420",
  },
  [TPM_ECC_CURVE.NIST_P384]: {
    ecdhName: "secp384r1",
    crv: "P-384",
    bytes: 48,
    p: 0xfffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffeffffffff0000000000000000ffffffffn,
    b: 0xb3312fa7e23ee7e4988e056be3f82d19181d9c6efe8141120314088f5013875ac656398d8a2ed19d2a85c8edd3ec2aefn,
    n: 0xffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973n,
    pkcs8Prefix: "304e020100301006072a8648ce3d020106052b81040022043730350201010430",
  },
  [TPM_ECC_CURVE.NIST_P521]: {
    ecdhName: "secp521r1",
    crv: "P-521",
    bytes: 66,
    p: (1n << 521n) - 1n,
    b: 0x0051953eb9618e1c9a1f929a21a0b68540eea2da725b99b315f3b8b489918ef109e156193951ec7e937b1652c0bd3bb1bf073573df883d2c34f1ef451fd46b503f00n,
    n: 0x01fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffa51868783bf2f966b7fcc0148f709a5d03bb5c9b8899c47aebb6fb71e91386409n,
    pkcs8Prefix: "3060020100301006072a8648ce3d020106052b81040023044930470201010442",
  },
};

/** The curve's parameters; throws for curves the simulator does not implement. */
export function eccCurve(curveId: number): EccCurve {
  const c = ECC_CURVES[curveId];
  if (!c) throw new RangeError(`ECC curve 0x${curveId.toString(16).padStart(4, "0")} is not supported`);
  return c;
}

const toBigInt = (b: Uint8Array) => (b.length === 0 ? 0n : BigInt("0x" + toHex(b)));

function toBytes(x: bigint, length: number): Uint8Array {
  return fromHex(x.toString(16).padStart(length * 2, "0"));
}

/**
 * A private scalar d in [1, n-1] by rejection sampling (FIPS 186-5 A.2.2): draw len(n) bits as c,
 * redraw while c > n-2, d = c + 1. Uniform, and a redraw is rare (P-256: 2^-32; P-384, P-521:
 * far less). Returned big-endian, padded to the curve's size (66 bytes for P-521).
 */
export function deriveEccScalar(stream: KdfStream, curveId: number): Uint8Array {
  const { n, bytes } = eccCurve(curveId);
  const nBits = n.toString(2).length;
  const mask = nBits % 8 === 0 ? 0xff : (1 << (nBits % 8)) - 1;
  for (;;) {
    const raw = stream.next(Math.ceil(nBits / 8));
    raw[0]! &= mask;
    const c = toBigInt(raw);
    if (c <= n - 2n) return toBytes(c + 1n, bytes);
  }
}

function checkScalar(curve: EccCurve, d: Uint8Array): void {
  const v = toBigInt(d);
  if (v < 1n || v >= curve.n) throw new RangeError(`ECC private key is not in [1, n-1] for ${curve.crv}`);
}

/**
 * The public point d·G, each coordinate padded to the field size (as TPMS_ECC_POINT carries it).
 *
 * Computed by node:crypto from a PKCS#8 key that holds only the scalar: createECDH().setPrivateKey()
 * would be the direct way, but Deno's node:crypto has no secp521r1 ECDH, while both runtimes import
 * PKCS#8 for all three curves and derive the public key. The DER is fixed except for the scalar
 * (RFC 5208 PrivateKeyInfo { version 0, { id-ecPublicKey, namedCurve }, OCTET STRING { RFC 5915
 * ECPrivateKey { version 1, OCTET STRING d } } }, d at the order's length), so it is a constant
 * prefix per curve rather than an ASN.1 encoder.
 */
export function eccPublicFromScalar(curveId: number, d: Uint8Array): { x: Uint8Array; y: Uint8Array } {
  const curve = eccCurve(curveId);
  checkScalar(curve, d);
  const der = Buffer.from(concat(fromHex(curve.pkcs8Prefix), toBytes(toBigInt(d), curve.bytes)));
  const jwk = createPublicKey(createPrivateKey({ key: der, format: "der", type: "pkcs8" })).export({ format: "jwk" });
  if (jwk.crv !== curve.crv || typeof jwk.x !== "string" || typeof jwk.y !== "string") {
    throw new Error(`node:crypto did not return a ${curve.crv} public key`);
  }
  const coord = (v: string) => toBytes(toBigInt(fromBase64url(v)), curve.bytes);
  return { x: coord(jwk.x), y: coord(jwk.y) };
}

/** The private key as a JWK for node:crypto createPrivateKey({ key, format: "jwk" }) (RFC 7518 §6.2). */
export function eccJwk(curveId: number, d: Uint8Array, point?: { x: Uint8Array; y: Uint8Array }): JsonWebKey {
  const curve = eccCurve(curveId);
  const { x, y } = point ?? eccPublicFromScalar(curveId, d);
  // RFC 7518 §6.2.2.1: "d" is padded to the order's length, x and y to the field's.
  const b64 = (b: Uint8Array) => toBase64url(toBytes(toBigInt(b), curve.bytes));
  return { kty: "EC", crv: curve.crv, d: b64(d), x: b64(x), y: b64(y) };
}

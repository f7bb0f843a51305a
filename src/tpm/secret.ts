/**
 * Secret sharing with a TPM key (Part 1 §11.4.10, ms-tpm-20-ref CryptUtil.c CryptSecretEncrypt):
 * how a caller gives the TPM a seed only that key can recover. Used with label "SECRET" for session
 * salts and "IDENTITY" for credentials.
 *   RSA: seed = random(digestSize(nameAlg)); secret = RSA-OAEP(nameAlg, MGF1 nameAlg, label ‖ 00, seed)
 *   ECC: ephemeral Q_e; Z = (d_e · Q_key).x; seed = KDFe(nameAlg, Z, label, Q_e.x, Q_key.x, digestBits);
 *        secret = TPMS_ECC_POINT(Q_e)
 */
import { constants, createECDH, type KeyObject, privateDecrypt, publicEncrypt, randomBytes } from "node:crypto";
import { DIGEST_SIZE, TPM_ALG, TPM_ECC_CURVE, TPM_RC } from "./constants.ts";
import { algName, NODE_HASH, publicKeyOf } from "./crypto.ts";
import { MarshalError, TpmLibraryError } from "./errors.ts";
import { kdfe } from "./kdf.ts";
import { decode, encode } from "./marshal.ts";
import {
  publicEcc,
  TPMS_ECC_POINT,
  type TPMS_ECC_POINT as EccPoint,
  type TPMT_PUBLIC,
  uniqueEcc,
  uniqueRsa,
} from "./structures.ts";
import { leftPad } from "./bytes.ts";
import { fromBase64url } from "../util/encoding.ts";

/** Node's curve names and field sizes for the TPM curves this library supports. */
export const ECDH_CURVES: Readonly<Record<number, { name: string; bytes: number }>> = {
  [TPM_ECC_CURVE.NIST_P256]: { name: "prime256v1", bytes: 32 },
  [TPM_ECC_CURVE.NIST_P384]: { name: "secp384r1", bytes: 48 },
  [TPM_ECC_CURVE.NIST_P521]: { name: "secp521r1", bytes: 66 },
};

export interface SharedSecret {
  /** The seed both sides now know. */
  readonly seed: Uint8Array;
  /** What goes to the TPM as TPM2B_ENCRYPTED_SECRET contents. */
  readonly encryptedSecret: Uint8Array;
}

/**
 * Encrypt a fresh seed to `key` with `label`. `ephemeralPrivate` (ECC) and `seed` (RSA) are for known-answer
 * tests; `publicKey`: publicKeyOf(key) when the caller made it already (it is not cheap).
 */
export function secretEncrypt(
  key: TPMT_PUBLIC,
  label: string,
  fixed: { seed?: Uint8Array; ephemeralPrivate?: Uint8Array } = {},
  publicKey?: KeyObject,
): SharedSecret {
  const digestSize = DIGEST_SIZE[key.nameAlg];
  const oaepHash = NODE_HASH[key.nameAlg];
  if (!digestSize || !oaepHash) {
    throw new MarshalError(`key nameAlg ${algName(key.nameAlg)} cannot protect a secret`, "value");
  }
  if (key.type === TPM_ALG.RSA) {
    const seed = fixed.seed ?? new Uint8Array(randomBytes(digestSize));
    const encryptedSecret = publicEncrypt(
      {
        key: publicKey ?? publicKeyOf(key),
        padding: constants.RSA_PKCS1_OAEP_PADDING,
        oaepHash,
        oaepLabel: Buffer.from(label + "\0", "ascii"),
      },
      seed,
    );
    return { seed, encryptedSecret: new Uint8Array(encryptedSecret) };
  }
  if (key.type === TPM_ALG.ECC) {
    const { curveID } = publicEcc(key);
    const curve = ECDH_CURVES[curveID];
    if (!curve) throw new MarshalError(`ECC curve 0x${curveID.toString(16)} is not supported`, "value");
    const point = uniqueEcc(key);
    const ecdh = createECDH(curve.name);
    if (fixed.ephemeralPrivate) ecdh.setPrivateKey(fixed.ephemeralPrivate);
    else ecdh.generateKeys();
    const qe = ecdh.getPublicKey(); // 04 ‖ x ‖ y
    const qkx = leftPad(point.x, curve.bytes);
    const qk = Buffer.concat([Buffer.of(4), qkx, leftPad(point.y, curve.bytes)]);
    const z = leftPad(new Uint8Array(ecdh.computeSecret(qk)), curve.bytes);
    const ex = new Uint8Array(qe.subarray(1, 1 + curve.bytes));
    const ey = new Uint8Array(qe.subarray(1 + curve.bytes));
    const seed = kdfe(key.nameAlg, z, label, ex, qkx, digestSize * 8);
    return { seed, encryptedSecret: encode(TPMS_ECC_POINT, { x: ex, y: ey }) };
  }
  throw new MarshalError(`a ${algName(key.type)} key cannot protect a secret`, "value");
}

/** A secret that the key cannot decrypt; `rc` is what a TPM answers (Part 1 §11.4.10). */
export class SecretError extends TpmLibraryError {
  readonly code = "ERR_TPM_SECRET";
  constructor(message: string, readonly rc: number) {
    super(message);
    this.name = "SecretError";
  }
}

/**
 * The TPM side of secretEncrypt (ms-tpm-20-ref CryptSecretDecrypt): recover the seed from
 * `encryptedSecret` with the private part of `key`.
 */
export function secretDecrypt(
  privateKey: KeyObject,
  key: TPMT_PUBLIC,
  label: string,
  encryptedSecret: Uint8Array,
): Uint8Array {
  const digestSize = DIGEST_SIZE[key.nameAlg];
  const oaepHash = NODE_HASH[key.nameAlg];
  if (!digestSize || !oaepHash) throw new SecretError(`nameAlg ${algName(key.nameAlg)} is not supported`, TPM_RC.HASH);
  if (key.type === TPM_ALG.RSA) {
    const modulus = uniqueRsa(key).length;
    if (encryptedSecret.length !== modulus) {
      throw new SecretError(
        `the ${label} secret is ${encryptedSecret.length} bytes; the modulus is ${modulus}`,
        TPM_RC.SIZE,
      );
    }
    let seed: Uint8Array;
    try {
      seed = new Uint8Array(privateDecrypt(
        { key: privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash, oaepLabel: Buffer.from(label + "\0") },
        encryptedSecret,
      ));
    } catch {
      throw new SecretError(
        `the ${label} secret does not decrypt with this key (RSA-OAEP, label ${label}): altered, or for another key`,
        TPM_RC.VALUE,
      );
    }
    if (seed.length > digestSize) throw new SecretError(`the ${label} seed is longer than ${digestSize}`, TPM_RC.VALUE);
    return seed;
  }
  if (key.type === TPM_ALG.ECC) {
    const { curveID } = publicEcc(key);
    const curve = ECDH_CURVES[curveID];
    if (!curve) throw new SecretError(`curve 0x${curveID.toString(16)} is not supported`, TPM_RC.CURVE);
    let qe: EccPoint;
    try {
      qe = decode(TPMS_ECC_POINT, encryptedSecret);
    } catch (e) {
      const m = MarshalError.wrap(e);
      throw new SecretError(
        `the ${label} secret is not a TPMS_ECC_POINT: ${m.message}`,
        m.fault === "insufficient" ? TPM_RC.INSUFFICIENT : TPM_RC.SIZE,
      );
    }
    if (qe.x.length > curve.bytes || qe.y.length > curve.bytes) {
      throw new SecretError(
        `the ${label} secret has a coordinate longer than the ${curve.bytes}-byte field`,
        TPM_RC.ECC_POINT,
      );
    }
    const d = privateKey.export({ format: "jwk" }).d;
    if (typeof d !== "string") throw new SecretError("the key has no private scalar", TPM_RC.KEY);
    const ecdh = createECDH(curve.name);
    ecdh.setPrivateKey(fromBase64url(d));
    let z: Uint8Array;
    try {
      const q = Buffer.concat([Buffer.of(4), leftPad(qe.x, curve.bytes), leftPad(qe.y, curve.bytes)]);
      z = leftPad(new Uint8Array(ecdh.computeSecret(q)), curve.bytes);
    } catch {
      throw new SecretError(`the ${label} secret is not a point on the key's curve`, TPM_RC.ECC_POINT);
    }
    // Both x values as marshalled, as CryptSecretDecrypt passes them to KDFe.
    return kdfe(key.nameAlg, z, label, qe.x, uniqueEcc(key).x, digestSize * 8);
  }
  throw new SecretError(`a ${algName(key.type)} key cannot decrypt a secret`, TPM_RC.KEY);
}

/**
 * Credential protection (Part 1 §24; ms-tpm-20-ref Object_spt.c SecretToCredential, ProduceOuterWrap,
 * ComputeOuterIntegrity, CredentialToSecret; CryptUtil.c CryptSecretEncrypt/CryptSecretDecrypt).
 *
 * makeCredential is a software TPM2_MakeCredential (what a registrar runs). recoverSeed and
 * unwrapCredential are the TPM's half of TPM2_ActivateCredential, given the EK private key: for tests
 * and for the embedded simulator.
 *
 *   seed    RSA EK: random(digestSize), secret = RSA-OAEP(nameAlg, MGF1 nameAlg, label "IDENTITY\0", seed)
 *           ECC EK: Z = (d_e · Q_EK).x, seed = KDFe(nameAlg, Z, "IDENTITY", Q_e.x, Q_EK.x, digestBits),
 *                   secret = TPMS_ECC_POINT(Q_e)
 *   symKey    = KDFa(nameAlg, seed, "STORAGE", objectName, "", EK symmetric keyBits)
 *   encId     = AES-CFB(symKey, IV 0, TPM2B_DIGEST(credential))
 *   integrity = HMAC_nameAlg(KDFa(nameAlg, seed, "INTEGRITY", "", "", digestBits), encId ‖ objectName)
 *   credentialBlob (TPM2B_ID_OBJECT buffer) = TPM2B_DIGEST(integrity) ‖ encId
 */
import { createECDH, createPublicKey, type KeyObject } from "node:crypto";
import { DIGEST_SIZE, hex, TPM_ALG, TPM_ECC_CURVE, TPM_RC } from "./constants.ts";
import { algName, concat, hmacOf, NODE_HASH, publicKeyOf, sameKey } from "./crypto.ts";
import { MarshalError, TpmLibraryError } from "./errors.ts";
import { aesCfbDecrypt, aesCfbEncrypt, kdfa } from "./kdf.ts";
import { secretDecrypt, secretEncrypt, SecretError } from "./secret.ts";
import { decode, encode, Reader } from "./marshal.ts";
import {
  publicAsym,
  publicEcc,
  symObjectKeyBits,
  symObjectMode,
  TPM2B_DIGEST,
  TPMA_OBJECT,
  type TPMT_PUBLIC,
} from "./structures.ts";
import { toHex } from "../util/encoding.ts";
import { sameSecret } from "./bytes.ts";

/**
 * Credential protection failed. `rc` is the response code a TPM gives for the same fault, so the
 * simulator can answer TPM2_MakeCredential / TPM2_ActivateCredential with it.
 */
export class CredentialError extends TpmLibraryError {
  readonly code: string = "ERR_TPM_CREDENTIAL";
  readonly rc: number;
  constructor(message: string, rc: number, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "CredentialError";
    this.rc = rc;
  }
}

/** The credentialBlob's integrity HMAC does not match: altered blob, or another Name, EK or seed. */
export class CredentialIntegrityError extends CredentialError {
  override readonly code = "ERR_TPM_INTEGRITY";
  constructor(message: string) {
    super(message, TPM_RC.INTEGRITY);
    this.name = "CredentialIntegrityError";
  }
}

export interface MakeCredentialOptions {
  /** RSA EK only: the seed to encrypt (digest size of the EK nameAlg), for known-answer tests. */
  seed?: Uint8Array;
  /** ECC EK only: the ephemeral private scalar (big-endian), for known-answer tests. */
  ephemeralPrivate?: Uint8Array;
  /** publicKeyOf(ekPublic), when the caller made it already: it is not cheap (the registrar checks it first). */
  ekKey?: KeyObject;
}

export interface MadeCredential {
  /** The TPM2B_ID_OBJECT buffer (without its size): TPM2B_DIGEST(integrity) ‖ encIdentity. */
  credentialBlob: Uint8Array;
  /** The TPM2B_ENCRYPTED_SECRET buffer (without its size). */
  secret: Uint8Array;
}

const LABEL_IDENTITY = "IDENTITY";
const EMPTY = new Uint8Array(0);
const AES_BLOCK = 16;

/** node:crypto ECDH curve names and field sizes. */
const CURVES: Readonly<Record<number, { name: string; jwk: string; bytes: number; label: string }>> = {
  [TPM_ECC_CURVE.NIST_P256]: { name: "prime256v1", jwk: "P-256", bytes: 32, label: "NIST P-256" },
  [TPM_ECC_CURVE.NIST_P384]: { name: "secp384r1", jwk: "P-384", bytes: 48, label: "NIST P-384" },
  [TPM_ECC_CURVE.NIST_P521]: { name: "secp521r1", jwk: "P-521", bytes: 66, label: "NIST P-521" },
};

interface Protector {
  readonly nameAlg: number;
  readonly digestSize: number;
  readonly keyBits: number;
}

/** Check that `ek` can protect a credential, as TPM2_MakeCredential does (Part 3 §12.6). */
function checkProtector(ek: TPMT_PUBLIC): Protector {
  if (ek.type !== TPM_ALG.RSA && ek.type !== TPM_ALG.ECC) {
    throw new CredentialError(
      `EK type ${algName(ek.type)} cannot protect a credential: it must be RSA or ECC`,
      TPM_RC.TYPE,
    );
  }
  const digestSize = DIGEST_SIZE[ek.nameAlg];
  if (!digestSize || !NODE_HASH[ek.nameAlg]) {
    throw new CredentialError(
      `EK nameAlg ${algName(ek.nameAlg)} is not supported for credential protection`,
      TPM_RC.HASH,
    );
  }
  if (!TPMA_OBJECT.has(ek.objectAttributes, "restricted") || !TPMA_OBJECT.has(ek.objectAttributes, "decrypt")) {
    throw new CredentialError(
      `EK must be a restricted decryption key, but its attributes 0x${
        ek.objectAttributes.toString(16).padStart(8, "0")
      } are [${TPMA_OBJECT.names(ek.objectAttributes).join(", ")}]`,
      TPM_RC.ATTRIBUTES,
    );
  }
  const sym = publicAsym(ek).symmetric;
  const none = sym.algorithm === TPM_ALG.NULL;
  const keyBits = none ? 0 : symObjectKeyBits(sym);
  const mode = none ? TPM_ALG.NULL : symObjectMode(sym);
  if (sym.algorithm !== TPM_ALG.AES || mode !== TPM_ALG.CFB || ![128, 192, 256].includes(keyBits)) {
    const what = none ? "NULL" : `${algName(sym.algorithm)}-${String(keyBits)}-${algName(mode)}`;
    throw new CredentialError(
      `EK symmetric algorithm must be AES-CFB (128, 192 or 256 bits), not ${what}`,
      TPM_RC.SYMMETRIC,
    );
  }
  if (ek.type === TPM_ALG.ECC) curveOf(ek);
  return { nameAlg: ek.nameAlg, digestSize, keyBits };
}

function curveOf(ek: TPMT_PUBLIC) {
  const { curveID } = publicEcc(ek);
  const curve = CURVES[curveID];
  if (!curve) throw new CredentialError(`EK curve ${hex(curveID)} is not supported`, TPM_RC.CURVE);
  return curve;
}

/** A Name of an object: nameAlg ‖ H_nameAlg(public area). */
function checkName(name: Uint8Array): void {
  const alg = name.length >= 2 ? (name[0]! << 8) | name[1]! : undefined;
  const size = alg === undefined ? undefined : DIGEST_SIZE[alg];
  if (size === undefined || name.length !== 2 + size) {
    throw new CredentialError(
      `objectName ${toHex(name) || "(empty)"} is not nameAlg ‖ digest (${name.length} bytes)`,
      TPM_RC.SIZE,
    );
  }
}

function checkInputs(ek: TPMT_PUBLIC, objectName: Uint8Array, credential: Uint8Array): Protector {
  const p = checkProtector(ek);
  checkName(objectName);
  if (credential.length > p.digestSize) {
    throw new CredentialError(
      `credential is ${credential.length} bytes; the EK nameAlg ${algName(p.nameAlg)} allows at most ${p.digestSize}`,
      TPM_RC.SIZE,
    );
  }
  return p;
}

/**
 * CryptSecretEncrypt with label "IDENTITY" (secret.ts, shared with session salts). The inputs are
 * checked here first, so every failure is a CredentialError with the TPM's response code.
 */
function encryptSeed(
  ek: TPMT_PUBLIC,
  p: Protector,
  opts: MakeCredentialOptions,
): { seed: Uint8Array; secret: Uint8Array } {
  const ecc = ek.type === TPM_ALG.ECC;
  if (ecc && opts.seed) {
    throw new CredentialError(
      "an ECC EK derives the seed by ECDH; pass ephemeralPrivate instead of seed",
      TPM_RC.VALUE,
    );
  }
  if (!ecc && opts.ephemeralPrivate) {
    throw new CredentialError("ephemeralPrivate applies to an ECC EK only", TPM_RC.VALUE);
  }
  if (opts.seed && opts.seed.length !== p.digestSize) {
    throw new CredentialError(
      `seed must be ${p.digestSize} bytes (digest size of ${algName(p.nameAlg)}), not ${opts.seed.length}`,
      TPM_RC.SIZE,
    );
  }
  let publicKey;
  try {
    publicKey = opts.ekKey ?? publicKeyOf(ek); // node:crypto refuses an empty modulus or a point off the curve
  } catch (e) {
    const what = ecc ? `EK public point is not on ${curveOf(ek).label}` : "EK public key is not a usable RSA key";
    throw new CredentialError(what, ecc ? TPM_RC.ECC_POINT : TPM_RC.KEY, { cause: e });
  }
  if (opts.ephemeralPrivate) {
    const curve = curveOf(ek);
    try {
      createECDH(curve.name).setPrivateKey(opts.ephemeralPrivate);
    } catch (e) {
      throw new CredentialError(`ephemeralPrivate is not a valid ${curve.label} private key`, TPM_RC.VALUE, {
        cause: e,
      });
    }
  }
  const fixed = {
    ...(opts.seed ? { seed: opts.seed } : {}),
    ...(opts.ephemeralPrivate ? { ephemeralPrivate: opts.ephemeralPrivate } : {}),
  };
  const { seed, encryptedSecret } = secretEncrypt(ek, LABEL_IDENTITY, fixed, publicKey);
  return { seed, secret: encryptedSecret };
}

/**
 * The TPM2B_ID_OBJECT buffer for a known seed (SecretToCredential). Deterministic: the RSA offline
 * vector and the simulator's TPM2_MakeCredential use it directly.
 */
export function wrapCredential(
  ekPublic: TPMT_PUBLIC,
  seed: Uint8Array,
  objectName: Uint8Array,
  credential: Uint8Array,
): Uint8Array {
  const p = checkInputs(ekPublic, objectName, credential);
  const symKey = kdfa(p.nameAlg, seed, "STORAGE", objectName, EMPTY, p.keyBits);
  const encIdentity = aesCfbEncrypt(symKey, new Uint8Array(AES_BLOCK), encode(TPM2B_DIGEST, credential));
  const integrity = outerIntegrity(p, seed, encIdentity, objectName);
  return concat(encode(TPM2B_DIGEST, integrity), encIdentity);
}

function outerIntegrity(p: Protector, seed: Uint8Array, encIdentity: Uint8Array, name: Uint8Array): Uint8Array {
  const hmacKey = kdfa(p.nameAlg, seed, "INTEGRITY", EMPTY, EMPTY, p.digestSize * 8);
  return hmacOf(p.nameAlg, hmacKey, encIdentity, name);
}

/**
 * Software TPM2_MakeCredential (Part 3 §12.6): protect `credential` (at most the EK nameAlg's digest
 * size) so that only the TPM holding `ekPublic`'s private key, with an object named `objectName`
 * loaded, can recover it with TPM2_ActivateCredential.
 */
export function makeCredential(
  ekPublic: TPMT_PUBLIC,
  objectName: Uint8Array,
  credential: Uint8Array,
  opts: MakeCredentialOptions = {},
): Promise<MadeCredential> {
  // A Promise by contract, so a WebCrypto-only runtime can encrypt asynchronously; errors reject it.
  return new Promise((resolve) => {
    const p = checkInputs(ekPublic, objectName, credential);
    const { seed, secret } = encryptSeed(ekPublic, p, opts);
    resolve({ credentialBlob: wrapCredential(ekPublic, seed, objectName, credential), secret });
  });
}

/**
 * The TPM side of the seed exchange (CryptSecretDecrypt with label "IDENTITY"): recover the seed from
 * a TPM2B_ENCRYPTED_SECRET buffer with the EK private key.
 */
export function recoverSeed(ekPrivate: KeyObject, ekPublic: TPMT_PUBLIC, secret: Uint8Array): Uint8Array {
  checkProtector(ekPublic);
  if (ekPrivate.type !== "private") {
    throw new CredentialError(`ekPrivate must be a private key, not a ${ekPrivate.type} key`, TPM_RC.KEY);
  }
  if (!sameKey(createPublicKey(ekPrivate), publicKeyOf(ekPublic))) {
    throw new CredentialError("ekPrivate is not the private key of ekPublic", TPM_RC.KEY);
  }
  try {
    return secretDecrypt(ekPrivate, ekPublic, LABEL_IDENTITY, secret);
  } catch (e) {
    if (e instanceof SecretError) throw new CredentialError(e.message, e.rc, { cause: e });
    throw e;
  }
}

/**
 * The TPM side of TPM2_ActivateCredential after the seed is known (CredentialToSecret): check the
 * integrity HMAC against `objectName` in constant time, then decrypt and return the credential.
 * Throws CredentialIntegrityError (TPM_RC_INTEGRITY) for an altered blob or a wrong Name, EK or seed.
 */
export function unwrapCredential(
  ekPublic: TPMT_PUBLIC,
  seed: Uint8Array,
  objectName: Uint8Array,
  credentialBlob: Uint8Array,
): Uint8Array {
  const p = checkProtector(ekPublic);
  checkName(objectName);
  const r = new Reader(credentialBlob);
  let integrity: Uint8Array;
  try {
    integrity = TPM2B_DIGEST.decode(r);
  } catch (e) {
    const m = MarshalError.wrap(e).at("TPM2B_ID_OBJECT", "integrityHMAC");
    throw new CredentialError(
      m.message,
      m.fault === "insufficient" ? TPM_RC.INSUFFICIENT : TPM_RC.SIZE,
      { cause: e },
    );
  }
  const encIdentity = credentialBlob.subarray(r.offset);
  const expected = outerIntegrity(p, seed, encIdentity, objectName);
  // The HMAC size is not secret; only the comparison of equal-length values must be constant-time.
  if (!sameSecret(integrity, expected)) {
    throw new CredentialIntegrityError(
      `credentialBlob integrity check failed (TPM_RC_INTEGRITY): the blob was altered, or it was made for ` +
        `another object Name than ${toHex(objectName)} or for another EK`,
    );
  }
  const symKey = kdfa(p.nameAlg, seed, "STORAGE", objectName, EMPTY, p.keyBits);
  const plain = aesCfbDecrypt(symKey, new Uint8Array(AES_BLOCK), encIdentity);
  let credential: Uint8Array;
  try {
    credential = decode(TPM2B_DIGEST, plain);
  } catch (e) {
    throw new CredentialError(
      `credentialBlob decrypts to no TPM2B_DIGEST: ${MarshalError.wrap(e).message}`,
      TPM_RC.SIZE,
      { cause: e },
    );
  }
  if (credential.length > p.digestSize) {
    throw new CredentialError(
      `credential is ${credential.length} bytes, more than the ${p.digestSize}-byte digest of the EK nameAlg`,
      TPM_RC.SIZE,
    );
  }
  return credential;
}

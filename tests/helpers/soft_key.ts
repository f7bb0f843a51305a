/** A software key acting as an AK: a node:crypto key pair, its TPMT_PUBLIC, and a signer making TPMT_SIGNATUREs. */
import { constants, generateKeyPairSync, sign } from "node:crypto";
import { AK_ATTRIBUTES } from "../../src/tpm/templates.ts";
import { TPM_ALG, TPM_ECC_CURVE } from "../../src/tpm/constants.ts";
import type { TPMT_PUBLIC, TPMT_SIGNATURE } from "../../src/tpm/structures.ts";

const SHA256: number = TPM_ALG.SHA256;
const NULL_SCHEME = { scheme: TPM_ALG.NULL, details: null };
const SYM_NULL = { algorithm: TPM_ALG.NULL, keyBits: null, mode: null, details: null };
/** node:crypto's name and the digest size of each hash the tests sign with. */
const HASHES: Record<number, { name: string; size: number }> = {
  [TPM_ALG.SHA1]: { name: "sha1", size: 20 },
  [TPM_ALG.SHA256]: { name: "sha256", size: 32 },
  [TPM_ALG.SHA384]: { name: "sha384", size: 48 },
  [TPM_ALG.SHA512]: { name: "sha512", size: 64 },
};
const CURVES = { "P-256": TPM_ECC_CURVE.NIST_P256, "P-384": TPM_ECC_CURVE.NIST_P384 } as const;

const fromB64url = (s: unknown) => new Uint8Array(Buffer.from(String(s), "base64url"));

export interface SoftKeyOptions {
  /**
   * The scheme in the key's TPMT_PUBLIC, with hashAlg SHA-256. TPM_ALG.NULL (the default) leaves the scheme
   * to the signature, so tests can make the key sign what a TPM AK would refuse to.
   */
  scheme?: number;
  /** EC keys only; default P-256. */
  curve?: keyof typeof CURVES;
}

export interface SignOptions {
  /** Default: the key's scheme, or RSASSA / ECDSA for a key without one. */
  sigAlg?: number;
  /** Default SHA-256. */
  hashAlg?: number;
  /** RSAPSS only; default the digest length, as a TPM signs. */
  saltLength?: number;
}

export interface SoftKey {
  pub: TPMT_PUBLIC;
  /** Uses no `this`, so it may be destructured. */
  sign: (msg: Uint8Array, opts?: SignOptions) => TPMT_SIGNATURE;
}

/** A fresh RSA-2048 or EC key with the Keylime AK's objectAttributes (AK_ATTRIBUTES, 0x00050072). */
export function softKey(kind: "rsa" | "ecc", opts: SoftKeyOptions = {}): SoftKey {
  const scheme = opts.scheme ?? TPM_ALG.NULL;
  const curve = opts.curve ?? "P-256";
  const { publicKey, privateKey } = kind === "rsa"
    ? generateKeyPairSync("rsa", { modulusLength: 2048 })
    : generateKeyPairSync("ec", { namedCurve: curve });
  const jwk = publicKey.export({ format: "jwk" });
  const keyScheme = scheme === TPM_ALG.NULL ? NULL_SCHEME : { scheme, details: { hashAlg: SHA256 } };
  const common = { nameAlg: SHA256, objectAttributes: AK_ATTRIBUTES, authPolicy: new Uint8Array(0) };
  const pub: TPMT_PUBLIC = kind === "rsa"
    ? {
      type: TPM_ALG.RSA,
      ...common,
      parameters: { symmetric: SYM_NULL, scheme: keyScheme, keyBits: 2048, exponent: 0 },
      unique: fromB64url(jwk.n),
    }
    : {
      type: TPM_ALG.ECC,
      ...common,
      parameters: { symmetric: SYM_NULL, scheme: keyScheme, curveID: CURVES[curve], kdf: NULL_SCHEME },
      unique: { x: fromB64url(jwk.x), y: fromB64url(jwk.y) },
    };
  const defaultSigAlg = scheme !== TPM_ALG.NULL ? scheme : kind === "rsa" ? TPM_ALG.RSASSA : TPM_ALG.ECDSA;

  const signWith = (
    msg: Uint8Array,
    { sigAlg = defaultSigAlg, hashAlg = SHA256, saltLength }: SignOptions = {},
  ): TPMT_SIGNATURE => {
    const h = HASHES[hashAlg];
    if (h === undefined) throw new Error(`softKey: no node:crypto hash for TPM_ALG ${hashAlg}`);
    if (kind === "rsa" && sigAlg === TPM_ALG.RSASSA) {
      return { sigAlg, signature: { hash: hashAlg, sig: new Uint8Array(sign(h.name, msg, privateKey)) } };
    }
    if (kind === "rsa" && sigAlg === TPM_ALG.RSAPSS) {
      const key = { key: privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: saltLength ?? h.size };
      return { sigAlg, signature: { hash: hashAlg, sig: new Uint8Array(sign(h.name, msg, key)) } };
    }
    if (kind === "ecc" && sigAlg === TPM_ALG.ECDSA) {
      const p1363 = new Uint8Array(sign(h.name, msg, { key: privateKey, dsaEncoding: "ieee-p1363" }));
      const n = p1363.length / 2;
      return { sigAlg, signature: { hash: hashAlg, signatureR: p1363.slice(0, n), signatureS: p1363.slice(n) } };
    }
    throw new Error(`softKey: a ${kind} key does not make TPM_ALG ${sigAlg} signatures`);
  };
  return { pub, sign: signWith };
}

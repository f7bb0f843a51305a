/**
 * A loaded object in the simulated TPM: its public area, its sensitive part, and the operations the
 * commands need (sign, decrypt a secret, derive the Name).
 */
import { createPrivateKey, createPublicKey, type JsonWebKey, type KeyObject, sign as nodeSign } from "node:crypto";
import { TPM_ALG, TPM_RC } from "../src/tpm/constants.ts";
import { concat, hash, objectName } from "../src/tpm/crypto.ts";
import { TPMA_OBJECT, type TPMT_PUBLIC, type TPMT_SIGNATURE } from "../src/tpm/structures.ts";
import { rc } from "./rc.ts";

export interface SimObject {
  readonly public: TPMT_PUBLIC;
  readonly name: Uint8Array;
  readonly qualifiedName: Uint8Array;
  /** TPM_RH_OWNER, _ENDORSEMENT, _PLATFORM or _NULL. */
  readonly hierarchy: number;
  readonly authValue: Uint8Array;
  /** For storage parents: the secret that protects children (Part 1 §27.6); else empty. */
  readonly seedValue: Uint8Array;
  /** RSA/ECC private key, as a JWK (so it can be saved with persistent objects). */
  readonly privateJwk: JsonWebKey | null;
  /** Symmetric / keyed-hash sensitive bytes. */
  readonly secret: Uint8Array | null;
}

export function isStorageParent(o: SimObject): boolean {
  const a = o.public.objectAttributes;
  return TPMA_OBJECT.has(a, "restricted") && TPMA_OBJECT.has(a, "decrypt") && !TPMA_OBJECT.has(a, "sign");
}

/** Qualified name: nameAlg ‖ H(parent QN ‖ Name); a primary's parent QN is its hierarchy handle. */
export function qualifiedName(pub: TPMT_PUBLIC, parentQN: Uint8Array): Uint8Array {
  const name = objectName(pub);
  return concat(Uint8Array.of(pub.nameAlg >>> 8, pub.nameAlg & 0xff), hash(pub.nameAlg, parentQN, name));
}

export function handleBytes(h: number): Uint8Array {
  return Uint8Array.of(h >>> 24, (h >>> 16) & 0xff, (h >>> 8) & 0xff, h & 0xff);
}

export function makeObject(fields: Omit<SimObject, "name" | "qualifiedName">, parentQN: Uint8Array): SimObject {
  return { ...fields, name: objectName(fields.public), qualifiedName: qualifiedName(fields.public, parentQN) };
}

/** Objects never change, so their key objects are built once (a JWK import costs ~80 us). */
const keyObjects = new WeakMap<JsonWebKey, KeyObject>();

export function privateKeyOf(o: SimObject): KeyObject {
  if (!o.privateJwk) throw rc(TPM_RC.KEY);
  let key = keyObjects.get(o.privateJwk);
  if (!key) {
    key = createPrivateKey({ key: o.privateJwk, format: "jwk" });
    keyObjects.set(o.privateJwk, key);
  }
  return key;
}

export function publicKeyObject(o: SimObject): KeyObject {
  return createPublicKey(privateKeyOf(o));
}

const NODE_HASH: Readonly<Record<number, string>> = {
  [TPM_ALG.SHA1]: "sha1",
  [TPM_ALG.SHA256]: "sha256",
  [TPM_ALG.SHA384]: "sha384",
  [TPM_ALG.SHA512]: "sha512",
};

/** Sign `message` (hashed here with `hashAlg`) with the object's key under `scheme`. */
export function signWith(o: SimObject, scheme: number, hashAlg: number, message: Uint8Array): TPMT_SIGNATURE {
  const nodeHash = NODE_HASH[hashAlg];
  if (!nodeHash) throw rc(TPM_RC.HASH);
  const key = privateKeyOf(o);
  if (scheme === TPM_ALG.RSASSA || scheme === TPM_ALG.RSAPSS) {
    const sig = nodeSign(nodeHash, message, {
      key,
      ...(scheme === TPM_ALG.RSAPSS ? { padding: 6, /* RSA_PKCS1_PSS_PADDING */ saltLength: -1 /* digest */ } : {}),
    });
    return { sigAlg: scheme, signature: { hash: hashAlg, sig: new Uint8Array(sig) } };
  }
  if (scheme === TPM_ALG.ECDSA) {
    const sig = new Uint8Array(nodeSign(nodeHash, message, { key, dsaEncoding: "ieee-p1363" }));
    const half = sig.length / 2;
    return {
      sigAlg: scheme,
      signature: { hash: hashAlg, signatureR: sig.slice(0, half), signatureS: sig.slice(half) },
    };
  }
  throw rc(TPM_RC.SCHEME);
}

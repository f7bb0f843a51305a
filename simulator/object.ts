/**
 * A loaded object in the simulated TPM: its public area, its sensitive part, and the operations the
 * commands need (sign, decrypt a secret, derive the Name).
 */
import { createPrivateKey, createPublicKey, type JsonWebKey, type KeyObject } from "node:crypto";
import { TPM_RC } from "../src/tpm/constants.ts";
import { concat, hash, objectName } from "../src/tpm/crypto.ts";
import { TPMA_OBJECT, type TPMT_PUBLIC } from "../src/tpm/structures.ts";
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

/**
 * Entry-by-entry checks of a loaded state (state_file.ts): a checksum only shows that nobody changed
 * the file by accident, so every map entry, byte field and counter is checked before the TPM runs on
 * it. Each failure names the entry and the field, e.g. `persistent[0x81010001].seedValue: not bytes`.
 */
import { Buffer } from "node:buffer";
import { createPrivateKey, type JsonWebKey } from "node:crypto";
import { DIGEST_SIZE, handleType, TPM_ALG, TPM_HT, TPM_RH } from "../src/tpm/constants.ts";
import type { Codec, Field, UnionField } from "../src/tpm/marshal.ts";
import { TPMS_NV_PUBLIC, TPMT_PUBLIC } from "../src/tpm/structures.ts";
import { PCR_BANKS, PCR_COUNT } from "./state.ts";

/** A state that does not check out; the message names the field. */
export class StateShapeError extends Error {
  constructor(readonly field: string, why: string) {
    super(`${field}: ${why}`);
    this.name = "StateShapeError";
  }
}

const MAX_U64 = (1n << 64n) - 1n;
/** Counters that go on counting (resets, restarts, failures, the clock) leave room to do so. */
const MAX_COUNT = 2 ** 31 - 1;
const MAX_CLOCK = 1n << 62n;
/** The largest authValue or digest any algorithm here has (SHA-512). */
const MAX_DIGEST = 64;
const PERSISTENT_HIERARCHIES = new Set<number>([TPM_RH.OWNER, TPM_RH.ENDORSEMENT, TPM_RH.PLATFORM]);

const hex = (h: number) => `0x${h.toString(16).padStart(8, "0")}`;
const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array) && !(v instanceof Map);

function fail(field: string, why: string): never {
  throw new StateShapeError(field, why);
}

function bytes(v: unknown, field: string, size?: { min?: number; max?: number }): Uint8Array {
  if (!(v instanceof Uint8Array)) fail(field, "not bytes");
  if (size?.min !== undefined && v.length < size.min) fail(field, `${v.length} bytes, fewer than ${size.min}`);
  if (size?.max !== undefined && v.length > size.max) fail(field, `${v.length} bytes, more than ${size.max}`);
  return v;
}

function count(v: unknown, field: string): number {
  if (!Number.isInteger(v) || (v as number) < 0 || (v as number) > MAX_COUNT) {
    fail(field, `not a count 0..${MAX_COUNT}`);
  }
  return v as number;
}

function record(v: unknown, field: string): Record<string, unknown> {
  if (!isRecord(v)) fail(field, "not an object");
  return v;
}

function map(v: unknown, field: string): Map<unknown, unknown> {
  if (!(v instanceof Map)) fail(field, "not a map");
  return v;
}

function isUnion(f: Field<unknown>): f is UnionField<unknown> {
  return (f as UnionField<unknown>).union !== undefined;
}

/**
 * Check `v` against a TPM structure's declaration, field by field: stricter than encode(), which
 * trusts the TypeScript types a parsed JSON file does not have.
 */
export function checkStructure(codec: Codec<unknown>, v: unknown, field: string): void {
  const s = codec.shape;
  switch (s.kind) {
    case "uint":
      if (s.bits === 64) {
        if (typeof v !== "bigint" || v < 0n || v > MAX_U64) fail(field, `not a 64-bit unsigned integer`);
        return;
      }
      if (!Number.isInteger(v) || (v as number) < (s.signed ? -(2 ** (s.bits - 1)) : 0)) {
        fail(field, `not a ${s.bits}-bit integer`);
      }
      if ((v as number) > 2 ** (s.signed ? s.bits - 1 : s.bits) - 1) fail(field, `not a ${s.bits}-bit integer`);
      if (s.values && !s.values.includes(v as number)) fail(field, `value ${String(v)} is not allowed`);
      return;
    case "bits":
      if (!Number.isInteger(v) || (v as number) < 0 || (v as number) > 2 ** s.bits - 1) {
        fail(field, `not a ${s.bits}-bit attribute set`);
      }
      return;
    case "bool":
      if (typeof v !== "boolean") fail(field, "not true or false");
      return;
    case "fixed":
      bytes(v, field, { min: s.length, max: s.length });
      return;
    case "bytes":
      bytes(v, field, { max: s.max });
      return;
    case "sized":
      if (v === null && s.optional) return;
      return checkStructure(s.inner, v, field);
    case "list":
      if (!Array.isArray(v)) fail(field, "not a list");
      if (v.length > s.max) fail(field, `${v.length} entries, more than ${s.max}`);
      v.forEach((x, i) => checkStructure(s.inner, x, `${field}[${i}]`));
      return;
    case "empty":
      if (v !== null) fail(field, "not empty (null)");
      return;
    case "struct": {
      const o = record(v, field);
      for (const [key, f] of s.fields) {
        let c: Codec<unknown>;
        if (isUnion(f)) {
          const member = f.cases.get(o[f.selector] as number);
          if (!member) fail(`${field}.${key}`, `${f.union} has no member for ${f.selector} ${String(o[f.selector])}`);
          c = member;
        } else {
          c = f;
        }
        checkStructure(c, o[key], `${field}.${key}`);
      }
      return;
    }
  }
}

const RSA_JWK_MEMBERS = ["n", "e", "d", "p", "q", "dp", "dq", "qi"] as const;
const EC_JWK_MEMBERS = ["x", "y", "d"] as const;

/** A private key as saved: the members it needs are base64url text, and node:crypto imports it. */
function privateJwk(v: unknown, field: string): JsonWebKey {
  const jwk = record(v, field);
  const members = jwk.kty === "RSA" ? RSA_JWK_MEMBERS : jwk.kty === "EC" ? EC_JWK_MEMBERS : undefined;
  if (!members) fail(`${field}.kty`, `not RSA or EC`);
  for (const m of members) {
    if (typeof jwk[m] !== "string" || !/^[A-Za-z0-9_-]+$/.test(jwk[m] as string)) {
      fail(`${field}.${m}`, "not base64url");
    }
  }
  try {
    createPrivateKey({ key: jwk as JsonWebKey, format: "jwk" });
  } catch (e) {
    fail(field, `not a usable private key (${e instanceof Error ? e.message : String(e)})`);
  }
  return jwk as JsonWebKey;
}

function hierarchyState(v: unknown, field: string): void {
  const h = record(v, field);
  bytes(h.seed, `${field}.seed`, { min: 32, max: 128 });
  bytes(h.authValue, `${field}.authValue`, { max: MAX_DIGEST });
  bytes(h.proof, `${field}.proof`, { min: 16, max: MAX_DIGEST });
}

function nvIndex(key: unknown, v: unknown): void {
  if (typeof key !== "number" || handleType(key) !== TPM_HT.NV_INDEX) fail(`nv[${String(key)}]`, "not an NV index");
  const field = `nv[${hex(key)}]`;
  const nv = record(v, field);
  checkStructure(TPMS_NV_PUBLIC, nv.public, `${field}.public`);
  const pub = nv.public as { nvIndex: number; dataSize: number };
  if (pub.nvIndex !== key) fail(`${field}.public.nvIndex`, `${hex(pub.nvIndex)} is not the index it is saved under`);
  bytes(nv.authValue, `${field}.authValue`, { max: MAX_DIGEST });
  const data = bytes(nv.data, `${field}.data`);
  if (data.length !== pub.dataSize) fail(`${field}.data`, `${data.length} bytes, but the index holds ${pub.dataSize}`);
}

function persistentObject(key: unknown, v: unknown): void {
  if (typeof key !== "number" || handleType(key) !== TPM_HT.PERSISTENT) {
    fail(`persistent[${String(key)}]`, "not a persistent handle");
  }
  const field = `persistent[${hex(key)}]`;
  const o = record(v, field);
  checkStructure(TPMT_PUBLIC, o.public, `${field}.public`);
  bytes(o.qualifiedName, `${field}.qualifiedName`, { min: 2, max: 2 + MAX_DIGEST });
  if (!PERSISTENT_HIERARCHIES.has(o.hierarchy as number)) {
    fail(`${field}.hierarchy`, "not owner, endorsement or platform");
  }
  bytes(o.authValue, `${field}.authValue`, { max: MAX_DIGEST });
  bytes(o.seedValue, `${field}.seedValue`, { max: MAX_DIGEST });
  if (o.privateJwk !== null) privateJwk(o.privateJwk, `${field}.privateJwk`);
  if (o.secret !== null) bytes(o.secret, `${field}.secret`, { max: 128 });
  if (o.privateJwk === null && o.secret === null) fail(field, "has neither a private key nor a secret");
  const pub = o.public as { type: number; unique: Uint8Array | { x: Uint8Array; y: Uint8Array } };
  const asymmetric = pub.type === TPM_ALG.RSA || pub.type === TPM_ALG.ECC;
  if (asymmetric !== (o.privateJwk !== null)) fail(`${field}.privateJwk`, "does not fit the public area's type");
  if (asymmetric && !sameKey(o.privateJwk as JsonWebKey, pub.unique)) {
    fail(`${field}.privateJwk`, "not the key of the public area");
  }
}

/** Whether a JWK's public members are the public area's unique field (leading zeros aside). */
function sameKey(jwk: JsonWebKey, unique: Uint8Array | { x: Uint8Array; y: Uint8Array }): boolean {
  const int = (b: Uint8Array | string | undefined) =>
    BigInt("0x0" + Buffer.from(typeof b === "string" ? Buffer.from(b, "base64url") : b ?? []).toString("hex"));
  if (unique instanceof Uint8Array) return jwk.kty === "RSA" && int(jwk.n) === int(unique);
  return jwk.kty === "EC" && int(jwk.x) === int(unique.x) && int(jwk.y) === int(unique.y);
}

function pcrBanks(v: unknown, field: string): void {
  for (const [alg, values] of map(v, field)) {
    const size = DIGEST_SIZE[alg as number];
    if (size === undefined || !PCR_BANKS.includes(alg as never)) fail(`${field}[${String(alg)}]`, "not a PCR bank");
    if (!Array.isArray(values) || values.length !== PCR_COUNT) fail(`${field}[${alg}]`, `not ${PCR_COUNT} PCRs`);
    values.forEach((x, i) => bytes(x, `${field}[${alg}][${i}]`, { min: size, max: size }));
  }
}

/** Check every field and map entry of a parsed state; throws StateShapeError naming the first bad one. */
export function checkPersistent(p: Record<string, unknown>): void {
  if (p.version !== 1) fail("version", `content version ${String(p.version)}, expected 1`);
  for (const h of ["endorsement", "owner", "platform"]) hierarchyState(p[h], h);
  bytes(p.lockoutAuth, "lockoutAuth", { max: MAX_DIGEST });
  bytes(p.contextKey, "contextKey", { min: 32, max: 32 });
  for (const [k, v] of map(p.nv, "nv")) nvIndex(k, v);
  for (const [k, v] of map(p.persistent, "persistent")) persistentObject(k, v);
  for (const [k, v] of map(p.rsaPrimaries, "rsaPrimaries")) {
    if (typeof k !== "string" || !/^[0-9a-f]{64}$/.test(k)) fail(`rsaPrimaries[${String(k)}]`, "not a derivation id");
    if (privateJwk(v, `rsaPrimaries[${k}]`).kty !== "RSA") fail(`rsaPrimaries[${k}].kty`, "not RSA");
  }
  if (typeof p.clock !== "bigint" || p.clock < 0n || p.clock > MAX_CLOCK) {
    fail("clock", `not a millisecond count 0..2^62`);
  }
  for (const n of ["resetCount", "restartCount", "failedTries", "maxTries"]) count(p[n], n);
  if (!["none", "clear", "state"].includes(p.shutdown as string)) fail("shutdown", "not none, clear or state");
  if (p.savedPcrs !== null) pcrBanks(p.savedPcrs, "savedPcrs");
  if (p.savedNull !== undefined && p.savedNull !== null) hierarchyState(p.savedNull, "savedNull");
  if (p.manufacturer !== undefined) {
    const m = record(p.manufacturer, "manufacturer");
    bytes(m.caCert, "manufacturer.caCert", { min: 1 });
    privateJwk(m.caKey, "manufacturer.caKey");
  }
}

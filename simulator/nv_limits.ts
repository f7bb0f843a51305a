/**
 * The simulated TPM's NV memory: how much there is, what an NV index and a persistent object take of
 * it, and the TPM_RC_NV_SPACE a real TPM answers when it is full. GetCapability reports these
 * figures (capability.ts), NV_DefineSpace and EvictControl enforce them (nv.ts, context.ts). The
 * accounting follows ms-tpm-20-ref NV.c: NvDefineIndex / NvAddEvictObject / NvTestSpace.
 */
import { TPM_RC } from "../src/tpm/constants.ts";
import { encode } from "../src/tpm/marshal.ts";
import { type TPMS_NV_PUBLIC, TPMT_PUBLIC, TPMT_SENSITIVE } from "../src/tpm/structures.ts";
import { sensitiveOf } from "./keys.ts";
import { rc } from "./rc.ts";
import type { Persistent, SavedObject } from "./state.ts";

/** NV memory for indices and persistent objects together (libtpms, as swtpm ships it: 128 KiB). */
export const NV_MEMORY_BYTES = 128 * 1024;
/** TPM_PT_NV_INDEX_MAX: the largest dataSize of an index. */
export const NV_INDEX_MAX = 2048;
/** TPM_PT_NV_BUFFER_MAX: the most one NV_Read or NV_Write moves. */
export const NV_BUFFER_MAX = 1024;
/** TPM_PT_HR_PERSISTENT_MIN: room kept for this many persistent objects, whatever indices take. */
export const PERSISTENT_MIN = 7;
/** At most this many persistent objects (HR_PERSISTENT_AVAIL counts down from it). */
export const PERSISTENT_MAX = 64;

/**
 * What an index takes besides its data: its handle and list entry (8), and NV_INDEX: a
 * TPMS_NV_PUBLIC with a full-size authPolicy (78) and a full-size TPM2B_AUTH (66).
 */
const INDEX_OVERHEAD = 8 + 78 + 66;
/** What a persistent object takes besides its public and sensitive areas: handle and list entry. */
const OBJECT_OVERHEAD = 8;
/** The room kept per reserved persistent object: an RSA-4096 key with SHA-512 fields. */
const OBJECT_RESERVE = 1088;

export function indexBytes(pub: TPMS_NV_PUBLIC): number {
  return INDEX_OVERHEAD + pub.dataSize;
}

/** Objects never change, so each one's size is worked out once. */
const objectSizes = new WeakMap<SavedObject, number>();

export function objectBytes(o: SavedObject): number {
  let n = objectSizes.get(o);
  if (n === undefined) {
    n = OBJECT_OVERHEAD + encode(TPMT_PUBLIC, o.public).length + encode(TPMT_SENSITIVE, sensitiveOf(o)).length;
    objectSizes.set(o, n);
  }
  return n;
}

/** NV bytes in use. */
export function nvUsed(p: Persistent): number {
  let used = 0;
  for (const nv of p.nv.values()) used += indexBytes(nv.public);
  for (const o of p.persistent.values()) used += objectBytes(o);
  return used;
}

/** The room an index must leave so that PERSISTENT_MIN objects still fit (NvTestSpace). */
function reserved(p: Persistent): number {
  return Math.max(0, PERSISTENT_MIN - p.persistent.size) * OBJECT_RESERVE;
}

/** TPM_RC_NV_SPACE unless an index with this public area fits, leaving room for PERSISTENT_MIN objects. */
export function assertIndexFits(p: Persistent, pub: TPMS_NV_PUBLIC): void {
  if (nvUsed(p) + indexBytes(pub) + reserved(p) > NV_MEMORY_BYTES) throw rc(TPM_RC.NV_SPACE);
}

/** TPM_RC_NV_SPACE unless one more persistent object fits: in number and in bytes. */
export function assertObjectFits(p: Persistent, o: SavedObject): void {
  if (p.persistent.size >= PERSISTENT_MAX) throw rc(TPM_RC.NV_SPACE);
  if (nvUsed(p) + objectBytes(o) > NV_MEMORY_BYTES) throw rc(TPM_RC.NV_SPACE);
}

/** TPM_PT_HR_PERSISTENT_AVAIL: an estimate, as the spec allows, counting reserved-size objects. */
export function persistentAvail(p: Persistent): number {
  const free = Math.max(0, NV_MEMORY_BYTES - nvUsed(p));
  return Math.max(0, Math.min(PERSISTENT_MAX - p.persistent.size, Math.floor(free / OBJECT_RESERVE)));
}

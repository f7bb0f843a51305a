/** Object commands (Part 3 §12, §24.1): CreatePrimary, Create, Load, LoadExternal, ReadPublic. */
import type { CommandArgs, ResponseArgs } from "../../src/tpm/command.ts";
import { Create, CreatePrimary, Load, LoadExternal, ReadPublic } from "../../src/tpm/commands.ts";
import { DIGEST_SIZE, HANDLE_RANGE, TPM_ALG, TPM_RC, TPM_RH, TPM_ST } from "../../src/tpm/constants.ts";
import { concat, hash, objectName } from "../../src/tpm/crypto.ts";
import { hmac } from "@noble/hashes/hmac";
import { hashFor } from "../../src/tpm/crypto.ts";
import { encode } from "../../src/tpm/marshal.ts";
import { TPMA_OBJECT, TPMS_CREATION_DATA, type TPMS_PCR_SELECTION } from "../../src/tpm/structures.ts";
import { checkTemplate, keyFromSensitive, makeMaterial, sensitiveOf, unwrapPrivate, wrapPrivate } from "../keys.ts";
import { handleBytes, isStorageParent, makeObject, type SimObject } from "../object.ts";
import { rc, rcHandle, rcParam } from "../rc.ts";
import type { Call, SimTpm } from "../sim_tpm.ts";
import type { HierarchyState } from "../state.ts";
import { handle } from "./index.ts";

const EMPTY: Uint8Array = new Uint8Array(0);

export function hierarchyState(tpm: SimTpm, h: number, n = 1): HierarchyState {
  switch (h) {
    case TPM_RH.OWNER:
      return tpm.persistent.owner;
    case TPM_RH.ENDORSEMENT:
      return tpm.persistent.endorsement;
    case TPM_RH.PLATFORM:
      return tpm.persistent.platform;
    case TPM_RH.NULL:
      return tpm.volatile.nullHierarchy;
  }
  throw rcHandle(TPM_RC.HIERARCHY, n);
}

/** Load an object into the lowest free transient slot. */
export function loadTransient(tpm: SimTpm, o: SimObject): number {
  const h = tpm.freeHandle(HANDLE_RANGE.TRANSIENT_FIRST, tpm.volatile.objects, tpm.objectSlots, TPM_RC.OBJECT_MEMORY);
  tpm.volatile.objects.set(h, o);
  return h;
}

/** The concatenated values of selected PCRs, bank by bank, ascending (Part 1 §17.6). */
export function selectedPcrValues(tpm: SimTpm, selections: readonly TPMS_PCR_SELECTION[]): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (const sel of selections) {
    const bank = tpm.volatile.pcrs.get(sel.hash);
    sel.pcrSelect.forEach((byte, i) => {
      for (let bit = 0; bit < 8; bit++) {
        if (!(byte & (1 << bit))) continue;
        const v = bank?.[i * 8 + bit];
        if (v) out.push(v);
      }
    });
  }
  return out;
}

function creation(
  tpm: SimTpm,
  call: Call,
  o: SimObject,
  parent: { nameAlg: number; name: Uint8Array; qualifiedName: Uint8Array },
  args: { outsideInfo: Uint8Array; creationPCR: TPMS_PCR_SELECTION[] },
  proof: Uint8Array,
  hierarchy: number,
) {
  const alg = o.public.nameAlg;
  const creationData = {
    pcrSelect: args.creationPCR,
    pcrDigest: hash(alg, ...selectedPcrValues(tpm, args.creationPCR)),
    locality: 1 << Math.min(call.locality, 4),
    parentNameAlg: parent.nameAlg,
    parentName: parent.name,
    parentQualifiedName: parent.qualifiedName,
    outsideInfo: args.outsideInfo,
  };
  const creationHash = hash(alg, encode(TPMS_CREATION_DATA, creationData));
  const stCreation = Uint8Array.of(TPM_ST.CREATION >>> 8, TPM_ST.CREATION & 0xff);
  const digest = hierarchy === TPM_RH.NULL
    ? EMPTY
    : hmac(hashFor(alg), proof, concat(stCreation, o.name, creationHash));
  return {
    creationData,
    creationHash,
    creationTicket: { tag: TPM_ST.CREATION, hierarchy, digest },
  };
}

/** The creation parameters CreatePrimary and Create share. */
type CreateArgs = Omit<CommandArgs<typeof Create>, "parentHandle">;

function createPrimary(
  tpm: SimTpm,
  args: CommandArgs<typeof CreatePrimary>,
  call: Call,
): ResponseArgs<typeof CreatePrimary> {
  const h = hierarchyState(tpm, args.primaryHandle);
  checkTemplate(args.inPublic);
  const m = makeMaterial(args.inPublic, {
    kind: "primary",
    seed: h.seed,
    sensitiveData: args.inSensitive.data,
    persistent: tpm.persistent,
    prefetched: tpm.rsaPrefetch,
  });
  const hierarchyName = handleBytes(args.primaryHandle);
  const o = makeObject(
    { ...m, hierarchy: args.primaryHandle, authValue: args.inSensitive.userAuth },
    hierarchyName,
  );
  const objectHandle = loadTransient(tpm, o);
  const parent = { nameAlg: TPM_ALG.NULL, name: hierarchyName, qualifiedName: hierarchyName };
  return {
    objectHandle,
    outPublic: o.public,
    ...creation(tpm, call, o, parent, args, h.proof, args.primaryHandle),
    name: o.name,
  };
}

function storageParent(tpm: SimTpm, handle: number): SimObject {
  const parent = tpm.object(handle, 1);
  if (!isStorageParent(parent) || !parent.privateJwk) throw rcHandle(TPM_RC.TYPE, 1);
  return parent;
}

function create(tpm: SimTpm, args: CommandArgs<typeof Create>, call: Call): ResponseArgs<typeof Create> {
  const parent = storageParent(tpm, args.parentHandle);
  checkTemplate(args.inPublic);
  const m = makeMaterial(args.inPublic, {
    kind: "random",
    sensitiveData: args.inSensitive.data,
    prefetched: tpm.rsaPrefetch,
  });
  const o = makeObject(
    { ...m, hierarchy: parent.hierarchy, authValue: args.inSensitive.userAuth },
    parent.qualifiedName,
  );
  const outPrivate = wrapPrivate(parent, o.name, sensitiveOf(o));
  const proof = hierarchyState(tpm, parent.hierarchy).proof;
  return {
    outPrivate,
    outPublic: o.public,
    ...creation(tpm, call, o, { ...parent, nameAlg: parent.public.nameAlg }, args, proof, parent.hierarchy),
  };
}

function load(tpm: SimTpm, args: CommandArgs<typeof Load>): ResponseArgs<typeof Load> {
  const parent = storageParent(tpm, args.parentHandle);
  checkTemplate(args.inPublic);
  const name = objectName(args.inPublic);
  const s = unwrapPrivate(parent, name, args.inPrivate);
  const key = keyFromSensitive(args.inPublic, s, 2);
  const o = makeObject(
    { public: args.inPublic, hierarchy: parent.hierarchy, authValue: s.authValue, seedValue: s.seedValue, ...key },
    parent.qualifiedName,
  );
  return { objectHandle: loadTransient(tpm, o), name: o.name };
}

function loadExternal(tpm: SimTpm, args: CommandArgs<typeof LoadExternal>): ResponseArgs<typeof LoadExternal> {
  hierarchyState(tpm, args.hierarchy, 3);
  const pub = args.inPublic;
  if (!DIGEST_SIZE[pub.nameAlg]) throw rcParam(TPM_RC.HASH, 2);
  let key: { privateJwk: SimObject["privateJwk"]; secret: Uint8Array | null } = { privateJwk: null, secret: null };
  let authValue: Uint8Array = EMPTY;
  let seedValue: Uint8Array = EMPTY;
  if (args.inPrivate) {
    // A key whose private part came from outside cannot claim to be bound to this TPM.
    if (args.hierarchy !== TPM_RH.NULL) throw rcParam(TPM_RC.HIERARCHY, 3);
    if (TPMA_OBJECT.has(pub.objectAttributes, "fixedTPM") || TPMA_OBJECT.has(pub.objectAttributes, "fixedParent")) {
      throw rcParam(TPM_RC.ATTRIBUTES, 2);
    }
    key = keyFromSensitive(pub, args.inPrivate, 1);
    authValue = args.inPrivate.authValue;
    seedValue = args.inPrivate.seedValue;
  }
  const o = makeObject(
    { public: pub, hierarchy: args.hierarchy, authValue, seedValue, ...key },
    handleBytes(args.hierarchy),
  );
  return { objectHandle: loadTransient(tpm, o), name: o.name };
}

function readPublic(tpm: SimTpm, { objectHandle }: CommandArgs<typeof ReadPublic>): ResponseArgs<typeof ReadPublic> {
  const o = tpm.object(objectHandle, 1);
  return { outPublic: o.public, name: o.name, qualifiedName: o.qualifiedName };
}

export const objects = [
  handle(CreatePrimary, createPrimary),
  handle(Create, create),
  handle(Load, load),
  handle(LoadExternal, loadExternal),
  handle(ReadPublic, readPublic),
];

export { rc };

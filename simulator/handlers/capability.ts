/**
 * TPM2_GetCapability (Part 3 §30.2): what this TPM implements and holds, paged as the reference
 * implementation pages it (ms-tpm-20-ref GetCapability.c and the *CapGet* helpers): at most
 * `propertyCount` entries from `property` on, moreData YES when more remain, and never more than
 * fits in MAX_CAP_DATA. TPM properties stay within the group (fixed 0x100, variable 0x200) that
 * `property` falls in.
 */
import type { CommandArgs, ResponseArgs } from "../../src/tpm/command.ts";
import { COMMANDS, GetCapability } from "../../src/tpm/commands.ts";
import {
  handleType,
  TPM_ALG,
  TPM_CAP,
  TPM_ECC_CURVE,
  TPM_HT,
  TPM_PT,
  TPM_PT_PCR,
  TPM_RC,
  TPM_RH,
} from "../../src/tpm/constants.ts";
import {
  nvIndexType,
  TPMA_ALGORITHM,
  TPMA_CC,
  TPMA_PERMANENT,
  TPMA_STARTUP_CLEAR,
  type TPMS_CAPABILITY_DATA,
  type TPMS_PCR_SELECTION,
  type TPMS_TAGGED_PROPERTY,
} from "../../src/tpm/structures.ts";
import { NV_BUFFER_MAX, NV_INDEX_MAX, PERSISTENT_MIN, persistentAvail } from "../nv_limits.ts";
import { rcParam } from "../rc.ts";
import type { SimTpm } from "../sim_tpm.ts";
import { PCR_BANKS, PCR_COUNT } from "../state.ts";
import { FIRMWARE_VERSION_1, FIRMWARE_VERSION_2 } from "./firmware.ts";
import { handle } from "./index.ts";
import { pcrBitmap, TCB_PCRS } from "./pcr.ts";

/** MAX_CAP_BUFFER less the capability and count fields (Part 2 Table 4). */
const MAX_CAP_DATA = 1024 - 4 - 4;
/** How many entries of each list fit in MAX_CAP_DATA (ms-tpm-20-ref MAX_CAP_ALGS ...). */
const MAX = {
  algs: Math.floor(MAX_CAP_DATA / 6),
  handles: MAX_CAP_DATA / 4,
  commands: MAX_CAP_DATA / 4,
  properties: MAX_CAP_DATA / 8,
  pcrProperties: Math.floor(MAX_CAP_DATA / (4 + 1 + 3)),
  curves: MAX_CAP_DATA / 2,
} as const;

/** Handles of TPM_RH_* the TPM implements (ms-tpm-20-ref NextPermanentHandle). */
const PERMANENT_HANDLES = [
  TPM_RH.OWNER,
  TPM_RH.NULL,
  TPM_RH.PW,
  TPM_RH.LOCKOUT,
  TPM_RH.ENDORSEMENT,
  TPM_RH.PLATFORM,
  TPM_RH.PLATFORM_NV,
];

export const ECC_CURVES = [TPM_ECC_CURVE.NIST_P256, TPM_ECC_CURVE.NIST_P384, TPM_ECC_CURVE.NIST_P521];

type AlgBit = Parameters<typeof TPMA_ALGORITHM.of>[number];
const alg = (id: number, ...bits: AlgBit[]) => ({ alg: id, algProperties: TPMA_ALGORITHM.of(...bits) });

/**
 * The algorithms the simulator implements, ascending, with the attributes ms-tpm-20-ref gives them
 * (AlgorithmCap.c). swtpm lists more (TDES, Camellia, CMAC, the SM and ECDAA families) and omits
 * TPM_ALG_NULL, which hardware TPMs list with no attributes.
 */
export const ALGORITHMS: readonly { alg: number; algProperties: number }[] = [
  alg(TPM_ALG.RSA, "asymmetric", "object"),
  alg(TPM_ALG.SHA1, "hash"),
  alg(TPM_ALG.HMAC, "hash", "signing"),
  alg(TPM_ALG.AES, "symmetric"),
  alg(TPM_ALG.MGF1, "hash", "method"),
  alg(TPM_ALG.KEYEDHASH, "hash", "object", "signing", "encrypting"),
  alg(TPM_ALG.XOR, "symmetric", "hash"),
  alg(TPM_ALG.SHA256, "hash"),
  alg(TPM_ALG.SHA384, "hash"),
  alg(TPM_ALG.SHA512, "hash"),
  alg(TPM_ALG.NULL),
  alg(TPM_ALG.RSASSA, "asymmetric", "signing"),
  alg(TPM_ALG.RSAES, "asymmetric", "encrypting"),
  alg(TPM_ALG.RSAPSS, "asymmetric", "signing"),
  alg(TPM_ALG.OAEP, "asymmetric", "encrypting"),
  alg(TPM_ALG.ECDSA, "asymmetric", "signing"),
  alg(TPM_ALG.ECDH, "asymmetric", "method"),
  alg(TPM_ALG.KDF1_SP800_56A, "hash", "method"),
  alg(TPM_ALG.KDF1_SP800_108, "hash", "method"),
  alg(TPM_ALG.ECC, "asymmetric", "object"),
  alg(TPM_ALG.SYMCIPHER, "object"),
  alg(TPM_ALG.CFB, "symmetric", "encrypting"),
];

/**
 * TPMA_CC bits other than the handle counts, from the Part 2 §6.5.2 / CommandAttributeData.h
 * table: nv (may write NV), extensive (may flush many objects), flushed (flushes its handle).
 */
const NV_COMMANDS = new Set<string>([
  "EvictControl",
  "NV_UndefineSpace",
  "Clear",
  "HierarchyChangeAuth",
  "NV_DefineSpace",
  "NV_Write",
  "DictionaryAttackLockReset",
  "PCR_Reset",
  "SelfTest",
  "Startup",
  "Shutdown",
  "StirRandom",
  "PCR_Extend",
]);
const EXTENSIVE_COMMANDS = new Set<string>(["Clear"]);

/** The TPMA_CC of an implemented command. */
export function commandAttributesOf(code: number): number {
  const def = COMMANDS.get(code)!;
  const flags = TPMA_CC.of(
    ...(NV_COMMANDS.has(def.name) ? ["nv" as const] : []),
    ...(EXTENSIVE_COMMANDS.has(def.name) ? ["extensive" as const] : []),
    ...(def.responseHandle !== undefined ? ["rHandle" as const] : []),
  );
  return ((code & 0xffff) | (def.handles.length << 25) | flags) >>> 0;
}

const ascii4 = (s: string) => [...s].reduce((v, c) => v * 256 + c.charCodeAt(0), 0) >>> 0;

/** TPM_PT values of the 0x100 group; swtpm's (flow-trace/003) except where this TPM differs. */
function fixedProperties(tpm: SimTpm): [number, number][] {
  const commands = tpm.implemented.size;
  return [
    [TPM_PT.FAMILY_INDICATOR, ascii4("2.0\0")],
    [TPM_PT.LEVEL, 0],
    [TPM_PT.REVISION, 164],
    [TPM_PT.DAY_OF_YEAR, 75],
    [TPM_PT.YEAR, 2021],
    [TPM_PT.MANUFACTURER, ascii4("KTSM")],
    // Keylime tells a software TPM by these two (spec/tpm.md §6 "Keylime").
    [TPM_PT.VENDOR_STRING_1, ascii4("SW  ")],
    [TPM_PT.VENDOR_STRING_2, ascii4(" TPM")],
    [TPM_PT.VENDOR_STRING_3, 0],
    [TPM_PT.VENDOR_STRING_4, 0],
    [TPM_PT.VENDOR_TPM_TYPE, 1],
    [TPM_PT.FIRMWARE_VERSION_1, FIRMWARE_VERSION_1],
    [TPM_PT.FIRMWARE_VERSION_2, FIRMWARE_VERSION_2],
    [TPM_PT.INPUT_BUFFER, 0x400],
    [TPM_PT.HR_TRANSIENT_MIN, tpm.objectSlots],
    [TPM_PT.HR_PERSISTENT_MIN, PERSISTENT_MIN],
    // Every active session is loaded here (no session is ever swapped out).
    [TPM_PT.HR_LOADED_MIN, tpm.sessionSlots],
    [TPM_PT.ACTIVE_SESSIONS_MAX, tpm.sessionSlots],
    [TPM_PT.PCR_COUNT, PCR_COUNT],
    [TPM_PT.PCR_SELECT_MIN, 3],
    [TPM_PT.CONTEXT_GAP_MAX, 0xffff],
    [TPM_PT.NV_COUNTERS_MAX, 0],
    [TPM_PT.NV_INDEX_MAX, NV_INDEX_MAX],
    [TPM_PT.MEMORY, 6],
    [TPM_PT.CLOCK_UPDATE, 0x1000],
    // Context blobs: HMAC-SHA256 and AES-256 (context_blob.ts); swtpm says SHA-512.
    [TPM_PT.CONTEXT_HASH, TPM_ALG.SHA256],
    [TPM_PT.CONTEXT_SYM, TPM_ALG.AES],
    [TPM_PT.CONTEXT_SYM_SIZE, 256],
    [TPM_PT.ORDERLY_COUNT, 255],
    [TPM_PT.MAX_COMMAND_SIZE, 0x1000],
    [TPM_PT.MAX_RESPONSE_SIZE, 0x1000],
    [TPM_PT.MAX_DIGEST, 64],
    [TPM_PT.MAX_OBJECT_CONTEXT, 0xa84],
    [TPM_PT.MAX_SESSION_CONTEXT, 0x194],
    [TPM_PT.PS_FAMILY_INDICATOR, ascii4("2.0\0")],
    [TPM_PT.PS_LEVEL, 0],
    [TPM_PT.PS_REVISION, 164],
    [TPM_PT.PS_DAY_OF_YEAR, 75],
    [TPM_PT.PS_YEAR, 2021],
    [TPM_PT.SPLIT_MAX, 128],
    [TPM_PT.TOTAL_COMMANDS, commands],
    [TPM_PT.LIBRARY_COMMANDS, commands],
    [TPM_PT.VENDOR_COMMANDS, 0],
    [TPM_PT.NV_BUFFER_MAX, NV_BUFFER_MAX],
    [TPM_PT.MODES, 0],
    [TPM_PT.MAX_CAP_BUFFER, 0x400],
  ];
}

/** No counter indices here (nv.ts defines ordinary ones only). */
const NV_COUNTERS_MAX = 0;
/** ms-tpm-20-ref's DAPreInstall_Init values; the simulator does not recover failures by time. */
const LOCKOUT_INTERVAL = 1000;
const LOCKOUT_RECOVERY = 1000;

/** TPM_PT values of the 0x200 group: the TPM's current state. */
function variableProperties(tpm: SimTpm): [number, number][] {
  const p = tpm.persistent;
  const v = tpm.volatile;
  const sessions = v.sessions.size;
  const counters = [...p.nv.values()].filter((i) => nvIndexType(i.public.attributes) === 1).length;
  const permanent = TPMA_PERMANENT.of(
    ...(p.owner.authValue.length ? ["ownerAuthSet" as const] : []),
    ...(p.endorsement.authValue.length ? ["endorsementAuthSet" as const] : []),
    ...(p.lockoutAuth.length ? ["lockoutAuthSet" as const] : []),
    ...(p.failedTries >= p.maxTries ? ["inLockout" as const] : []),
    "tpmGeneratedEPS",
  );
  // No HierarchyControl: every hierarchy stays enabled. `orderly` tells whether the last
  // Startup followed a Shutdown, which is what `safe` records at _TPM_Init.
  const startupClear = TPMA_STARTUP_CLEAR.of(
    "phEnable",
    "shEnable",
    "ehEnable",
    "phEnableNV",
    ...(v.safe ? ["orderly" as const] : []),
  );
  return [
    [TPM_PT.PERMANENT, permanent],
    [TPM_PT.STARTUP_CLEAR, startupClear],
    [TPM_PT.HR_NV_INDEX, p.nv.size],
    [TPM_PT.HR_LOADED, sessions],
    [TPM_PT.HR_LOADED_AVAIL, Math.max(0, tpm.sessionSlots - sessions)],
    [TPM_PT.HR_ACTIVE, sessions],
    [TPM_PT.HR_ACTIVE_AVAIL, Math.max(0, tpm.sessionSlots - sessions)],
    [TPM_PT.HR_TRANSIENT_AVAIL, Math.max(0, tpm.objectSlots - v.objects.size)],
    [TPM_PT.HR_PERSISTENT, p.persistent.size],
    [TPM_PT.HR_PERSISTENT_AVAIL, persistentAvail(p)],
    [TPM_PT.NV_COUNTERS, counters],
    [TPM_PT.NV_COUNTERS_AVAIL, Math.max(0, NV_COUNTERS_MAX - counters)],
    [TPM_PT.ALGORITHM_SET, 0],
    [TPM_PT.LOADED_CURVES, ECC_CURVES.length],
    [TPM_PT.LOCKOUT_COUNTER, p.failedTries],
    [TPM_PT.MAX_AUTH_FAIL, p.maxTries],
    [TPM_PT.LOCKOUT_INTERVAL, LOCKOUT_INTERVAL],
    [TPM_PT.LOCKOUT_RECOVERY, LOCKOUT_RECOVERY],
    [TPM_PT.NV_WRITE_RECOVERY, 0],
    [TPM_PT.AUDIT_COUNTER_0, 0],
    [TPM_PT.AUDIT_COUNTER_1, 0],
  ];
}

const PT_GROUP = 0x100;
const PT_FIXED = TPM_PT.FAMILY_INDICATOR;
const PT_VAR = TPM_PT.PERMANENT;

/** Properties from `start` to the end of its group (ms-tpm-20-ref TPMCapGetProperties). */
function tpmProperties(tpm: SimTpm, start: number): TPMS_TAGGED_PROPERTY[] {
  const first = Math.max(start, PT_FIXED);
  if (first >= PT_VAR + PT_GROUP) return [];
  const end = (Math.floor(first / PT_GROUP) + 1) * PT_GROUP;
  const group = first < PT_VAR ? fixedProperties(tpm) : variableProperties(tpm);
  return group.filter(([pt]) => pt >= first && pt < end).map(([property, value]) => ({ property, value }));
}

/** Handles of the type of `start`, from `start` on, ascending. */
function handles(tpm: SimTpm, start: number): number[] {
  const from = (hs: Iterable<number>) => [...hs].filter((h) => h >= start).sort((a, b) => a - b);
  switch (handleType(start)) {
    case TPM_HT.PCR:
      return from(Array.from({ length: PCR_COUNT }, (_, i) => i));
    case TPM_HT.NV_INDEX:
      return from(tpm.persistent.nv.keys());
    case TPM_HT.HMAC_SESSION: {
      // TPM_HT_LOADED_SESSION: every loaded session, HMAC or policy, by slot number.
      const slot = (h: number) => h & 0xffffff;
      return [...tpm.volatile.sessions.keys()]
        .filter((h) => slot(h) >= slot(start))
        .sort((a, b) => slot(a) - slot(b) || a - b);
    }
    case TPM_HT.POLICY_SESSION:
      // TPM_HT_SAVED_SESSION: sessions context-saved and not loaded; the simulator keeps none.
      return [];
    case TPM_HT.PERMANENT:
      return from(PERMANENT_HANDLES);
    case TPM_HT.TRANSIENT:
      return from(tpm.volatile.objects.keys());
    case TPM_HT.PERSISTENT:
      return from(tpm.persistent.persistent.keys());
  }
  throw rcParam(TPM_RC.HANDLE, 2);
}

/** TPMS_TAGGED_PCR_SELECT list (ms-tpm-20-ref PCRGetProperty); no policy or auth PCR groups here. */
function pcrProperties(start: number): { tag: number; pcrSelect: Uint8Array }[] {
  const byLocality = (kind: "reset" | "extend", loc: number) =>
    pcrBitmap((_, a) => ((kind === "reset" ? a.resetLocality : a.extendLocality) & (1 << loc)) !== 0);
  const tags: [number, Uint8Array][] = [
    [TPM_PT_PCR.SAVE, pcrBitmap((_, a) => a.stateSave)],
    ...[0, 1, 2, 3, 4].flatMap((loc): [number, Uint8Array][] => [
      [TPM_PT_PCR.EXTEND_L0 + 2 * loc, byLocality("extend", loc)],
      [TPM_PT_PCR.RESET_L0 + 2 * loc, byLocality("reset", loc)],
    ]),
    [TPM_PT_PCR.NO_INCREMENT, pcrBitmap((pcr) => TCB_PCRS.has(pcr))],
    [TPM_PT_PCR.DRTM_RESET, byLocality("reset", 4)],
  ];
  return tags.filter(([tag]) => tag >= start).map(([tag, pcrSelect]) => ({ tag, pcrSelect }));
}

/** Allocated banks: all 24 PCRs in each (ms-tpm-20-ref PCRCapGetAllocation: count 0 says "more"). */
function pcrAllocation(count: number): { items: TPMS_PCR_SELECTION[]; more: boolean } {
  if (count === 0) return { items: [], more: true };
  const all = pcrBitmap(() => true);
  return { items: PCR_BANKS.map((hash) => ({ hash, pcrSelect: all.slice() })), more: false };
}

function page<T>(items: readonly T[], count: number, max: number): { items: T[]; more: boolean } {
  const n = Math.min(count, max);
  return { items: items.slice(0, n), more: items.length > n };
}

function getCapability(
  tpm: SimTpm,
  { capability, property, propertyCount: count }: CommandArgs<typeof GetCapability>,
): ResponseArgs<typeof GetCapability> {
  let r: { items: TPMS_CAPABILITY_DATA["data"]; more: boolean };
  switch (capability) {
    case TPM_CAP.ALGS:
      r = page(ALGORITHMS.filter((a) => a.alg >= property), count, MAX.algs);
      break;
    case TPM_CAP.HANDLES:
      r = page(handles(tpm, property), count, MAX.handles);
      break;
    case TPM_CAP.COMMANDS: {
      const codes = [...tpm.implemented].filter((c) => c >= property).sort((a, b) => a - b);
      r = page(codes.map(commandAttributesOf), count, MAX.commands);
      break;
    }
    case TPM_CAP.PP_COMMANDS: // no command needs physical presence
    case TPM_CAP.AUDIT_COMMANDS: // no command is audited
      r = { items: [], more: false };
      break;
    case TPM_CAP.PCRS:
      if (property !== 0) throw rcParam(TPM_RC.VALUE, 2);
      r = pcrAllocation(count);
      break;
    case TPM_CAP.TPM_PROPERTIES:
      r = page(tpmProperties(tpm, property), count, MAX.properties);
      break;
    case TPM_CAP.PCR_PROPERTIES:
      r = page(pcrProperties(property), count, MAX.pcrProperties);
      break;
    case TPM_CAP.ECC_CURVES:
      r = page(ECC_CURVES.filter((c) => c >= property), count, MAX.curves);
      break;
    default:
      throw rcParam(TPM_RC.VALUE, 1);
  }
  return { moreData: r.more, capabilityData: { capability, data: r.items } };
}

export const capability = [handle(GetCapability, getCapability)];

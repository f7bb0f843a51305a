/**
 * TPM2_GetCapability made convenient: paging on moreData, TPM properties, vendor strings,
 * algorithms, handles and PCR banks (Part 3 §30.2).
 */
import type { Tpm } from "./client.ts";
import { GetCapability } from "./commands.ts";
import { HANDLE_RANGE, TPM_CAP, TPM_PT } from "./constants.ts";
import { TpmProtocolError } from "./errors.ts";
import { algName } from "./crypto.ts";
import {
  capabilityAlgs,
  capabilityHandles,
  capabilityPcrs,
  capabilityProperties,
  TPMA_ALGORITHM,
  type TPMS_CAPABILITY_DATA,
} from "./structures.ts";
import { selectedPcrs } from "./pcrs.ts";

/** Pages a TPM answers before we call it a loop (a TPM that always says moreData). */
const MAX_PAGES = 64;

/** All entries of one capability from `first` on, following moreData. `next` gives the following start. */
async function collect<T>(
  tpm: Tpm,
  capability: number,
  read: (data: TPMS_CAPABILITY_DATA) => T[],
  first: number,
  next: (last: T) => number,
  limit = 0xffffffff,
): Promise<T[]> {
  const out: T[] = [];
  let property = first;
  for (let page = 0; page < MAX_PAGES; page++) {
    const r = await tpm.execute(GetCapability, { capability, property, propertyCount: 0xff });
    if (r.capabilityData.capability !== capability) {
      throw new TpmProtocolError(
        `TPM answered capability ${r.capabilityData.capability} to a request for ${capability}`,
      );
    }
    const items = read(r.capabilityData);
    out.push(...items);
    if (!r.moreData || items.length === 0 || out.length >= limit) return out;
    const following = next(items[items.length - 1]!);
    // Entries come in ascending order from the requested start; anything else would page forever.
    if (following <= property) {
      throw new TpmProtocolError(
        `TPM2_GetCapability(${capability}) answered entries below the requested start 0x${property.toString(16)}`,
      );
    }
    property = following;
  }
  throw new TpmProtocolError(`TPM2_GetCapability(${capability}) still had more data after ${MAX_PAGES} pages`);
}

/** TPM properties from `first` (TPM_PT.FAMILY_INDICATOR for fixed, TPM_PT.PERMANENT for variable). */
export async function getProperties(tpm: Tpm, first: number = TPM_PT.FAMILY_INDICATOR): Promise<Map<number, number>> {
  const group = first & 0xffffff00;
  const items = await collect(tpm, TPM_CAP.TPM_PROPERTIES, capabilityProperties, first, (p) => p.property + 1);
  return new Map(items.filter((p) => (p.property & 0xffffff00) === group).map((p) => [p.property, p.value]));
}

/** One property, or undefined when the TPM does not report it. */
export async function getProperty(tpm: Tpm, property: number): Promise<number | undefined> {
  const r = await tpm.execute(GetCapability, { capability: TPM_CAP.TPM_PROPERTIES, property, propertyCount: 1 });
  const p = capabilityProperties(r.capabilityData)[0];
  return p?.property === property ? p.value : undefined;
}

/** Handles of one type: the top byte of `rangeStart` (HANDLE_RANGE.PERSISTENT_FIRST ...). */
export async function getHandles(tpm: Tpm, rangeStart: number): Promise<number[]> {
  const top = rangeStart >>> 24;
  const all = await collect(tpm, TPM_CAP.HANDLES, capabilityHandles, rangeStart, (h) => h + 1);
  return all.filter((h) => h >>> 24 === top);
}

export interface AlgorithmInfo {
  readonly alg: number;
  readonly name: string;
  readonly properties: string[];
}

export async function getAlgorithms(tpm: Tpm): Promise<AlgorithmInfo[]> {
  const items = await collect(tpm, TPM_CAP.ALGS, capabilityAlgs, 0, (a) => a.alg + 1);
  return items.map((a) => ({ alg: a.alg, name: algName(a.alg), properties: TPMA_ALGORITHM.names(a.algProperties) }));
}

export interface PcrBank {
  readonly hash: number;
  readonly name: string;
  /** PCR indices the bank has allocated. */
  readonly pcrs: number[];
}

/** Allocated PCR banks (TPM_CAP_PCRS); a bank with no PCRs selected is not active. */
export async function getPcrBanks(tpm: Tpm): Promise<PcrBank[]> {
  const r = await tpm.execute(GetCapability, { capability: TPM_CAP.PCRS, property: 0, propertyCount: 1 });
  return capabilityPcrs(r.capabilityData).map((s) => ({
    hash: s.hash,
    name: algName(s.hash),
    pcrs: selectedPcrs(s),
  }));
}

/** Four ASCII characters packed in a u32 property, NULs and padding spaces removed. */
export function propertyString(value: number | undefined): string {
  if (value === undefined) return "";
  const chars = [value >>> 24, (value >>> 16) & 0xff, (value >>> 8) & 0xff, value & 0xff];
  return String.fromCharCode(...chars.filter((c) => c !== 0)).trim();
}

export interface TpmInfo {
  readonly manufacturer: string;
  /** TPM_PT_VENDOR_STRING_1..4 joined, as Keylime reads them ("SW   TPM" on swtpm). */
  readonly vendorString: string;
  readonly vendorStrings: string[];
  readonly family: string;
  /** Spec revision, e.g. "1.64". */
  readonly revision: string;
  readonly level: number;
  readonly specDate: string;
  /** TPM_PT_FIRMWARE_VERSION_1 ‖ _2 as 16 hex digits, as Keylime and TPMS_ATTEST carry it. */
  readonly firmwareVersion: string;
  readonly inputBuffer: number;
  readonly nvBufferMax: number;
  readonly maxCommandSize: number;
  readonly maxResponseSize: number;
  readonly transientSlots: number;
  readonly activeSessionsMax: number;
  readonly pcrCount: number;
  readonly pcrBanks: PcrBank[];
  readonly algorithms: AlgorithmInfo[];
  readonly persistentHandles: number[];
  readonly nvIndices: number[];
}

export async function getTpmInfo(tpm: Tpm): Promise<TpmInfo> {
  const p = await getProperties(tpm, TPM_PT.FAMILY_INDICATOR);
  const v = (k: number) => p.get(k) ?? 0;
  const vendorStrings = [TPM_PT.VENDOR_STRING_1, TPM_PT.VENDOR_STRING_2, TPM_PT.VENDOR_STRING_3, TPM_PT.VENDOR_STRING_4]
    .map((k) => propertyString(p.get(k)));
  const rev = v(TPM_PT.REVISION);
  return {
    manufacturer: propertyString(p.get(TPM_PT.MANUFACTURER)),
    vendorString: vendorStrings.filter((s) => s).join(" "),
    vendorStrings,
    family: propertyString(p.get(TPM_PT.FAMILY_INDICATOR)),
    revision: `${Math.floor(rev / 100)}.${String(rev % 100).padStart(2, "0")}`,
    level: v(TPM_PT.LEVEL),
    specDate: `${v(TPM_PT.YEAR)} day ${v(TPM_PT.DAY_OF_YEAR)}`,
    firmwareVersion: [TPM_PT.FIRMWARE_VERSION_1, TPM_PT.FIRMWARE_VERSION_2]
      .map((k) => v(k).toString(16).padStart(8, "0"))
      .join(""),
    inputBuffer: v(TPM_PT.INPUT_BUFFER),
    nvBufferMax: v(TPM_PT.NV_BUFFER_MAX),
    maxCommandSize: v(TPM_PT.MAX_COMMAND_SIZE),
    maxResponseSize: v(TPM_PT.MAX_RESPONSE_SIZE),
    transientSlots: v(TPM_PT.HR_TRANSIENT_MIN),
    activeSessionsMax: v(TPM_PT.ACTIVE_SESSIONS_MAX),
    pcrCount: v(TPM_PT.PCR_COUNT),
    pcrBanks: await getPcrBanks(tpm),
    algorithms: await getAlgorithms(tpm),
    persistentHandles: await getHandles(tpm, HANDLE_RANGE.PERSISTENT_FIRST),
    nvIndices: await getHandles(tpm, HANDLE_RANGE.NV_INDEX_FIRST),
  };
}

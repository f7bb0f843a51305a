/**
 * PCR selection, reading, extending and resetting (Part 3 §22).
 *
 * TPM2_PCR_Read returns at most 8 digests and reports what it actually read in pcrSelectionOut;
 * we ask again for the rest until every requested PCR is read (spec/tpm.md §7.2). If the PCR update
 * counter moves between those calls the set is not consistent, so the read starts over.
 */
import type { Tpm } from "./client.ts";
import { PCR_Extend, PCR_Read, PCR_Reset } from "./commands.ts";
import { DIGEST_SIZE, PCR_SELECT_MIN } from "./constants.ts";
import { PcrsUnstableError, TpmProtocolError, TpmUsageError } from "./errors.ts";
import { algName } from "./crypto.ts";
import type { TPMS_PCR_SELECTION, TPMT_HA } from "./structures.ts";

/** A PCR selection for one bank; the bitmap is at least PCR_SELECT_MIN bytes (PC Client). */
export function pcrSelection(hash: number, pcrs: readonly number[]): TPMS_PCR_SELECTION {
  const max = pcrs.reduce((m, p) => Math.max(m, p), -1);
  const pcrSelect = new Uint8Array(Math.max(PCR_SELECT_MIN, (max >> 3) + 1));
  for (const p of pcrs) {
    if (!Number.isInteger(p) || p < 0 || p > 31) throw new TpmUsageError(`PCR index ${p} is out of range (0-31)`);
    pcrSelect[p >> 3]! |= 1 << (p & 7);
  }
  return { hash, pcrSelect };
}

/** PCR indices selected by a TPMS_PCR_SELECTION, ascending. */
export function selectedPcrs(sel: TPMS_PCR_SELECTION): number[] {
  const out: number[] = [];
  sel.pcrSelect.forEach((byte, i) => {
    for (let bit = 0; bit < 8; bit++) if (byte & (1 << bit)) out.push(i * 8 + bit);
  });
  return out;
}

/** PCR values by bank (hash algorithm) and index. */
export type PcrValues = Map<number, Map<number, Uint8Array>>;

export interface PcrReadResult {
  readonly values: PcrValues;
  /** The TPM's pcrUpdateCounter, constant over the whole read. */
  readonly updateCounter: number;
}

const MAX_RESTARTS = 8;

/** Read the selected PCRs of the selected banks, in as many TPM2_PCR_Read calls as it takes. */
export async function pcrRead(tpm: Tpm, selections: readonly TPMS_PCR_SELECTION[]): Promise<PcrReadResult> {
  for (let restart = 0; restart < MAX_RESTARTS; restart++) {
    const r = await readOnce(tpm, selections);
    if (r) return r;
  }
  throw new PcrsUnstableError(`PCRs kept changing during ${MAX_RESTARTS} attempts to read them; try again`);
}

async function readOnce(tpm: Tpm, selections: readonly TPMS_PCR_SELECTION[]): Promise<PcrReadResult | undefined> {
  const values: PcrValues = new Map(selections.map((s) => [s.hash, new Map()]));
  const pending = new Map(selections.map((s) => [s.hash, new Set(selectedPcrs(s))]));
  let counter: number | undefined;
  while ([...pending.values()].some((s) => s.size > 0)) {
    const ask = [...pending].filter(([, s]) => s.size > 0).map(([hash, s]) => pcrSelection(hash, [...s]));
    const r = await tpm.execute(PCR_Read, { pcrSelectionIn: ask });
    if (counter !== undefined && r.pcrUpdateCounter !== counter) return undefined;
    counter = r.pcrUpdateCounter;
    let i = 0;
    for (const sel of r.pcrSelectionOut) {
      const want = pending.get(sel.hash);
      for (const pcr of selectedPcrs(sel)) {
        const digest = r.pcrValues[i++];
        if (!want?.has(pcr) || !digest) {
          throw new TpmProtocolError(`TPM2_PCR_Read returned ${algName(sel.hash)} PCR ${pcr}, which was not asked for`);
        }
        if (digest.length !== DIGEST_SIZE[sel.hash]) {
          throw new TpmProtocolError(`TPM2_PCR_Read returned a ${digest.length}-byte ${algName(sel.hash)} digest`);
        }
        values.get(sel.hash)!.set(pcr, digest);
        want.delete(pcr);
      }
    }
    if (i !== r.pcrValues.length) throw new TpmProtocolError("TPM2_PCR_Read returned more digests than selected PCRs");
    if (i === 0) {
      // The TPM read nothing: the rest are PCRs or banks it does not have.
      const missing = [...pending].filter(([, s]) => s.size).map(([h, s]) => `${algName(h)}:${[...s].join(",")}`);
      throw new TpmUsageError(`TPM has no PCR ${missing.join(" ")}`);
    }
  }
  return { values, updateCounter: counter ?? 0 };
}

/** Extend one PCR in one or more banks. */
export async function pcrExtend(tpm: Tpm, pcr: number, digests: readonly TPMT_HA[]): Promise<void> {
  await tpm.execute(PCR_Extend, { pcrHandle: pcr, digests: [...digests] });
}

/** Reset a resettable PCR (16 and 23 at locality 0 on a PC Client TPM). */
export async function pcrReset(tpm: Tpm, pcr: number): Promise<void> {
  await tpm.execute(PCR_Reset, { pcrHandle: pcr });
}

/**
 * PCRs (Part 3 §22), random numbers (§16), TPM2_Hash (§15.4) and TPM2_ReadClock (§29.1).
 *
 * PCR attributes follow the PC Client profile as ms-tpm-20-ref's PCR.c (and so libtpms/swtpm)
 * encodes them: which localities may extend or reset each PCR, and which PCRs do not move the
 * pcrUpdateCounter.
 */
import type { CommandArgs, ResponseArgs } from "../../src/tpm/command.ts";
import { GetRandom, Hash, PCR_Extend, PCR_Read, PCR_Reset, ReadClock, StirRandom } from "../../src/tpm/commands.ts";
import { hmac } from "@noble/hashes/hmac";
import { sha256 } from "@noble/hashes/sha2";
import {
  handleType,
  LIMITS,
  TPM_ALG,
  TPM_GENERATED_VALUE,
  TPM_HT,
  TPM_RC,
  TPM_RH,
  TPM_ST,
} from "../../src/tpm/constants.ts";
import { concat, hash } from "../../src/tpm/crypto.ts";
import type { TPMS_PCR_SELECTION } from "../../src/tpm/structures.ts";
import { rc, rcHandle, rcParam } from "../rc.ts";
import type { Call, SimTpm } from "../sim_tpm.ts";
import { PCR_COUNT } from "../state.ts";
import { handle } from "./index.ts";
import { u16be } from "../../src/tpm/bytes.ts";

/** Hash algorithms the simulator implements (TPMI_ALG_HASH accepts no other). */
export const HASH_ALGS: ReadonlySet<number> = new Set([TPM_ALG.SHA1, TPM_ALG.SHA256, TPM_ALG.SHA384, TPM_ALG.SHA512]);

/** PCR_SELECT_MIN = PCR_SELECT_MAX for 24 PCRs: TPMS_PCR_SELECT.sizeofSelect must be 3. */
const PCR_SELECT_SIZE = 3;

export interface PcrAttributes {
  /** Saved by TPM2_Shutdown(STATE). */
  readonly stateSave: boolean;
  /** Bit n set: locality n may TPM2_PCR_Reset it. */
  readonly resetLocality: number;
  /** Bit n set: locality n may extend it. */
  readonly extendLocality: number;
}

const STATIC_RTM: PcrAttributes = { stateSave: true, resetLocality: 0, extendLocality: 0x1f };
const dynamic = (resetLocality: number, extendLocality: number): PcrAttributes => ({
  stateSave: false,
  resetLocality,
  extendLocality,
});

/** PCR 0-23 (ms-tpm-20-ref PCR.c s_initAttributes). */
export const PCR_ATTRIBUTES: readonly PcrAttributes[] = [
  ...Array.from({ length: 16 }, () => STATIC_RTM),
  dynamic(0x0f, 0x1f), // 16 debug
  dynamic(0x10, 0x1c), // 17 locality 4
  dynamic(0x10, 0x1c), // 18 locality 3
  dynamic(0x10, 0x0c), // 19 locality 2
  dynamic(0x14, 0x0e), // 20 locality 1
  dynamic(0x14, 0x04), // 21 dynamic OS
  dynamic(0x14, 0x04), // 22 dynamic OS
  dynamic(0x0f, 0x1f), // 23 application
];

/** The TCB group: changes to these do not increment pcrUpdateCounter (PCRBelongsTCBGroup). */
export const TCB_PCRS: ReadonlySet<number> = new Set([20, 21, 22]);

/** A 3-byte PCR bitmap of the PCRs for which `pick` is true. */
export function pcrBitmap(pick: (pcr: number, a: PcrAttributes) => boolean): Uint8Array {
  const out = new Uint8Array(PCR_SELECT_SIZE);
  PCR_ATTRIBUTES.forEach((a, pcr) => {
    if (pick(pcr, a)) out[pcr >> 3]! |= 1 << (pcr & 7);
  });
  return out;
}

/** Bit of a locality in a locality mask; extended localities (32 and up) have none here. */
const localityBit = (locality: number) => (locality <= 4 ? 1 << locality : 0);

/** The PCR a handle names, or TPM_RC_VALUE for handle 1 (TPMI_DH_PCR). */
function pcrIndex(handle: number): number {
  if (handleType(handle) !== TPM_HT.PCR || handle >= PCR_COUNT) throw rcHandle(TPM_RC.VALUE, 1);
  return handle;
}

/** A PCR changed: bump pcrUpdateCounter unless it is in the TCB group (ms-tpm-20-ref PCRChanged). */
export function pcrChanged(tpm: SimTpm, pcr: number): void {
  if (TCB_PCRS.has(pcr)) return;
  tpm.volatile.pcrUpdateCounter = (tpm.volatile.pcrUpdateCounter + 1) >>> 0 || 1;
}

/** What unmarshalling TPML_PCR_SELECTION refuses: unknown hash, sizeofSelect other than 3. */
function checkSelections(selections: readonly TPMS_PCR_SELECTION[], n: number): void {
  for (const s of selections) {
    if (!HASH_ALGS.has(s.hash)) throw rcParam(TPM_RC.HASH, n);
    if (s.pcrSelect.length !== PCR_SELECT_SIZE) throw rcParam(TPM_RC.VALUE, n);
  }
}

/**
 * At most 8 digests; pcrSelectionOut keeps every bank asked for (an unallocated one with nothing
 * selected) and says which PCRs were read (ms-tpm-20-ref PCRRead; swtpm answers the same, flow-trace/119).
 */
function pcrRead(tpm: SimTpm, { pcrSelectionIn }: CommandArgs<typeof PCR_Read>): ResponseArgs<typeof PCR_Read> {
  checkSelections(pcrSelectionIn, 1);
  const pcrValues: Uint8Array[] = [];
  const pcrSelectionOut = pcrSelectionIn.map(({ hash: alg, pcrSelect: asked }) => {
    const bank = tpm.volatile.pcrs.get(alg);
    const pcrSelect = new Uint8Array(asked.length);
    for (let pcr = 0; bank && pcr < PCR_COUNT && pcrValues.length < LIMITS.MAX_DIGESTS; pcr++) {
      if (!(asked[pcr >> 3]! & (1 << (pcr & 7)))) continue;
      pcrValues.push(bank[pcr]!.slice());
      pcrSelect[pcr >> 3]! |= 1 << (pcr & 7);
    }
    return { hash: alg, pcrSelect };
  });
  return { pcrUpdateCounter: tpm.volatile.pcrUpdateCounter, pcrSelectionOut, pcrValues };
}

/** PCR := H(PCR ‖ digest) in each listed bank; banks that are not allocated are skipped. */
function pcrExtend(
  tpm: SimTpm,
  { pcrHandle, digests }: CommandArgs<typeof PCR_Extend>,
  call: Call,
): ResponseArgs<typeof PCR_Extend> {
  for (const d of digests) if (d.hashAlg !== TPM_ALG.NULL && !HASH_ALGS.has(d.hashAlg)) throw rcParam(TPM_RC.HASH, 1);
  if (pcrHandle === TPM_RH.NULL) return {};
  const pcr = pcrIndex(pcrHandle);
  if (!(PCR_ATTRIBUTES[pcr]!.extendLocality & localityBit(call.locality))) throw rc(TPM_RC.LOCALITY);
  for (const { hashAlg, digest } of digests) {
    const bank = tpm.volatile.pcrs.get(hashAlg);
    if (!bank || digest === null) continue;
    bank[pcr] = hash(hashAlg, bank[pcr]!, digest);
    // Once per bank, as ms-tpm-20-ref PCRExtend does.
    pcrChanged(tpm, pcr);
  }
  return {};
}

/** Zero a resettable PCR in every bank. Locality 4 resets nothing: PCR 17 is the DRTM PCR. */
function pcrReset(
  tpm: SimTpm,
  { pcrHandle }: CommandArgs<typeof PCR_Reset>,
  call: Call,
): ResponseArgs<typeof PCR_Reset> {
  const pcr = pcrIndex(pcrHandle);
  const allowed = call.locality !== 4 && (PCR_ATTRIBUTES[pcr]!.resetLocality & localityBit(call.locality)) !== 0;
  if (!allowed) throw rc(TPM_RC.LOCALITY);
  for (const bank of tpm.volatile.pcrs.values()) bank[pcr] = new Uint8Array(bank[pcr]!.length);
  pcrChanged(tpm, pcr);
  return {};
}

/** The HMAC of tickets: the context integrity hash (ms-tpm-20-ref CONTEXT_INTEGRITY_HASH_ALG). */
export const TICKET_HASH = TPM_ALG.SHA256;

function proofOf(tpm: SimTpm, hierarchy: number): Uint8Array {
  const p = tpm.persistent;
  if (hierarchy === TPM_RH.OWNER) return p.owner.proof;
  if (hierarchy === TPM_RH.ENDORSEMENT) return p.endorsement.proof;
  if (hierarchy === TPM_RH.PLATFORM) return p.platform.proof;
  return tpm.volatile.nullHierarchy.proof;
}

export interface HashCheckTicket {
  tag: number;
  hierarchy: number;
  digest: Uint8Array;
}

/**
 * TPMT_TK_HASHCHECK: HMAC_proof(TPM_ST_HASHCHECK ‖ hashAlg ‖ digest) (ms-tpm-20-ref Ticket.c
 * TicketComputeHashCheck); the NULL ticket for TPM_RH_NULL. Sign with a restricted key recomputes
 * this to check that the TPM hashed the message itself.
 */
export function hashCheckTicket(tpm: SimTpm, hierarchy: number, hashAlg: number, digest: Uint8Array): HashCheckTicket {
  if (hierarchy === TPM_RH.NULL) return { tag: TPM_ST.HASHCHECK, hierarchy: TPM_RH.NULL, digest: new Uint8Array(0) };
  const mac = hmac(sha256, proofOf(tpm, hierarchy), concat(u16be(TPM_ST.HASHCHECK), u16be(hashAlg), digest));
  return { tag: TPM_ST.HASHCHECK, hierarchy, digest: mac };
}

const HIERARCHIES: ReadonlySet<number> = new Set([TPM_RH.OWNER, TPM_RH.ENDORSEMENT, TPM_RH.PLATFORM, TPM_RH.NULL]);

/** Data that starts like a TPMS_ATTEST gets no ticket, so it cannot be signed as if the TPM made it. */
function startsWithGenerated(data: Uint8Array): boolean {
  return data.length >= 4 && new DataView(data.buffer, data.byteOffset).getUint32(0) === TPM_GENERATED_VALUE;
}

function hashCommand(tpm: SimTpm, args: CommandArgs<typeof Hash>): ResponseArgs<typeof Hash> {
  if (!HASH_ALGS.has(args.hashAlg)) throw rcParam(TPM_RC.HASH, 2);
  if (!HIERARCHIES.has(args.hierarchy)) throw rcParam(TPM_RC.VALUE, 3);
  const outHash = hash(args.hashAlg, args.data);
  const ticketHierarchy = startsWithGenerated(args.data) ? TPM_RH.NULL : args.hierarchy;
  return { outHash, validation: hashCheckTicket(tpm, ticketHierarchy, args.hashAlg, outHash) };
}

function readClock(tpm: SimTpm): ResponseArgs<typeof ReadClock> {
  const clock = tpm.tickClock();
  const p = tpm.persistent;
  return {
    currentTime: {
      time: tpm.timeSinceInit(),
      clockInfo: { clock, resetCount: p.resetCount, restartCount: p.restartCount, safe: tpm.volatile.safe },
    },
  };
}

export const pcr = [
  handle(PCR_Read, pcrRead),
  handle(PCR_Extend, pcrExtend),
  handle(PCR_Reset, pcrReset),
  // At most sizeof(TPMU_HA) bytes per call (Part 3 §16.1).
  handle(GetRandom, (tpm, { bytesRequested }) => ({ randomBytes: tpm.random(Math.min(bytesRequested, 64)) })),
  // The host CSPRNG takes no caller input; accepting it is allowed, since added input never weakens a DRBG.
  handle(StirRandom, () => ({})),
  handle(Hash, hashCommand),
  handle(ReadClock, readClock),
];

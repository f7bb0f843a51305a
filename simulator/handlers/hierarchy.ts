/**
 * Hierarchy commands (Part 3 §24.6, §24.8, §25.2): TPM2_Clear, TPM2_HierarchyChangeAuth and
 * TPM2_DictionaryAttackLockReset, as ms-tpm-20-ref Clear.c / HierarchyChangeAuth.c do them.
 */
import type { CommandArgs, ResponseArgs } from "../../src/tpm/command.ts";
import { Clear, DictionaryAttackLockReset, HierarchyChangeAuth } from "../../src/tpm/commands.ts";
import { DIGEST_SIZE, TPM_RC, TPM_RH } from "../../src/tpm/constants.ts";
import { trimAuth } from "../../src/tpm/session_digests.ts";
import { TPMA_NV } from "../../src/tpm/structures.ts";
import { rcHandle, rcParam } from "../rc.ts";
import type { SimTpm } from "../sim_tpm.ts";
import { handle } from "./index.ts";
import { pcrChanged, TICKET_HASH } from "./pcr.ts";

const EMPTY = new Uint8Array(0);

/**
 * Everything owned by the owner goes: a new storage seed (SPS), new owner and endorsement proofs,
 * empty owner, endorsement and lockout authValues; objects of the storage and endorsement
 * hierarchies flushed, loaded or persistent; indices the owner defined deleted; DA counter, Clock,
 * resetCount and restartCount back to zero, Safe YES. The endorsement seed stays, so the EK (and
 * its certificate in platform NV) survive.
 */
async function clear(tpm: SimTpm, { authHandle }: CommandArgs<typeof Clear>): Promise<ResponseArgs<typeof Clear>> {
  if (authHandle !== TPM_RH.LOCKOUT && authHandle !== TPM_RH.PLATFORM) throw rcHandle(TPM_RC.VALUE, 1);
  const p = tpm.persistent;
  p.owner.seed = tpm.random(p.owner.seed.length);
  p.owner.proof = tpm.random(p.owner.proof.length);
  p.endorsement.proof = tpm.random(p.endorsement.proof.length);
  p.owner.authValue = EMPTY;
  p.endorsement.authValue = EMPTY;
  p.lockoutAuth = EMPTY;

  const cleared = (hierarchy: number) => hierarchy === TPM_RH.OWNER || hierarchy === TPM_RH.ENDORSEMENT;
  for (const [h, o] of tpm.volatile.objects) if (cleared(o.hierarchy)) tpm.volatile.objects.delete(h);
  for (const [h, o] of p.persistent) if (cleared(o.hierarchy)) p.persistent.delete(h);
  for (const [h, nv] of p.nv) if (!TPMA_NV.has(nv.public.attributes, "PLATFORMCREATE")) p.nv.delete(h);

  p.failedTries = 0;
  tpm.tickClock(); // account the time so far before Clock restarts at zero
  p.clock = 0n;
  tpm.volatile.safe = true;
  p.resetCount = 0;
  p.restartCount = 0;
  pcrChanged(tpm, 0);
  await tpm.save();
  return {};
}

/**
 * A new authValue for a hierarchy, trailing zeros removed; at most the size of the context
 * integrity digest. It takes effect for the next command (a password session's response has no
 * HMAC to compute with it).
 */
async function hierarchyChangeAuth(
  tpm: SimTpm,
  { authHandle, newAuth }: CommandArgs<typeof HierarchyChangeAuth>,
): Promise<ResponseArgs<typeof HierarchyChangeAuth>> {
  const p = tpm.persistent;
  const set: Readonly<Record<number, (v: Uint8Array) => void>> = {
    [TPM_RH.OWNER]: (v) => (p.owner.authValue = v),
    [TPM_RH.ENDORSEMENT]: (v) => (p.endorsement.authValue = v),
    [TPM_RH.PLATFORM]: (v) => (p.platform.authValue = v),
    [TPM_RH.LOCKOUT]: (v) => (p.lockoutAuth = v),
  };
  const apply = set[authHandle];
  if (!apply) throw rcHandle(TPM_RC.VALUE, 1); // not a TPMI_RH_HIERARCHY_AUTH
  const auth = trimAuth(newAuth);
  if (auth.length > DIGEST_SIZE[TICKET_HASH]!) throw rcParam(TPM_RC.SIZE, 1);
  apply(auth.slice());
  await tpm.save();
  return {};
}

async function dictionaryAttackLockReset(
  tpm: SimTpm,
  { lockHandle }: CommandArgs<typeof DictionaryAttackLockReset>,
): Promise<ResponseArgs<typeof DictionaryAttackLockReset>> {
  if (lockHandle !== TPM_RH.LOCKOUT) throw rcHandle(TPM_RC.VALUE, 1);
  tpm.persistent.failedTries = 0;
  await tpm.save();
  return {};
}

export const hierarchy = [
  handle(Clear, clear),
  handle(HierarchyChangeAuth, hierarchyChangeAuth),
  handle(DictionaryAttackLockReset, dictionaryAttackLockReset),
];

/**
 * NV indices (Part 3 §31): define, undefine, read the public area, read and write. Only ordinary
 * indices (TPM_NT_ORDINARY): counter, bits, extend and PIN indices need commands the simulator does
 * not implement, and ms-tpm-20-ref refuses to define them then too. Checks and their order follow
 * ms-tpm-20-ref NV_DefineSpace.c, NV_Read.c, NV_Write.c and NvReadAccessChecks/NvWriteAccessChecks.
 */
import type { CommandArgs, ResponseArgs } from "../../src/tpm/command.ts";
import { NV_DefineSpace, NV_Read, NV_ReadPublic, NV_UndefineSpace, NV_Write } from "../../src/tpm/commands.ts";
import { DIGEST_SIZE, handleType, TPM_HT, TPM_RC, TPM_RH } from "../../src/tpm/constants.ts";
import { nvName } from "../../src/tpm/crypto.ts";
import { trimAuth } from "../../src/tpm/session_digests.ts";
import { nvIndexType, TPMA_NV } from "../../src/tpm/structures.ts";
import { assertIndexFits, NV_BUFFER_MAX, NV_INDEX_MAX } from "../nv_limits.ts";
import { rc, rcHandle, rcParam } from "../rc.ts";
import type { Call, SimTpm } from "../sim_tpm.ts";
import type { NvIndex, Persistent } from "../state.ts";
import { handle } from "./index.ts";
import { HASH_ALGS } from "./pcr.ts";

/** TPMA_NV bits 9:8 and 24:20 are reserved (Part 2 §13.4). */
const RESERVED_BITS = 0x01f00300;
const TPM_NT_ORDINARY = 0;

type NvBit = Parameters<typeof TPMA_NV.has>[1];
const has = (attributes: number, bit: NvBit) => TPMA_NV.has(attributes, bit);
const anyOf = (attributes: number, ...bits: NvBit[]) => bits.some((b) => has(attributes, b));

/** TPMI_RH_PROVISION: owner or platform, else TPM_RC_VALUE for handle 1. */
function provision(handle: number): void {
  if (handle !== TPM_RH.OWNER && handle !== TPM_RH.PLATFORM) throw rcHandle(TPM_RC.VALUE, 1);
}

/** The defined index a handle names (the pipeline has checked that it exists). */
function index(tpm: SimTpm, handle: number, n: number): NvIndex {
  if (handleType(handle) !== TPM_HT.NV_INDEX) throw rcHandle(TPM_RC.VALUE, n);
  const nv = tpm.persistent.nv.get(handle);
  if (!nv) throw rcHandle(TPM_RC.HANDLE, n);
  return nv;
}

async function defineSpace(
  tpm: SimTpm,
  { authHandle, auth, publicInfo: pub }: CommandArgs<typeof NV_DefineSpace>,
): Promise<ResponseArgs<typeof NV_DefineSpace>> {
  provision(authHandle);
  const a = pub.attributes;
  // What unmarshalling TPM2B_NV_PUBLIC refuses.
  if (handleType(pub.nvIndex) !== TPM_HT.NV_INDEX) throw rcParam(TPM_RC.VALUE, 2);
  if (!HASH_ALGS.has(pub.nameAlg)) throw rcParam(TPM_RC.HASH, 2);
  if ((a & RESERVED_BITS) !== 0) throw rcParam(TPM_RC.RESERVED_BITS, 2);

  const nameSize = DIGEST_SIZE[pub.nameAlg]!;
  // Only TPM2_NV_UndefineSpaceSpecial could delete a POLICY_DELETE index, and it is not implemented.
  if (has(a, "POLICY_DELETE")) throw rcParam(TPM_RC.ATTRIBUTES, 2);
  if (pub.authPolicy.length !== 0 && pub.authPolicy.length !== nameSize) throw rcParam(TPM_RC.SIZE, 2);
  const authValue = trimAuth(auth);
  if (authValue.length > nameSize) throw rcParam(TPM_RC.SIZE, 1);
  if (nvIndexType(a) !== TPM_NT_ORDINARY) throw rcParam(TPM_RC.ATTRIBUTES, 2);
  if (pub.dataSize > NV_INDEX_MAX) throw rcParam(TPM_RC.SIZE, 2);
  if (anyOf(a, "WRITTEN", "WRITELOCKED", "READLOCKED")) throw rcParam(TPM_RC.ATTRIBUTES, 2);
  // There must be a way to read it and a way to write it.
  if (!anyOf(a, "OWNERREAD", "PPREAD", "AUTHREAD", "POLICYREAD")) throw rcParam(TPM_RC.ATTRIBUTES, 2);
  if (!anyOf(a, "OWNERWRITE", "PPWRITE", "AUTHWRITE", "POLICYWRITE")) throw rcParam(TPM_RC.ATTRIBUTES, 2);
  if (has(a, "CLEAR_STCLEAR") && has(a, "WRITEDEFINE")) throw rcParam(TPM_RC.ATTRIBUTES, 2);
  // Whoever defines it must be able to delete it.
  if (has(a, "PLATFORMCREATE") !== (authHandle === TPM_RH.PLATFORM)) throw rcHandle(TPM_RC.ATTRIBUTES, 1);
  if (has(a, "WRITEALL") && pub.dataSize > NV_BUFFER_MAX) throw rcParam(TPM_RC.SIZE, 2);
  if (tpm.persistent.nv.has(pub.nvIndex)) throw rc(TPM_RC.NV_DEFINED);
  assertIndexFits(tpm.persistent, pub);

  tpm.persistent.nv.set(pub.nvIndex, {
    public: { ...pub, authPolicy: pub.authPolicy.slice() },
    authValue: authValue.slice(),
    // Unwritten data reads as erased flash once a partial write makes the index readable.
    data: new Uint8Array(pub.dataSize).fill(0xff),
  });
  await tpm.save();
  return {};
}

async function undefineSpace(
  tpm: SimTpm,
  { authHandle, nvIndex }: CommandArgs<typeof NV_UndefineSpace>,
): Promise<ResponseArgs<typeof NV_UndefineSpace>> {
  provision(authHandle);
  const nv = index(tpm, nvIndex, 2);
  if (has(nv.public.attributes, "POLICY_DELETE")) throw rcHandle(TPM_RC.ATTRIBUTES, 2);
  // The owner may delete only what the owner defined; the platform may delete either.
  if (authHandle === TPM_RH.OWNER && has(nv.public.attributes, "PLATFORMCREATE")) throw rc(TPM_RC.NV_AUTHORIZATION);
  tpm.persistent.nv.delete(nvIndex);
  await tpm.save();
  return {};
}

function readPublic(tpm: SimTpm, { nvIndex }: CommandArgs<typeof NV_ReadPublic>): ResponseArgs<typeof NV_ReadPublic> {
  const nv = index(tpm, nvIndex, 1);
  return { nvPublic: nv.public, nvName: nvName(nv.public) };
}

const ACCESS = {
  read: { locked: "READLOCKED", owner: "OWNERREAD", platform: "PPREAD", auth: "AUTHREAD", policy: "POLICYREAD" },
  write: { locked: "WRITELOCKED", owner: "OWNERWRITE", platform: "PPWRITE", auth: "AUTHWRITE", policy: "POLICYWRITE" },
} as const;

/** Who may read or write: the index itself, the owner or the platform, as its attributes say. */
function checkAccess(call: Call, authHandle: number, nv: NvIndex, op: "read" | "write"): void {
  const bits = ACCESS[op];
  const a = nv.public.attributes;
  if (authHandle === nv.public.nvIndex) {
    // The pipeline checked the secret; an index also says which kind of secret it takes
    // (ms-tpm-20-ref IsAuthValueAvailable / IsAuthPolicyAvailable).
    const policy = call.sessions[0]?.session?.kind === "policy";
    if (!has(a, policy ? bits.policy : bits.auth)) throw rc(TPM_RC.AUTH_UNAVAILABLE);
  } else if (
    handleType(authHandle) !== TPM_HT.NV_INDEX && authHandle !== TPM_RH.OWNER && authHandle !== TPM_RH.PLATFORM
  ) {
    throw rcHandle(TPM_RC.VALUE, 1); // not a TPMI_RH_NV_AUTH
  }
  if (has(a, bits.locked)) throw rc(TPM_RC.NV_LOCKED);
  const allowed = authHandle === TPM_RH.OWNER
    ? has(a, bits.owner)
    : authHandle === TPM_RH.PLATFORM
    ? has(a, bits.platform)
    : authHandle === nv.public.nvIndex;
  if (!allowed) throw rc(TPM_RC.NV_AUTHORIZATION);
}

function read(
  tpm: SimTpm,
  { authHandle, nvIndex, size, offset }: CommandArgs<typeof NV_Read>,
  call: Call,
): ResponseArgs<typeof NV_Read> {
  const nv = index(tpm, nvIndex, 2);
  checkAccess(call, authHandle, nv, "read");
  if (!has(nv.public.attributes, "WRITTEN")) throw rc(TPM_RC.NV_UNINITIALIZED);
  if (size > NV_BUFFER_MAX) throw rcParam(TPM_RC.VALUE, 1);
  if (offset > nv.public.dataSize) throw rcParam(TPM_RC.VALUE, 2);
  if (size > nv.public.dataSize - offset) throw rc(TPM_RC.NV_RANGE);
  return { data: nv.data.slice(offset, offset + size) };
}

async function write(
  tpm: SimTpm,
  { authHandle, nvIndex, data, offset }: CommandArgs<typeof NV_Write>,
  call: Call,
): Promise<ResponseArgs<typeof NV_Write>> {
  // TPM2B_MAX_NV_BUFFER holds at most NV_BUFFER_MAX on this TPM (our codec allows more).
  if (data.length > NV_BUFFER_MAX) throw rcParam(TPM_RC.SIZE, 1);
  const nv = index(tpm, nvIndex, 2);
  checkAccess(call, authHandle, nv, "write");
  const pub = nv.public;
  if (offset > pub.dataSize) throw rcParam(TPM_RC.VALUE, 2);
  if (data.length > pub.dataSize - offset) throw rc(TPM_RC.NV_RANGE);
  if (has(pub.attributes, "WRITEALL") && data.length < pub.dataSize) throw rc(TPM_RC.NV_RANGE);
  nv.data.set(data, offset);
  // The first write sets WRITTEN, which changes the index's Name.
  if (!has(pub.attributes, "WRITTEN")) {
    nv.public = { ...pub, attributes: (pub.attributes | TPMA_NV.of("WRITTEN")) >>> 0 };
  }
  await tpm.save();
  return {};
}

/**
 * What TPM Reset and TPM Restart do to indices (ms-tpm-20-ref NvSetStartupAttributes): a
 * CLEAR_STCLEAR index, and an ORDERLY one at Reset, reads as unwritten again. TPM Resume keeps
 * them. For TPM2_Startup to call.
 */
export function nvStartup(p: Persistent, reset: boolean): void {
  for (const nv of p.nv.values()) {
    const a = nv.public.attributes;
    if (has(a, "CLEAR_STCLEAR") || (reset && has(a, "ORDERLY"))) {
      nv.public = { ...nv.public, attributes: (a & ~TPMA_NV.of("WRITTEN")) >>> 0 };
    }
  }
}

export const nv = [
  handle(NV_DefineSpace, defineSpace),
  handle(NV_UndefineSpace, undefineSpace),
  handle(NV_ReadPublic, readPublic),
  handle(NV_Read, read),
  handle(NV_Write, write),
];

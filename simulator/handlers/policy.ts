/**
 * Policy commands (Part 3 §23, §11.2; ms-tpm-20-ref Policy*.c, PolicyParameterChecks): each extends
 * the session's policyDigest and, for a real (non-trial) policy session, first checks what the
 * assertion claims. The digests are computed here on their own, not with src/tpm/policy.ts, so the
 * tests comparing the two can catch a mistake in either.
 */
import { createHmac } from "node:crypto";
import type { CommandArgs, ResponseArgs } from "../../src/tpm/command.ts";
import {
  PolicyAuthValue,
  PolicyCommandCode,
  PolicyGetDigest,
  PolicyOR,
  PolicyPassword,
  PolicyPCR,
  PolicyRestart,
  PolicySecret,
} from "../../src/tpm/commands.ts";
import { DIGEST_SIZE, handleType, TPM_CC, TPM_HT, TPM_RC, TPM_RH, TPM_ST } from "../../src/tpm/constants.ts";
import { concat, hash } from "../../src/tpm/crypto.ts";
import { encode } from "../../src/tpm/marshal.ts";
import { TPMA_NV, TPML_PCR_SELECTION, type TPMS_PCR_SELECTION } from "../../src/tpm/structures.ts";
import type { PolicyExtras } from "../context_blob.ts";
import { rc, rcHandle, rcParam } from "../rc.ts";
import { resetPolicy, type SimTpm } from "../sim_tpm.ts";
import { PCR_COUNT, type PolicyState, type SimSession } from "../state.ts";
import { handle } from "./index.ts";
import { u32be, u64be } from "../../src/tpm/bytes.ts";
import { sameBytes } from "../../src/tpm/bytes.ts";

type Args<C> = CommandArgs<C>;
type Out<C> = ResponseArgs<C>;

const EMPTY = new Uint8Array(0);
/** TPM2B_TIMEOUT's flag for "expires on TPM Reset" (ms-tpm-20-ref PolicySecret.c EXPIRATION_BIT). */
const EXPIRES_ON_RESET = 1n << 63n;

// ---- session state PolicyState has no field for -----------------------------------------------------

/**
 * cpHash and PCR counter of a policy session, keyed by its PolicyState object: resetPolicy() and
 * PolicyRestart replace that object, which drops these with it.
 */
const extras = new WeakMap<PolicyState, PolicyExtras>();

export function policyExtras(p: PolicyState): PolicyExtras {
  let e = extras.get(p);
  if (!e) {
    e = { cpHash: EMPTY, pcrCounter: null };
    extras.set(p, e);
  }
  return e;
}

/** After ContextLoad: the saved extras go back with the session. */
export function restorePolicyExtras(p: PolicyState, e: PolicyExtras): void {
  extras.set(p, { cpHash: e.cpHash, pcrCounter: e.pcrCounter });
}

// ---- helpers --------------------------------------------------------------------------------------

/** The policy (or trial) session named by handle n; TPMI_SH_POLICY rejects anything else with VALUE. */
function policySession(tpm: SimTpm, handle: number, n: number): SimSession {
  if (handleType(handle) !== TPM_HT.POLICY_SESSION) throw rcHandle(TPM_RC.VALUE, n);
  const s = tpm.volatile.sessions.get(handle);
  if (!s) throw rcHandle(TPM_RC.HANDLE, n);
  return s;
}

/** policyDigest ← H(policyDigest ‖ u32 commandCode ‖ parts). */
function extend(s: SimSession, cc: number, ...parts: Uint8Array[]): void {
  s.policy.digest = hash(s.authHash, s.policy.digest, u32be(cc), ...parts);
}

/** EntityGetHierarchy (ms-tpm-20-ref Entity.c): whose proof keys a ticket about this entity. */
function entityHierarchy(tpm: SimTpm, handle: number): number {
  switch (handleType(handle)) {
    case TPM_HT.PERMANENT:
      return handle === TPM_RH.PLATFORM || handle === TPM_RH.ENDORSEMENT || handle === TPM_RH.NULL
        ? handle
        : TPM_RH.OWNER;
    case TPM_HT.NV_INDEX: {
      const nv = tpm.persistent.nv.get(handle);
      return nv && TPMA_NV.has(nv.public.attributes, "PLATFORMCREATE") ? TPM_RH.PLATFORM : TPM_RH.OWNER;
    }
    case TPM_HT.TRANSIENT:
    case TPM_HT.PERSISTENT:
      return tpm.object(handle, 1).hierarchy;
    default:
      return TPM_RH.OWNER;
  }
}

function hierarchyProof(tpm: SimTpm, hierarchy: number): Uint8Array {
  const p = tpm.persistent;
  if (hierarchy === TPM_RH.PLATFORM) return p.platform.proof;
  if (hierarchy === TPM_RH.ENDORSEMENT) return p.endorsement.proof;
  if (hierarchy === TPM_RH.NULL) return tpm.volatile.nullHierarchy.proof;
  return p.owner.proof;
}

// ---- TPM2_PolicySecret (Part 3 §23.4) ------------------------------------------------------------

function policySecret(tpm: SimTpm, a: Args<typeof PolicySecret>): Out<typeof PolicySecret> {
  // The pipeline has already checked the authorization of authHandle; TPMI_DH_ENTITY has no sessions.
  const authType = handleType(a.authHandle);
  if (authType === TPM_HT.HMAC_SESSION || authType === TPM_HT.POLICY_SESSION) throw rcHandle(TPM_RC.VALUE, 1);
  const s = policySession(tpm, a.policySession, 2);
  const authName = tpm.entity(a.authHandle, 1).name;
  const e = policyExtras(s.policy);
  let authTimeout = 0n;
  if (s.kind !== "trial") {
    // PolicyParameterChecks: the nonce binds the assertion to this session, cpHashA to one command.
    if (a.nonceTPM.length !== 0 && !sameBytes(a.nonceTPM, s.nonceTPM)) throw rcParam(TPM_RC.NONCE, 1);
    if (a.cpHashA.length !== 0) {
      if (a.cpHashA.length !== s.policy.digest.length) throw rcParam(TPM_RC.SIZE, 2);
      if (e.cpHash.length !== 0 && !sameBytes(e.cpHash, a.cpHashA)) throw rc(TPM_RC.CPHASH);
    }
    // ComputeAuthTimeout: |expiration| seconds from now, in ms of the TPM's clock.
    if (a.expiration !== 0) authTimeout = tpm.tickClock() + BigInt(Math.abs(a.expiration)) * 1000n;
  }
  // d ← H(H(d ‖ CC_PolicySecret ‖ authName) ‖ policyRef), for trial sessions too.
  extend(s, TPM_CC.PolicySecret, authName);
  s.policy.digest = hash(s.authHash, s.policy.digest, a.policyRef);
  if (a.cpHashA.length !== 0) e.cpHash = a.cpHashA;

  if (a.expiration < 0 && s.kind !== "trial") {
    // A ticket lets PolicyTicket replay this assertion until authTimeout (TicketComputeAuth).
    const expiresOnReset = a.nonceTPM.length === 0;
    const hierarchy = entityHierarchy(tpm, a.authHandle);
    const mac = createHmac("sha256", hierarchyProof(tpm, hierarchy))
      .update(concat(
        Uint8Array.of(TPM_ST.AUTH_SECRET >>> 8, TPM_ST.AUTH_SECRET & 0xff),
        a.cpHashA,
        a.policyRef,
        authName,
        u64be(authTimeout),
        expiresOnReset ? u32be(tpm.persistent.resetCount) : EMPTY,
      ))
      .digest();
    return {
      timeout: u64be(expiresOnReset ? authTimeout | EXPIRES_ON_RESET : authTimeout),
      policyTicket: { tag: TPM_ST.AUTH_SECRET, hierarchy, digest: new Uint8Array(mac) },
    };
  }
  // The NULL ticket, as swtpm answers (tests/testdata/tpm-vectors/raw/PolicySecret_RH_ENDORSEMENT.rsp.hex).
  return { timeout: EMPTY, policyTicket: { tag: TPM_ST.AUTH_SECRET, hierarchy: TPM_RH.NULL, digest: EMPTY } };
}

// ---- TPM2_PolicyOR (Part 3 §23.6) ----------------------------------------------------------------

function policyOR(tpm: SimTpm, a: Args<typeof PolicyOR>): Out<typeof PolicyOR> {
  const s = policySession(tpm, a.policySession, 1);
  // TPML_DIGEST in PolicyOR has count {2:} (Part 2 §10.9.2).
  if (a.pHashList.length < 2) throw rcParam(TPM_RC.SIZE, 1);
  if (s.kind !== "trial" && !a.pHashList.some((d) => sameBytes(d, s.policy.digest))) throw rcParam(TPM_RC.VALUE, 1);
  // d ← H(0…0 ‖ CC_PolicyOR ‖ digests): the branch taken is forgotten.
  s.policy.digest = new Uint8Array(s.policy.digest.length);
  extend(s, TPM_CC.PolicyOR, ...a.pHashList);
  return {};
}

// ---- TPM2_PolicyPCR (Part 3 §23.7) ---------------------------------------------------------------

/** FilterPcr: the selection without PCRs this TPM does not have (unallocated bank, index ≥ 24). */
function filterSelection(tpm: SimTpm, sel: TPMS_PCR_SELECTION): TPMS_PCR_SELECTION {
  if (!DIGEST_SIZE[sel.hash]) throw rcParam(TPM_RC.HASH, 2);
  if (sel.pcrSelect.length < 3) throw rcParam(TPM_RC.VALUE, 2);
  const allocated = tpm.volatile.pcrs.has(sel.hash);
  const pcrSelect = sel.pcrSelect.map((byte, i) =>
    allocated ? byte & (i * 8 >= PCR_COUNT ? 0 : (1 << Math.min(8, PCR_COUNT - i * 8)) - 1) : 0
  );
  return { hash: sel.hash, pcrSelect };
}

function policyPCR(tpm: SimTpm, a: Args<typeof PolicyPCR>): Out<typeof PolicyPCR> {
  const s = policySession(tpm, a.policySession, 1);
  const pcrs = a.pcrs.map((sel) => filterSelection(tpm, sel));
  // PCRComputeCurrentDigest: the selected values, bank by bank in selection order, PCR 0 first.
  const values: Uint8Array[] = [];
  for (const sel of pcrs) {
    const bank = tpm.volatile.pcrs.get(sel.hash);
    for (let pcr = 0; pcr < PCR_COUNT; pcr++) {
      if (bank && ((sel.pcrSelect[pcr >> 3] ?? 0) >> (pcr & 7)) & 1) values.push(bank[pcr]!);
    }
  }
  let pcrDigest = hash(s.authHash, ...values);
  if (s.kind !== "trial") {
    const e = policyExtras(s.policy);
    // A second PolicyPCR must see the PCRs the first one saw.
    if (e.pcrCounter !== null && e.pcrCounter !== tpm.volatile.pcrUpdateCounter) throw rc(TPM_RC.PCR_CHANGED);
    if (a.pcrDigest.length !== 0 && !sameBytes(a.pcrDigest, pcrDigest)) throw rcParam(TPM_RC.VALUE, 1);
    e.pcrCounter = tpm.volatile.pcrUpdateCounter;
  } else if (a.pcrDigest.length !== 0) {
    // A trial session computes the policy for the values the caller names.
    pcrDigest = a.pcrDigest;
  }
  extend(s, TPM_CC.PolicyPCR, encode(TPML_PCR_SELECTION, pcrs), pcrDigest);
  return {};
}

// ---- the rest ------------------------------------------------------------------------------------

function policyCommandCode(tpm: SimTpm, a: Args<typeof PolicyCommandCode>): Out<typeof PolicyCommandCode> {
  const s = policySession(tpm, a.policySession, 1);
  if (s.policy.commandCode !== null && s.policy.commandCode !== a.code) throw rcParam(TPM_RC.VALUE, 1);
  if (!tpm.implemented.has(a.code)) throw rcParam(TPM_RC.POLICY_CC, 1);
  extend(s, TPM_CC.PolicyCommandCode, u32be(a.code));
  s.policy.commandCode = a.code;
  return {};
}

/** PolicyAuthValue and PolicyPassword extend the same way; they differ in how the authValue travels. */
function policyAuth(tpm: SimTpm, session: number, how: "hmac" | "password"): Record<never, never> {
  const s = policySession(tpm, session, 1);
  extend(s, TPM_CC.PolicyAuthValue);
  s.policy.authValueNeeded = how === "hmac";
  s.policy.passwordNeeded = how === "password";
  return {};
}

function policyGetDigest(tpm: SimTpm, a: Args<typeof PolicyGetDigest>): Out<typeof PolicyGetDigest> {
  return { policyDigest: policySession(tpm, a.policySession, 1).policy.digest.slice() };
}

function policyRestart(tpm: SimTpm, a: Args<typeof PolicyRestart>): Out<typeof PolicyRestart> {
  resetPolicy(policySession(tpm, a.sessionHandle, 1));
  return {};
}

export const policy = [
  handle(PolicySecret, policySecret),
  handle(PolicyOR, policyOR),
  handle(PolicyPCR, policyPCR),
  handle(PolicyCommandCode, policyCommandCode),
  handle(PolicyAuthValue, (tpm, { policySession }) => policyAuth(tpm, policySession, "hmac")),
  handle(PolicyPassword, (tpm, { policySession }) => policyAuth(tpm, policySession, "password")),
  handle(PolicyGetDigest, policyGetDigest),
  handle(PolicyRestart, policyRestart),
];

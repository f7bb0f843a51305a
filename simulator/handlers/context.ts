/**
 * Context management (Part 3 §28; ms-tpm-20-ref ContextSave.c, ContextLoad.c, FlushContext.c,
 * EvictControl.c): save a loaded object or session to an encrypted blob and load it back, flush,
 * and make objects persistent.
 */
import type { CommandArgs, ResponseArgs } from "../../src/tpm/command.ts";
import { ContextLoad, ContextSave, EvictControl, FlushContext } from "../../src/tpm/commands.ts";
import { HANDLE_RANGE, handleType, TPM_HT, TPM_RC, TPM_RH } from "../../src/tpm/constants.ts";
import { TPMA_OBJECT } from "../../src/tpm/structures.ts";
import {
  decodeObject,
  decodeSession,
  encodeObject,
  encodeSession,
  openContext,
  SAVED_OBJECT,
  SAVED_STCLEAR_OBJECT,
  sealContext,
} from "../context_blob.ts";
import { assertObjectFits } from "../nv_limits.ts";
import { rc, rcHandle, rcParam } from "../rc.ts";
import type { SimTpm } from "../sim_tpm.ts";
import type { Volatile } from "../state.ts";
import { handle } from "./index.ts";
import { policyExtras, restorePolicyExtras } from "./policy.ts";

type Args<C> = CommandArgs<C>;
type Out<C> = ResponseArgs<C>;

const isSession = (h: number) => {
  const t = handleType(h);
  return t === TPM_HT.HMAC_SESSION || t === TPM_HT.POLICY_SESSION;
};

/**
 * Sessions whose context is saved, by handle, with the sequence of that save. Their handles (and
 * slot indices) stay taken until ContextLoad or FlushContext, and only that one context loads:
 * an older save of the same session is stale (SequenceNumberForSavedContextIsValid). Keyed by the
 * Volatile record, so _TPM_Init forgets them with everything else volatile.
 */
const saved = new WeakMap<Volatile, Map<number, bigint>>();

export function savedSessions(tpm: SimTpm): Map<number, bigint> {
  let m = saved.get(tpm.volatile);
  if (!m) {
    m = new Map();
    saved.set(tpm.volatile, m);
  }
  return m;
}

// ---- TPM2_FlushContext (Part 3 §28.4) ------------------------------------------------------------

function flushContext(tpm: SimTpm, { flushHandle: h }: Args<typeof FlushContext>): Out<typeof FlushContext> {
  if (handleType(h) === TPM_HT.TRANSIENT && tpm.volatile.objects.delete(h)) return {};
  if (isSession(h)) {
    // A saved session is flushed too: its context becomes unloadable and its slot free.
    const wasLoaded = tpm.volatile.sessions.delete(h);
    const wasSaved = savedSessions(tpm).delete(h);
    if (wasLoaded || wasSaved) return {};
  }
  // swtpm answers 0x1C4 (VALUE, parameter 1) for an absent handle, not HANDLE (spec/tpm.md §7).
  throw rcParam(TPM_RC.VALUE, 1);
}

// ---- TPM2_ContextSave (Part 3 §28.2) -------------------------------------------------------------

function contextSave(tpm: SimTpm, { saveHandle: h }: Args<typeof ContextSave>): Out<typeof ContextSave> {
  const v = tpm.volatile;
  if (handleType(h) === TPM_HT.TRANSIENT) {
    const o = tpm.object(h, 1);
    v.contextSequence += 1n;
    const header = {
      sequence: v.contextSequence,
      // An stClear object's context must not outlive a TPM Restart; its savedHandle says so.
      savedHandle: TPMA_OBJECT.has(o.public.objectAttributes, "stClear") ? SAVED_STCLEAR_OBJECT : SAVED_OBJECT,
      hierarchy: o.hierarchy,
    };
    return { context: { ...header, contextBlob: sealContext(tpm.persistent, header, encodeObject(o)) } };
  }
  if (isSession(h)) {
    const s = v.sessions.get(h);
    if (!s) throw rcHandle(TPM_RC.HANDLE, 1);
    v.contextSequence += 1n;
    const header = { sequence: v.contextSequence, savedHandle: h, hierarchy: TPM_RH.NULL };
    const contextBlob = sealContext(tpm.persistent, header, encodeSession(s, policyExtras(s.policy)));
    // The session leaves its loaded slot but keeps its handle (Part 1 §30.3).
    v.sessions.delete(h);
    savedSessions(tpm).set(h, header.sequence);
    return { context: { ...header, contextBlob } };
  }
  // TPMI_DH_CONTEXT: only transient objects and sessions have contexts.
  throw rcHandle(TPM_RC.VALUE, 1);
}

// ---- TPM2_ContextLoad (Part 3 §28.3) -------------------------------------------------------------

function contextLoad(tpm: SimTpm, { context }: Args<typeof ContextLoad>): Out<typeof ContextLoad> {
  const h = context.savedHandle;
  if (h !== SAVED_OBJECT && h !== SAVED_STCLEAR_OBJECT && !isSession(h)) throw rcParam(TPM_RC.VALUE, 1);
  // Integrity first: nothing of the blob is looked at before it authenticates.
  const payload = openContext(tpm.persistent, context);
  const v = tpm.volatile;
  if (!isSession(h)) {
    const object = decodeObject(payload);
    const loadedHandle = tpm.freeHandle(HANDLE_RANGE.TRANSIENT_FIRST, v.objects, tpm.objectSlots, TPM_RC.OBJECT_MEMORY);
    v.objects.set(loadedHandle, object);
    return { loadedHandle };
  }
  const savedAt = savedSessions(tpm).get(h);
  if (savedAt !== context.sequence) throw rcParam(TPM_RC.HANDLE, 1); // not saved, or a stale save
  if (v.sessions.size >= tpm.sessionSlots) throw rc(TPM_RC.SESSION_MEMORY);
  const { session, extras } = decodeSession(payload);
  if (session.handle !== h) throw rcParam(TPM_RC.INTEGRITY, 1);
  restorePolicyExtras(session.policy, extras);
  v.sessions.set(h, session);
  savedSessions(tpm).delete(h);
  return { loadedHandle: h };
}

// ---- TPM2_EvictControl (Part 3 §28.5) ------------------------------------------------------------

const OWNER_PERSISTENT_LAST = 0x817fffff;
const PLATFORM_PERSISTENT_FIRST = 0x81800000;
const PERSISTENT_LAST = 0x81ffffff;

async function evictControl(tpm: SimTpm, a: Args<typeof EvictControl>): Promise<Out<typeof EvictControl>> {
  const { auth, objectHandle, persistentHandle: ph } = a;
  // TPMI_RH_PROVISION and TPMI_DH_PERSISTENT.
  if (auth !== TPM_RH.OWNER && auth !== TPM_RH.PLATFORM) throw rcHandle(TPM_RC.VALUE, 1);
  if (ph < HANDLE_RANGE.PERSISTENT_FIRST || ph > PERSISTENT_LAST) throw rcParam(TPM_RC.VALUE, 1);
  const o = tpm.object(objectHandle, 2);
  const evict = handleType(objectHandle) === TPM_HT.PERSISTENT;
  // NULL-hierarchy (temporary), stClear and public-only objects cannot persist.
  const publicOnly = o.privateJwk === null && o.secret === null;
  if (o.hierarchy === TPM_RH.NULL || TPMA_OBJECT.has(o.public.objectAttributes, "stClear") || publicOnly) {
    throw rcHandle(TPM_RC.ATTRIBUTES, 2);
  }
  if (evict && objectHandle !== ph) throw rcHandle(TPM_RC.HANDLE, 2);
  const platformObject = o.hierarchy === TPM_RH.PLATFORM;
  if (auth === TPM_RH.PLATFORM) {
    // Platform may evict anything, but persist only its own objects in its own range.
    if (!evict && !platformObject) throw rcHandle(TPM_RC.HIERARCHY, 2);
    if (!evict && ph < PLATFORM_PERSISTENT_FIRST) throw rcParam(TPM_RC.RANGE, 1);
  } else {
    if (platformObject) throw rcHandle(TPM_RC.HIERARCHY, 2);
    if (!evict && ph > OWNER_PERSISTENT_LAST) throw rcParam(TPM_RC.RANGE, 1);
  }
  const store = tpm.persistent.persistent;
  if (evict) {
    store.delete(ph);
  } else {
    if (store.has(ph)) throw rc(TPM_RC.NV_DEFINED);
    const saved = {
      public: o.public,
      qualifiedName: o.qualifiedName,
      hierarchy: o.hierarchy,
      authValue: o.authValue,
      seedValue: o.seedValue,
      privateJwk: o.privateJwk,
      secret: o.secret,
    };
    assertObjectFits(tpm.persistent, saved);
    store.set(ph, saved);
  }
  await tpm.save();
  return {};
}

export const context = [
  handle(FlushContext, flushContext),
  handle(ContextSave, contextSave),
  handle(ContextLoad, contextLoad),
  handle(EvictControl, evictControl),
];

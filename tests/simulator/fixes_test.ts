/**
 * Simulator bugs found by driving it with tpm2-tools 5.4 (tests/simulator/tpm2_tools_test.ts), each
 * pinned down here against ms-tpm-20-ref's behaviour:
 * - the response HMAC takes the entity's authValue as it is after the command (tpm2_changeauth);
 * - a session bound to an entity with an empty authValue still has a (KDFa'd) session key, and
 *   is bound to the entity's Name and authValue together (tpm2_startauthsession --bind-context o,
 *   used before and after tpm2_changeauth);
 * - TPM2_Clear invalidates saved contexts of the owner and endorsement hierarchies even when
 *   resetCount is already zero (`tpm2 clear` twice, a .ctx file saved in between).
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import type { Tpm } from "../../src/tpm/client.ts";
import {
  Clear,
  ContextLoad,
  ContextSave,
  FlushContext,
  HierarchyChangeAuth,
  NV_DefineSpace,
  StartAuthSession,
} from "../../src/tpm/commands.ts";
import { RC_MODIFIER, TPM_ALG, TPM_RC, TPM_RH, TPM_SE } from "../../src/tpm/constants.ts";
import { EK_TEMPLATES } from "../../src/tpm/templates.ts";
import { kdfa } from "../../src/tpm/kdf.ts";
import { createPrimary } from "../../src/tpm/objects.ts";
import { startAuthSession } from "../../src/tpm/session_start.ts";
import { AuthSession, type Session, SessionError, SYM_NULL } from "../../src/tpm/sessions.ts";
import { TPMA_NV, type TPMS_CONTEXT } from "../../src/tpm/structures.ts";
import { ALL_HANDLERS } from "../../simulator/handlers/all.ts";
import { handleBytes } from "../../simulator/object.ts";
import { rcOf, startedSim } from "../helpers/sim.ts";

const started = () => startedSim(ALL_HANDLERS);

const enc = new TextEncoder();
const EMPTY = new Uint8Array(0);
const SHA256 = TPM_ALG.SHA256;

/**
 * A use of `s` whose command HMAC is keyed with the authValue `before` the command and whose
 * response HMAC with the one `after` it, as ESYS does for TPM2_HierarchyChangeAuth.
 */
function changingAuth(s: AuthSession, before: Uint8Array, after: Uint8Array): Session {
  return {
    handle: s.handle,
    attributes: s.attributes,
    needsNames: true,
    get nonceTPM() {
      return s.nonceTPM;
    },
    begin: () => s.begin(),
    encryptParameter: (data, authorizing) => s.encryptParameter(data, authorizing, before),
    decryptParameter: (data, authorizing) => s.decryptParameter(data, authorizing, after),
    authorize: (ctx) => s.authorize(ctx, before),
    verify: (ctx, auth) => s.verify(ctx, auth, after),
  };
}

function defineSpace(tpm: Tpm, nvIndex: number, session: Session) {
  return tpm.execute(NV_DefineSpace, {
    authHandle: TPM_RH.OWNER,
    auth: EMPTY,
    publicInfo: {
      nvIndex,
      nameAlg: SHA256,
      attributes: TPMA_NV.of("OWNERREAD", "OWNERWRITE"),
      authPolicy: EMPTY,
      dataSize: 8,
    },
  }, { sessions: [session] });
}

describe("response HMACs take the authValue as it is after the command (ComputeResponseHMAC)", () => {
  test("TPM2_HierarchyChangeAuth under an HMAC session: keyed with newAuth, as tpm2_changeauth checks", async () => {
    const { tpm, engine } = await started();
    const [oldAuth, newAuth, newer] = ["old", "new", "newer"].map((s) => enc.encode(s)) as [
      Uint8Array,
      Uint8Array,
      Uint8Array,
    ];
    engine.persistent.owner.authValue = oldAuth;
    const s = await startAuthSession(tpm, { symmetric: SYM_NULL });
    await tpm.execute(HierarchyChangeAuth, { authHandle: TPM_RH.OWNER, newAuth }, {
      sessions: [changingAuth(s, oldAuth, newAuth)],
    });
    assert.deepEqual(engine.persistent.owner.authValue, newAuth);

    // Checked with the authValue the command was authorized with, the response does not verify.
    await assert.rejects(
      tpm.execute(HierarchyChangeAuth, { authHandle: TPM_RH.OWNER, newAuth: newer }, {
        sessions: [s.withAuth(newAuth)],
      }),
      SessionError,
    );
    assert.deepEqual(engine.persistent.owner.authValue, newer, "the TPM did change it");
  });

  test("TPM2_Clear under an HMAC session: keyed with the emptied lockoutAuth", async () => {
    const { tpm, engine } = await started();
    const lockout = enc.encode("lockout");
    engine.persistent.lockoutAuth = lockout;
    const s = await startAuthSession(tpm, { symmetric: SYM_NULL });
    await tpm.execute(Clear, { authHandle: TPM_RH.LOCKOUT }, { sessions: [changingAuth(s, lockout, EMPTY)] });
    assert.equal(engine.persistent.lockoutAuth.length, 0);
  });

  test("commands that leave the authValue alone are answered as before", async () => {
    const { tpm, engine } = await started();
    const auth = enc.encode("owner");
    engine.persistent.owner.authValue = auth;
    const s = await startAuthSession(tpm, { symmetric: SYM_NULL });
    await defineSpace(tpm, 0x01500000, s.withAuth(auth));
  });
});

describe("a bound session is bound to the entity's Name and authValue (SessionComputeBoundEntity)", () => {
  test("bound to an entity with an empty authValue, unsalted: the session key is KDFa with an empty key", async () => {
    const { tpm, engine } = await started();
    const nonceCaller = new Uint8Array(randomBytes(32));
    const r = await tpm.execute(StartAuthSession, {
      tpmKey: TPM_RH.NULL,
      bind: TPM_RH.OWNER,
      nonceCaller,
      encryptedSalt: EMPTY,
      sessionType: TPM_SE.HMAC,
      symmetric: SYM_NULL,
      authHash: SHA256,
    });
    // SessionCreate: a sessionKey whenever bound or salted; empty only when neither (ESYS agrees).
    const sessionKey = kdfa(SHA256, EMPTY, "ATH", r.nonceTPM, nonceCaller, 256);
    assert.deepEqual(engine.volatile.sessions.get(r.sessionHandle)!.sessionKey, sessionKey);
    const s = new AuthSession({
      handle: r.sessionHandle,
      kind: "hmac",
      authHash: SHA256,
      symmetric: SYM_NULL,
      sessionKey,
      nonceTPM: r.nonceTPM,
      bindName: handleBytes(TPM_RH.OWNER),
      bindAuth: EMPTY,
    });
    await defineSpace(tpm, 0x01500003, s.withAuth(EMPTY));
  });

  test("after the owner's authValue changed, the HMAC key includes the new authValue again", async () => {
    const { tpm, engine } = await started();
    const [a, b] = [enc.encode("a"), enc.encode("b")];
    engine.persistent.owner.authValue = a;
    const nonceCaller = new Uint8Array(randomBytes(32));
    const r = await tpm.execute(StartAuthSession, {
      tpmKey: TPM_RH.NULL,
      bind: TPM_RH.OWNER,
      nonceCaller,
      encryptedSalt: EMPTY,
      sessionType: TPM_SE.HMAC,
      symmetric: SYM_NULL,
      authHash: SHA256,
    });
    const state = {
      handle: r.sessionHandle,
      kind: "hmac" as const,
      authHash: SHA256,
      symmetric: SYM_NULL,
      sessionKey: kdfa(SHA256, a, "ATH", r.nonceTPM, nonceCaller, 256),
    };
    // Bound, with the authValue it was bound with: the authValue is left out of the HMAC key.
    const bound = new AuthSession({ ...state, nonceTPM: r.nonceTPM, bindName: handleBytes(TPM_RH.OWNER), bindAuth: a });
    await defineSpace(tpm, 0x01500001, bound.withAuth(a));

    engine.persistent.owner.authValue = b;
    // The binding ended: an HMAC that leaves the new authValue out (as if still bound) fails, one
    // that includes it succeeds — which is what our client now does on its own.
    const stale = new AuthSession({
      ...state,
      nonceTPM: bound.nonceTPM,
      bindName: handleBytes(TPM_RH.OWNER),
      bindAuth: b,
    });
    assert.equal(await rcOf(defineSpace(tpm, 0x01500002, stale.withAuth(b))), TPM_RC.BAD_AUTH | RC_MODIFIER.session(1));
    const unbound = new AuthSession({ ...state, nonceTPM: bound.nonceTPM, bindName: undefined });
    await defineSpace(tpm, 0x01500002, unbound.withAuth(b));
  });
});

describe("TPM2_Clear and saved contexts (ComputeContextIntegrity keys on the hierarchy proof)", () => {
  test("a second Clear at resetCount 0 still invalidates owner and endorsement contexts, not NULL ones", async () => {
    const { tpm, engine } = await started();
    await tpm.execute(Clear, { authHandle: TPM_RH.LOCKOUT });
    assert.equal(engine.persistent.resetCount, 0);

    const saved = new Map<number, TPMS_CONTEXT>();
    for (const hierarchy of [TPM_RH.OWNER, TPM_RH.ENDORSEMENT, TPM_RH.NULL]) {
      const key = await createPrimary(tpm, hierarchy, EK_TEMPLATES.ecc);
      saved.set(hierarchy, (await tpm.execute(ContextSave, { saveHandle: key.handle })).context);
      await tpm.execute(FlushContext, { flushHandle: key.handle });
    }
    const load = async (hierarchy: number) => {
      const { loadedHandle } = await tpm.execute(ContextLoad, { context: saved.get(hierarchy)! });
      await tpm.execute(FlushContext, { flushHandle: loadedHandle });
    };
    await load(TPM_RH.OWNER); // no Clear in between: loads

    await tpm.execute(Clear, { authHandle: TPM_RH.LOCKOUT });
    assert.equal(engine.persistent.resetCount, 0, "resetCount did not change");
    const INTEGRITY_1 = TPM_RC.INTEGRITY | RC_MODIFIER.parameter(1);
    assert.equal(await rcOf(load(TPM_RH.OWNER)), INTEGRITY_1);
    assert.equal(await rcOf(load(TPM_RH.ENDORSEMENT)), INTEGRITY_1);
    await load(TPM_RH.NULL); // the NULL hierarchy is not the owner's: Clear leaves it
  });
});

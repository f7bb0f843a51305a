/**
 * Conformance cases about the authorization area, from defects the simulator had and swtpm (libtpms,
 * the reference implementation's SessionProcess.c) does not: a password session that claims to
 * encrypt, and a PolicyPassword session with an empty nonceCaller as libtss2-esys sends it.
 */
import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { Hash, Sign } from "../../src/tpm/commands.ts";
import { RC_MODIFIER, TPM_ALG, TPM_RC, TPM_RH, TPM_ST } from "../../src/tpm/constants.ts";
import { hash } from "../../src/tpm/crypto.ts";
import { externalPublic, externalSensitive } from "../../src/tpm/external_key.ts";
import { createPrimary, flush, loadExternal } from "../../src/tpm/objects.ts";
import { EK_TEMPLATES } from "../../src/tpm/templates.ts";
import { policyPassword } from "../../src/tpm/policy.ts";
import { emptyPolicy, policyAuthValueDigest } from "../../src/tpm/session_digests.ts";
import { verifySignature } from "../../src/tpm/signature.ts";
import { flushSession, startAuthSession } from "../../src/tpm/session_start.ts";
import { type Session, SYM_NULL, symXor } from "../../src/tpm/sessions.ts";
import type { Backend } from "./conformance.ts";

export type Case = (title: string, fn: () => Promise<void>) => void;

const rcOfResponse = (rsp: Uint8Array) => new DataView(rsp.buffer, rsp.byteOffset).getUint32(6);

/** `s` with an empty nonceCaller, as libtss2-esys sends a PolicyPassword session. */
function withoutNonce(s: Session): Session {
  return {
    handle: s.handle,
    attributes: s.attributes,
    needsNames: s.needsNames,
    get nonceTPM() {
      return s.nonceTPM;
    },
    begin: () => s.begin(),
    encryptParameter: (data, authorizing) => s.encryptParameter(data, authorizing),
    decryptParameter: (data, authorizing) => s.decryptParameter(data, authorizing),
    authorize: (ctx) => ({ ...s.authorize(ctx), nonce: new Uint8Array(0) }),
    verify: (ctx, auth) => s.verify(ctx, auth),
  };
}

export function sessionCases(it: Case, backend: () => Backend): void {
  it("a second password session with decrypt set answers TPM_RC_ATTRIBUTES for session 2", async () => {
    // TPM2_GetRandom(8) with two password sessions, the second claiming decrypt (0x21).
    const raw = Buffer.from("8002000000220000017b000000124000000900000100004000000900002100000008", "hex");
    const rc = rcOfResponse(await backend().tpm.transport.send(new Uint8Array(raw)));
    assert.equal(rc, TPM_RC.ATTRIBUTES | RC_MODIFIER.session(2), `rc 0x${rc.toString(16)}`);
  });

  it("XOR parameter obfuscation both ways: Hash returns H(data), CreatePrimary takes and returns obfuscated parameters", async () => {
    const tpm = backend().tpm;
    // Bound to the owner, so the session key (and so the mask) is not empty; 100 bytes need four
    // KDFa blocks of the mask.
    const owner = Uint8Array.of(0x40, 0, 0, 1);
    const session = await startAuthSession(tpm, {
      symmetric: symXor(TPM_ALG.SHA256),
      bind: { handle: TPM_RH.OWNER, name: owner },
      flags: { decrypt: true, encrypt: true },
    });
    try {
      const data = new Uint8Array(100).map((_, i) => i);
      const r = await tpm.execute(Hash, { data, hashAlg: TPM_ALG.SHA256, hierarchy: TPM_RH.NULL }, {
        sessions: [session],
      });
      assert.deepEqual(r.outHash, hash(TPM_ALG.SHA256, data));
      const key = await createPrimary(tpm, TPM_RH.OWNER, EK_TEMPLATES.ecc, { sessions: [session] });
      await flush(tpm, key.handle);
    } finally {
      await flushSession(tpm, session);
    }
  });

  it("a PolicyPassword session with an empty nonceCaller authorizes Sign", async () => {
    const tpm = backend().tpm;
    const password = new TextEncoder().encode("pswd");
    const key = generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey;
    const pub = {
      ...externalPublic(key, "sign"),
      authPolicy: policyAuthValueDigest(TPM_ALG.SHA256, emptyPolicy(TPM_ALG.SHA256)),
    };
    const loaded = await loadExternal(tpm, pub, { ...externalSensitive(key), authValue: password });
    const session = await startAuthSession(tpm, { kind: "policy", symmetric: SYM_NULL });
    try {
      await policyPassword(tpm, session);
      const message = new TextEncoder().encode("authorized by a password policy");
      const { signature } = await tpm.execute(Sign, {
        keyHandle: loaded.handle,
        digest: hash(TPM_ALG.SHA256, message),
        inScheme: { scheme: TPM_ALG.ECDSA, details: { hashAlg: TPM_ALG.SHA256 } },
        validation: { tag: TPM_ST.HASHCHECK, hierarchy: TPM_RH.NULL, digest: new Uint8Array() },
      }, { sessions: [withoutNonce(session.withAuth(password))] });
      verifySignature(pub, message, signature);
    } finally {
      await flushSession(tpm, session);
      await flush(tpm, loaded.handle);
    }
  });
}

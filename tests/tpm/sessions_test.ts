/**
 * HMAC and policy sessions against swtpm: unsalted/unbound, salted with an RSA and an ECC EK,
 * bound; parameter encryption both ways; response HMACs checked (and a tampered one rejected);
 * policy digests computed in software equal the TPM's.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { Tpm } from "../../src/tpm/client.ts";
import { Create, CreatePrimary, GetRandom, Hash, NV_Read } from "../../src/tpm/commands.ts";
import { TPM_ALG, TPM_RC, TPM_RH } from "../../src/tpm/constants.ts";
import { TpmResponseError } from "../../src/tpm/errors.ts";
import { EK_TEMPLATES, POLICY_A_SHA256 } from "../../src/tpm/templates.ts";
import { createPrimary, flush } from "../../src/tpm/objects.ts";
import { nvRead, nvReadPublic } from "../../src/tpm/nv.ts";
import { policyAuthValue, policyCommandCode, policyGetDigest, policyOR, policySecret } from "../../src/tpm/policy.ts";
import {
  emptyPolicy,
  policyAuthValueDigest,
  policyCommandCodeDigest,
  policyOrDigest,
  policySecretDigest,
} from "../../src/tpm/session_digests.ts";
import { flushSession, startAuthSession } from "../../src/tpm/session_start.ts";
import { SessionError } from "../../src/tpm/sessions.ts";
import { openTransport } from "../../src/tpm/transport/uri.ts";
import { TPMA_OBJECT, type TPMT_PUBLIC } from "../../src/tpm/structures.ts";
import { startSwtpm, type SwtpmInstance, swtpmSkipReason } from "../helpers/swtpm.ts";
import { WrappedTransport } from "../helpers/transport_wrappers.ts";

const enc = new TextEncoder();
const EMPTY = new Uint8Array();
const sensitive = (userAuth = EMPTY) => ({ userAuth, data: EMPTY });
const NO_CREATION = { outsideInfo: EMPTY, creationPCR: [] };

/** A restricted decrypt RSA storage key template, for parents with an authValue. */
const STORAGE: TPMT_PUBLIC = {
  type: TPM_ALG.RSA,
  nameAlg: TPM_ALG.SHA256,
  objectAttributes: TPMA_OBJECT.of(
    "fixedTPM",
    "fixedParent",
    "sensitiveDataOrigin",
    "userWithAuth",
    "restricted",
    "decrypt",
  ),
  authPolicy: EMPTY,
  parameters: {
    symmetric: { algorithm: TPM_ALG.AES, keyBits: 128, mode: TPM_ALG.CFB, details: null },
    scheme: { scheme: TPM_ALG.NULL, details: null },
    keyBits: 2048,
    exponent: 0,
  },
  unique: EMPTY,
};
const SIGNING_CHILD: TPMT_PUBLIC = {
  type: TPM_ALG.ECC,
  nameAlg: TPM_ALG.SHA256,
  objectAttributes: TPMA_OBJECT.of("fixedTPM", "fixedParent", "sensitiveDataOrigin", "userWithAuth", "sign"),
  authPolicy: EMPTY,
  parameters: {
    symmetric: { algorithm: TPM_ALG.NULL, keyBits: null, mode: null, details: null },
    scheme: { scheme: TPM_ALG.ECDSA, details: { hashAlg: TPM_ALG.SHA256 } },
    curveID: 0x0003,
    kdf: { scheme: TPM_ALG.NULL, details: null },
  },
  unique: { x: EMPTY, y: EMPTY },
};

/** Flips one bit of the last response byte (inside the last session's HMAC) once armed. */
class ResponseTamperer extends WrappedTransport {
  armed = false;
  async send(command: Uint8Array): Promise<Uint8Array> {
    const r = await this.inner.send(command);
    if (this.armed) {
      this.armed = false;
      r[r.length - 1]! ^= 1;
    }
    return r;
  }
}

describe("sessions against swtpm", { skip: swtpmSkipReason() }, () => {
  let swtpm: SwtpmInstance;
  let tamper: ResponseTamperer;
  let tpm: Tpm;
  before(async () => {
    swtpm = await startSwtpm({ transport: "tcp" });
    tamper = new ResponseTamperer(openTransport(swtpm.uri));
    tpm = new Tpm(tamper);
  });
  after(async () => {
    await tpm?.close();
    await swtpm?.stop();
  });

  test("unsalted, unbound: Hash under decrypt|encrypt returns SHA-256 of the clear data", async () => {
    const s = await startAuthSession(tpm, { flags: { decrypt: true, encrypt: true } });
    try {
      const data = enc.encode("parameter encryption, both ways");
      const r = await tpm.execute(Hash, { data, hashAlg: TPM_ALG.SHA256, hierarchy: TPM_RH.NULL }, { sessions: [s] });
      assert.deepEqual(r.outHash, new Uint8Array(createHash("sha256").update(data).digest()));
    } finally {
      await flushSession(tpm, s);
    }
  });

  for (const alg of ["rsa", "ecc"] as const) {
    test(`salted with the ${alg.toUpperCase()} EK: CreatePrimary and GetRandom with parameter encryption`, async () => {
      const ek = await createPrimary(tpm, TPM_RH.ENDORSEMENT, EK_TEMPLATES[alg]);
      const s = await startAuthSession(tpm, { salt: ek, flags: { decrypt: true, encrypt: true } });
      try {
        // CreatePrimary: inSensitive goes out encrypted, outPublic comes back encrypted.
        const r = await tpm.execute(
          CreatePrimary,
          { primaryHandle: TPM_RH.ENDORSEMENT, inSensitive: sensitive(), inPublic: EK_TEMPLATES.ecc, ...NO_CREATION },
          { sessions: [s] },
        );
        assert.equal(r.outPublic.type, TPM_ALG.ECC);
        await flush(tpm, r.objectHandle);
        // An encrypt-only session on a command without authorization.
        s.setFlags({ encrypt: true });
        const g = await tpm.execute(GetRandom, { bytesRequested: 32 }, { sessions: [s] });
        assert.equal(g.randomBytes.length, 32);
      } finally {
        await flushSession(tpm, s);
        await flush(tpm, ek.handle);
      }
    });
  }

  test("authValues: a bound session and withAuth both authorize a parent with a password; a wrong one fails", async () => {
    const secret = enc.encode("parent secret");
    const parent = await tpm.execute(
      CreatePrimary,
      { primaryHandle: TPM_RH.OWNER, inSensitive: sensitive(secret), inPublic: STORAGE, ...NO_CREATION },
    );
    const create = (sessions: Parameters<Tpm["execute"]>[2]) =>
      tpm.execute(Create, {
        parentHandle: parent.objectHandle,
        inSensitive: sensitive(),
        inPublic: SIGNING_CHILD,
        ...NO_CREATION,
      }, sessions);
    try {
      const bound = await startAuthSession(tpm, {
        bind: { handle: parent.objectHandle, name: parent.name, authValue: secret },
        flags: { decrypt: true, encrypt: true },
      });
      const unbound = await startAuthSession(tpm, { flags: { decrypt: true } });
      try {
        // Bound to the parent: its authValue is in the session key, not in the HMAC key, but the CFB
        // key still needs it, so the use names the authValue too.
        assert.ok((await create({ sessions: [bound.withAuth(secret)] })).outPrivate.length > 0, "bound to the parent");
        assert.ok(
          (await create({ sessions: [unbound.withAuth(secret)] })).outPrivate.length > 0,
          "authValue in the HMAC key",
        );
        await assert.rejects(create({ sessions: [unbound.withAuth(enc.encode("wrong"))] }), (e) => {
          assert.ok(e instanceof TpmResponseError && e.is(TPM_RC.AUTH_FAIL), String(e));
          assert.match(e.message, /TPM2_Create failed: TPM_RC_AUTH_FAIL \(session 1\)/);
          return true;
        });
      } finally {
        await flushSession(tpm, bound);
        await flushSession(tpm, unbound);
      }
    } finally {
      await flush(tpm, parent.objectHandle);
    }
  });

  test("NV_Read of the EK certificate through an encrypting HMAC session equals a plain read", async () => {
    const { nvPublic } = await nvReadPublic(tpm, 0x01c00002);
    const plain = await nvRead(tpm, 0x01c00002);
    const s = await startAuthSession(tpm, { flags: { encrypt: true } });
    try {
      const r = await tpm.execute(NV_Read, { authHandle: 0x01c00002, nvIndex: 0x01c00002, size: 512, offset: 0 }, {
        sessions: [s],
      });
      assert.deepEqual(r.data, plain.subarray(0, 512));
      assert.equal(nvPublic.dataSize, plain.length);
    } finally {
      await flushSession(tpm, s);
    }
  });

  test("a response whose HMAC does not verify is rejected", async () => {
    const s = await startAuthSession(tpm, { flags: { encrypt: true } });
    try {
      tamper.armed = true;
      await assert.rejects(
        tpm.execute(GetRandom, { bytesRequested: 8 }, { sessions: [s] }),
        (e) => e instanceof SessionError && /response HMAC of GetRandom does not verify/.test(e.message),
      );
    } finally {
      await flushSession(tpm, s);
    }
  });

  test("policy digests: PolicySecret(EH) gives PolicyA; PolicyOR, PolicyCommandCode, PolicyAuthValue match software", async () => {
    const alg = TPM_ALG.SHA256;
    const p = await startAuthSession(tpm, { kind: "policy", symmetric: undefined });
    try {
      await policySecret(tpm, p, TPM_RH.ENDORSEMENT);
      const a = await policyGetDigest(tpm, p);
      assert.deepEqual(a, POLICY_A_SHA256);
      assert.deepEqual(policySecretDigest(alg, emptyPolicy(alg), Uint8Array.of(0x40, 0, 0, 0x0b)), POLICY_A_SHA256);
      const other = new Uint8Array(32).fill(0x5a);
      await policyOR(tpm, p, [a, other]);
      assert.deepEqual(await policyGetDigest(tpm, p), policyOrDigest(alg, [a, other]));
    } finally {
      await flushSession(tpm, p);
    }
    const t = await startAuthSession(tpm, { kind: "trial" });
    try {
      await policyCommandCode(tpm, t, 0x0147);
      await policyAuthValue(tpm, t);
      const expected = policyAuthValueDigest(alg, policyCommandCodeDigest(alg, emptyPolicy(alg), 0x0147));
      assert.deepEqual(await policyGetDigest(tpm, t), expected);
    } finally {
      await flushSession(tpm, t);
    }
  });
});

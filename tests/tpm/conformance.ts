/**
 * The TPM conformance suite: what this project relies on a TPM to do, asserted through our client.
 * It runs against every backend (swtpm over TCP, unix socket and the mssim framing today; the
 * embedded simulator and /dev/tpmrm0 later). Where a backend legitimately differs, the difference is
 * listed as data (`Exceptions`) with its reason, never hidden in a branch of a test.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { getHandles, getProperties, getTpmInfo } from "../../src/tpm/capabilities.ts";
import type { Tpm } from "../../src/tpm/client.ts";
import {
  ContextLoad,
  ContextSave,
  CreatePrimary,
  EvictControl,
  FlushContext,
  GetRandom,
  Hash,
  HierarchyChangeAuth,
  Sign,
  Startup,
  VerifySignature,
} from "../../src/tpm/commands.ts";
import { externalPublic, externalSensitive } from "../../src/tpm/external_key.ts";
import { verifySignature } from "../../src/tpm/signature.ts";
import { HANDLE_RANGE, TPM_ALG, TPM_PT, TPM_RC, TPM_RH, TPM_ST, TPM_SU } from "../../src/tpm/constants.ts";
import { hash, objectName, publicKeyOf } from "../../src/tpm/crypto.ts";
import { TpmResponseError } from "../../src/tpm/errors.ts";
import { createEk, ekReport, readEkPublic, releaseEk } from "../../src/tpm/ek.ts";
import { EK_TEMPLATES, POLICY_A_SHA256 } from "../../src/tpm/templates.ts";
import { generateKeyPairSync } from "node:crypto";
import { encodePcrBlob } from "../../src/protocol/pcr_blob.ts";
import { encodeQuote, verifyQuote } from "../../src/protocol/quote.ts";
import { activateCredential } from "../../src/tpm/activate.ts";
import { createAk, loadAk } from "../../src/tpm/ak.ts";
import { parseAkKey } from "../../src/tpm/templates.ts";
import { checkCertifyAttest } from "../../src/tpm/attest.ts";
import { certifySoftwareKey } from "../../src/tpm/certify.ts";
import { makeCredential } from "../../src/tpm/credential.ts";
import { policyGetDigest, policySecret } from "../../src/tpm/policy.ts";
import { quote } from "../../src/tpm/quote.ts";
import { flushSession, startAuthSession, withSession } from "../../src/tpm/session_start.ts";
import { createPrimary, flush, loadExternal, readPublic } from "../../src/tpm/objects.ts";
import { nvRead, nvReadPublic } from "../../src/tpm/nv.ts";
import { pcrExtend, pcrRead, pcrReset, pcrSelection } from "../../src/tpm/pcrs.ts";
import { PasswordSession, type Session } from "../../src/tpm/sessions.ts";
import { encode } from "../../src/tpm/marshal.ts";
import { TPMT_PUBLIC } from "../../src/tpm/structures.ts";
import { sessionCases } from "./conformance_sessions.ts";
import { signingCases } from "./conformance_signing.ts";

export interface Backend {
  readonly tpm: Tpm;
  /** Whether the backend was provisioned with an RSA EK certificate in NV 0x01c00002. */
  readonly hasRsaEkCert: boolean;
  stop(): Promise<void>;
}

/** Conformance tests a backend is excused from, with the reason. */
export type Exceptions = Readonly<Record<string, string>>;

const ALL_PCRS = Array.from({ length: 24 }, (_, i) => i);

function expectRc(base: number) {
  return (e: unknown) => {
    assert.ok(e instanceof TpmResponseError, `expected a TpmResponseError, got ${String(e)}`);
    assert.equal(e.decoded.base, base, e.message);
    return true;
  };
}

export function conformanceSuite(name: string, open: () => Promise<Backend>, exceptions: Exceptions = {}): void {
  describe(`TPM conformance: ${name}`, () => {
    let b: Backend;
    before(async () => {
      b = await open();
    });
    after(async () => {
      await b?.stop();
    });
    const it = (title: string, fn: () => Promise<void>) =>
      exceptions[title] ? test(title, { skip: exceptions[title] }, fn) : test(title, fn);

    sessionCases(it, () => b);
    signingCases(it, () => b);

    it("Startup when already started answers TPM_RC_INITIALIZE", async () => {
      await assert.rejects(b.tpm.execute(Startup, { startupType: TPM_SU.CLEAR }), expectRc(TPM_RC.INITIALIZE));
    });

    it("GetRandom returns the bytes asked for, different each time", async () => {
      const a = await b.tpm.execute(GetRandom, { bytesRequested: 32 });
      const c = await b.tpm.execute(GetRandom, { bytesRequested: 32 });
      assert.equal(a.randomBytes.length, 32);
      assert.notDeepEqual(a.randomBytes, c.randomBytes);
    });

    it("GetCapability reports a PC Client TPM 2.0 with vendor strings", async () => {
      const info = await getTpmInfo(b.tpm);
      assert.equal(info.family, "2.0");
      assert.equal(info.pcrCount, 24);
      assert.ok(info.manufacturer.length > 0);
      assert.ok(info.vendorString.length > 0);
      assert.ok(info.nvBufferMax >= 256);
      assert.ok(info.pcrBanks.some((bank) => bank.hash === TPM_ALG.SHA256 && bank.pcrs.length === 24));
      assert.ok(info.algorithms.some((a) => a.name === "rsa") && info.algorithms.some((a) => a.name === "ecc"));
      const fixed = await getProperties(b.tpm, TPM_PT.FAMILY_INDICATOR);
      assert.ok(fixed.size > 30, "properties are paged through moreData");
    });

    it("PCR_Read of 48 PCRs takes several calls and returns every one", async () => {
      const banks = [TPM_ALG.SHA1, TPM_ALG.SHA256];
      const r = await pcrRead(b.tpm, banks.map((h) => pcrSelection(h, ALL_PCRS)));
      assert.equal(r.values.get(TPM_ALG.SHA1)?.size, 24);
      assert.equal(r.values.get(TPM_ALG.SHA256)?.size, 24);
      assert.equal(r.values.get(TPM_ALG.SHA256)!.get(17)!.length, 32);
    });

    it("PCR_Extend follows PCR = H(PCR ‖ digest) in every bank", async () => {
      const sel = [pcrSelection(TPM_ALG.SHA1, [10]), pcrSelection(TPM_ALG.SHA256, [10])];
      const before = (await pcrRead(b.tpm, sel)).values;
      const d1 = new Uint8Array(20).fill(0x11);
      const d256 = new Uint8Array(32).fill(0xaa);
      await pcrExtend(b.tpm, 10, [{ hashAlg: TPM_ALG.SHA1, digest: d1 }, { hashAlg: TPM_ALG.SHA256, digest: d256 }]);
      const now = await pcrRead(b.tpm, sel);
      assert.deepEqual(
        now.values.get(TPM_ALG.SHA1)!.get(10),
        hash(TPM_ALG.SHA1, before.get(TPM_ALG.SHA1)!.get(10)!, d1),
      );
      assert.deepEqual(
        now.values.get(TPM_ALG.SHA256)!.get(10),
        hash(TPM_ALG.SHA256, before.get(TPM_ALG.SHA256)!.get(10)!, d256),
      );
    });

    it("PCR_Reset clears PCR 16 and refuses PCR 0 at locality 0", async () => {
      await pcrExtend(b.tpm, 16, [{ hashAlg: TPM_ALG.SHA256, digest: new Uint8Array(32).fill(1) }]);
      await pcrReset(b.tpm, 16);
      const r = await pcrRead(b.tpm, [pcrSelection(TPM_ALG.SHA256, [16])]);
      assert.deepEqual(r.values.get(TPM_ALG.SHA256)!.get(16), new Uint8Array(32));
      await assert.rejects(pcrReset(b.tpm, 0), expectRc(TPM_RC.LOCALITY));
    });

    it("CreatePrimary of the EK templates is deterministic and its Name checks", async () => {
      for (const alg of ["rsa", "ecc"] as const) {
        const one = await readEkPublic(b.tpm, alg);
        const two = await readEkPublic(b.tpm, alg);
        assert.deepEqual(encode(TPMT_PUBLIC, one.public), encode(TPMT_PUBLIC, two.public));
        assert.deepEqual(one.name, objectName(one.public));
        assert.equal(one.public.objectAttributes, 0x000300b2);
      }
    });

    it("ReadPublic of a transient object matches CreatePrimary", async () => {
      const key = await createPrimary(b.tpm, TPM_RH.ENDORSEMENT, EK_TEMPLATES.ecc);
      try {
        const pub = await readPublic(b.tpm, key.handle);
        assert.deepEqual(pub.name, key.name);
      } finally {
        await flush(b.tpm, key.handle);
      }
    });

    it("FlushContext of an absent handle answers TPM_RC_VALUE for parameter 1", async () => {
      await assert.rejects(b.tpm.execute(FlushContext, { flushHandle: 0x80ffff00 }), (e) => {
        expectRc(TPM_RC.VALUE)(e);
        assert.equal((e as TpmResponseError).decoded.subject, "parameter");
        assert.equal((e as TpmResponseError).decoded.index, 1);
        return true;
      });
    });

    it("ContextSave and ContextLoad bring an object back under a new handle", async () => {
      const key = await createPrimary(b.tpm, TPM_RH.ENDORSEMENT, EK_TEMPLATES.ecc);
      const saved = await b.tpm.execute(ContextSave, { saveHandle: key.handle });
      assert.equal(saved.context.savedHandle, 0x80000000);
      await flush(b.tpm, key.handle);
      const loaded = await b.tpm.execute(ContextLoad, { context: saved.context });
      try {
        assert.deepEqual((await readPublic(b.tpm, loaded.loadedHandle)).name, key.name);
      } finally {
        await flush(b.tpm, loaded.loadedHandle);
      }
    });

    it("EvictControl persists an object and evicts it again", async () => {
      const persistent = 0x81000f01;
      const key = await createPrimary(b.tpm, TPM_RH.ENDORSEMENT, EK_TEMPLATES.ecc);
      try {
        await b.tpm.execute(EvictControl, {
          auth: TPM_RH.OWNER,
          objectHandle: key.handle,
          persistentHandle: persistent,
        });
      } finally {
        await flush(b.tpm, key.handle);
      }
      assert.ok((await getHandles(b.tpm, HANDLE_RANGE.PERSISTENT_FIRST)).includes(persistent));
      assert.deepEqual((await readPublic(b.tpm, persistent)).name, key.name);
      await b.tpm.execute(EvictControl, { auth: TPM_RH.OWNER, objectHandle: persistent, persistentHandle: persistent });
      assert.ok(!(await getHandles(b.tpm, HANDLE_RANGE.PERSISTENT_FIRST)).includes(persistent));
    });

    it("NV_ReadPublic's Name checks and NV_Read in chunks reads the EK certificate", async () => {
      if (!b.hasRsaEkCert) return;
      const { nvPublic } = await nvReadPublic(b.tpm, 0x01c00002);
      const whole = await nvRead(b.tpm, 0x01c00002);
      const small = await nvRead(b.tpm, 0x01c00002, { chunkSize: 100 });
      assert.equal(whole.length, nvPublic.dataSize);
      assert.deepEqual(small, whole);
      const report = await ekReport(b.tpm, "rsa");
      assert.ok(report.certificate?.matchesEk, "the certificate's key is the EK");
    });

    it("a wrong endorsement password is TPM_RC_AUTH_FAIL on session 1", async () => {
      const bad = new PasswordSession(new TextEncoder().encode("wrong"));
      await assert.rejects(
        b.tpm.execute(
          CreatePrimary,
          {
            primaryHandle: TPM_RH.ENDORSEMENT,
            inSensitive: { userAuth: new Uint8Array(), data: new Uint8Array() },
            inPublic: EK_TEMPLATES.ecc,
            outsideInfo: new Uint8Array(),
            creationPCR: [],
          },
          { sessions: [bad] },
        ),
        (e) => {
          assert.ok(e instanceof TpmResponseError);
          assert.ok(e.is(TPM_RC.AUTH_FAIL) || e.is(TPM_RC.BAD_AUTH), e.message);
          assert.equal(e.decoded.subject, "session");
          assert.match(e.message, /^TPM2_CreatePrimary failed: TPM_RC_(AUTH_FAIL|BAD_AUTH) \(session 1\)/);
          return true;
        },
      );
    });

    it("an unknown command code answers TPM_RC_COMMAND_CODE", async () => {
      const raw = Uint8Array.from([0x80, 0x01, 0, 0, 0, 10, 0, 0, 0x01, 0xff]);
      const rsp = await b.tpm.transport.send(raw);
      assert.equal(new DataView(rsp.buffer, rsp.byteOffset).getUint32(6), TPM_RC.COMMAND_CODE);
    });

    it("HMAC sessions: unsalted and salted to the EK, parameters encrypted both ways", async () => {
      const data = new TextEncoder().encode("encrypted on the wire, hashed in the TPM");
      const digest = await withSession(
        b.tpm,
        async (s) =>
          (await b.tpm.execute(Hash, { data, hashAlg: TPM_ALG.SHA256, hierarchy: TPM_RH.NULL }, { sessions: [s] }))
            .outHash,
      );
      assert.deepEqual(digest, hash(TPM_ALG.SHA256, data));
      for (const alg of ["rsa", "ecc"] as const) {
        const ek = await createEk(b.tpm, alg);
        try {
          const key = await withSession(
            b.tpm,
            (s) => createPrimary(b.tpm, TPM_RH.ENDORSEMENT, EK_TEMPLATES.ecc, { sessions: [s] }),
            { salt: ek, flags: { decrypt: true, encrypt: true } },
          );
          await flush(b.tpm, key.handle);
        } finally {
          await releaseEk(b.tpm, ek);
        }
      }
    });

    it("a policy session with PolicySecret(TPM_RH_ENDORSEMENT) reaches PolicyA", async () => {
      const digest = await withSession(b.tpm, async (p) => {
        await policySecret(b.tpm, p, TPM_RH.ENDORSEMENT);
        return await policyGetDigest(b.tpm, p);
      }, { kind: "policy" });
      assert.deepEqual(digest, POLICY_A_SHA256);
    });

    for (const [ekAlg, akKey] of [["rsa", "rsa"], ["rsa", "ecc"], ["ecc", "rsa"], ["ecc", "ecc"]] as const) {
      it(`${ekAlg.toUpperCase()} EK and ${akKey.toUpperCase()} AK: create, activate, quote, certify`, async () => {
        const ek = await createEk(b.tpm, ekAlg);
        const ak = await loadAk(b.tpm, ek, await createAk(b.tpm, ek, { key: parseAkKey(akKey) }));
        try {
          const secret = new TextEncoder().encode("0123456789abcdef0123456789abcdef");
          const made = await makeCredential(ek.public, ak.name, secret);
          assert.deepEqual(await activateCredential(b.tpm, ak, ek, made.credentialBlob, made.secret), secret);
          const tampered = made.credentialBlob.slice();
          tampered[tampered.length - 1]! ^= 1;
          await assert.rejects(activateCredential(b.tpm, ak, ek, tampered, made.secret), expectRc(TPM_RC.INTEGRITY));

          const nonce = "conformance-nonce";
          const q = await quote(b.tpm, ak, {
            nonce: new TextEncoder().encode(nonce),
            pcrs: [0, 10, 16],
            hashAlg: TPM_ALG.SHA256,
          });
          const pcrBlob = encodePcrBlob([q.selection], [[...q.pcrs.values()]]);
          const quoteString = encodeQuote({ attest: q.attest, signature: q.signature, pcrBlob });
          verifyQuote({ quote: quoteString, akPublic: ak.public, nonce, hashAlg: TPM_ALG.SHA256 });

          const qualifyingData = new Uint8Array(32).fill(9);
          const c = await certifySoftwareKey(
            b.tpm,
            generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey,
            ak,
            qualifyingData,
          );
          checkCertifyAttest({ ...c, signer: ak.public, qualifyingData, certifiedName: c.name });
        } finally {
          await flush(b.tpm, ak.handle);
          await releaseEk(b.tpm, ek);
        }
      });
    }

    it("Sign over a digest with unrestricted RSA and ECC keys; VerifySignature accepts it, not a changed one", async () => {
      const message = new TextEncoder().encode("signed by the TPM");
      const digest = hash(TPM_ALG.SHA256, message);
      for (
        const [key, sigAlg] of [
          [generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey, TPM_ALG.RSASSA],
          [generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey, TPM_ALG.ECDSA],
        ] as const
      ) {
        const loaded = await loadExternal(b.tpm, externalPublic(key, "sign"), externalSensitive(key));
        try {
          const inScheme = { scheme: sigAlg, details: { hashAlg: TPM_ALG.SHA256 } };
          const nullTicket = { tag: TPM_ST.HASHCHECK, hierarchy: TPM_RH.NULL, digest: new Uint8Array() };
          const { signature } = await b.tpm.execute(Sign, {
            keyHandle: loaded.handle,
            digest,
            inScheme,
            validation: nullTicket,
          });
          verifySignature(loaded.public, message, signature);
          const v = await b.tpm.execute(VerifySignature, { keyHandle: loaded.handle, digest, signature });
          assert.equal(v.validation.tag, TPM_ST.VERIFIED);
          const other = hash(TPM_ALG.SHA256, new TextEncoder().encode("something else"));
          await assert.rejects(
            b.tpm.execute(VerifySignature, { keyHandle: loaded.handle, digest: other, signature }),
            expectRc(TPM_RC.SIGNATURE),
          );
        } finally {
          await flush(b.tpm, loaded.handle);
        }
      }
    });

    it("a restricted key signs a TPM2_Hash digest with its ticket, never a TPMS_ATTEST look-alike", async () => {
      const ek = await createEk(b.tpm, "rsa");
      const ak = await loadAk(b.tpm, ek, await createAk(b.tpm, ek, {}));
      try {
        const inScheme = { scheme: TPM_ALG.NULL, details: null };
        const data = new TextEncoder().encode("ordinary data");
        const h = await b.tpm.execute(Hash, { data, hashAlg: TPM_ALG.SHA256, hierarchy: TPM_RH.ENDORSEMENT });
        const { signature } = await b.tpm.execute(Sign, {
          keyHandle: ak.handle,
          digest: h.outHash,
          inScheme,
          validation: h.validation,
        });
        verifySignature(ak.public, data, signature);
        const forged = Uint8Array.of(0xff, 0x54, 0x43, 0x47, 0x80, 0x18); // TPM_GENERATED_VALUE, ATTEST_QUOTE
        const f = await b.tpm.execute(Hash, { data: forged, hashAlg: TPM_ALG.SHA256, hierarchy: TPM_RH.ENDORSEMENT });
        assert.equal(f.validation.hierarchy, TPM_RH.NULL, "no ticket for attestation-like data");
        await assert.rejects(
          b.tpm.execute(Sign, { keyHandle: ak.handle, digest: f.outHash, inScheme, validation: f.validation }),
          expectRc(TPM_RC.TICKET),
        );
      } finally {
        await flush(b.tpm, ak.handle);
        await releaseEk(b.tpm, ek);
      }
    });

    it("bound sessions: to an empty-auth hierarchy, across its authValue changing; HierarchyChangeAuth's response uses the new value", async () => {
      const owner = Uint8Array.of(0x40, 0, 0, 1);
      const primary = (sessions: readonly Session[]) =>
        createPrimary(b.tpm, TPM_RH.OWNER, EK_TEMPLATES.ecc, { sessions });
      const enc = new TextEncoder();
      // Bound to the owner while its authValue is empty: the session still has a session key.
      const bound = await startAuthSession(b.tpm, {
        bind: { handle: TPM_RH.OWNER, name: owner },
        flags: { decrypt: true },
      });
      try {
        await flush(b.tpm, (await primary([bound])).handle);
        // Change the owner authValue through the bound session: the response is keyed with the new value.
        const secret = enc.encode("new owner secret");
        await b.tpm.execute(HierarchyChangeAuth, { authHandle: TPM_RH.OWNER, newAuth: secret }, {
          sessions: [bound.withAuth(new Uint8Array(), secret)],
        });
        // The binding ended with the change: the authValue now goes into the HMAC.
        await flush(b.tpm, (await primary([bound.withAuth(secret)])).handle);
        await b.tpm.execute(HierarchyChangeAuth, { authHandle: TPM_RH.OWNER, newAuth: new Uint8Array() }, {
          sessions: [bound.withAuth(secret, new Uint8Array())],
        });
      } finally {
        await flushSession(b.tpm, bound);
      }
      await flush(b.tpm, (await primary([new PasswordSession()])).handle);
    });

    it("transient slots are finite: unflushed objects end in TPM_RC_OBJECT_MEMORY", async () => {
      const held: number[] = [];
      try {
        await assert.rejects(async () => {
          for (let i = 0; i < 64; i++) {
            held.push((await createPrimary(b.tpm, TPM_RH.ENDORSEMENT, EK_TEMPLATES.ecc)).handle);
          }
        }, expectRc(TPM_RC.OBJECT_MEMORY));
        assert.ok(held.length >= 3, `${held.length} slots`);
      } finally {
        for (const h of held) await flush(b.tpm, h);
      }
    });

    it("50 operations leave no transient object behind (no TPM_RC_OBJECT_MEMORY)", async () => {
      for (let i = 0; i < 50; i++) {
        if (i % 5 === 0) await ekReport(b.tpm, "rsa");
        else await readEkPublic(b.tpm, "ecc");
      }
      assert.deepEqual(await getHandles(b.tpm, HANDLE_RANGE.TRANSIENT_FIRST), []);
      // Sessions too (the attestation tests above start and end many, some on failing commands).
      assert.deepEqual(await getHandles(b.tpm, HANDLE_RANGE.HMAC_SESSION_FIRST), []);
      assert.deepEqual(await getHandles(b.tpm, HANDLE_RANGE.POLICY_SESSION_FIRST), []);
      assert.ok(publicKeyOf((await readEkPublic(b.tpm, "rsa")).public));
    });
  });
}

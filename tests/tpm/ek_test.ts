/**
 * EKs against swtpm's own provisioning (swtpm_setup --create-ek-cert): the persistent RSA-2048 EK at
 * 0x81010001 is our L-1 EK and the persistent P-384 EK at 0x81010016 is our H-3 EK, each matching the
 * certificate swtpm_localca issued for it; the EK CA chain comes back from NV 0x01C00100 onwards.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { Tpm } from "../../src/tpm/client.ts";
import { TPM_ALG, TPM_RC } from "../../src/tpm/constants.ts";
import { publicKeyOf, sameKey } from "../../src/tpm/crypto.ts";
import {
  createEk,
  ekReport,
  persistentEk,
  readEkCertChain,
  readEkCertificate,
  releaseEk,
  splitDer,
} from "../../src/tpm/ek.ts";
import { ekPolicyA, ekPolicyB } from "../../src/tpm/templates.ts";
import { TpmResponseError } from "../../src/tpm/errors.ts";
import { nvDefine, nvUndefine, nvWrite } from "../../src/tpm/nv.ts";
import { openTransport } from "../../src/tpm/transport/uri.ts";
import { X509Certificate } from "../../src/tpm/x509.ts";
import { fromHex } from "../helpers/vectors.ts";
import { startSwtpm, type SwtpmInstance, swtpmSkipReason } from "../helpers/swtpm.ts";
import { toHex } from "../../src/util/encoding.ts";

test("PolicyA and PolicyB recompute to the EK profile's digests", () => {
  assert.deepEqual(
    ekPolicyA(TPM_ALG.SHA256),
    fromHex("837197674484b3f81a90cc8d46a5d724fd52d76e06520b64f2a1da1b331469aa"),
  );
  assert.deepEqual(
    ekPolicyB(TPM_ALG.SHA256),
    fromHex("ca3d0a99a2b93906f7a3342414efcfb3a385d44cd1fd459089d19b5071c0b7a0"),
  );
  assert.deepEqual(
    ekPolicyA(TPM_ALG.SHA384),
    fromHex("8bbf2266537c171cb56e403c4dc1d4b64f432611dc386e6f532050c3278c930e143e8bb1133824ccb431053871c6db53"),
  );
  const b384 = toHex(ekPolicyB(TPM_ALG.SHA384));
  assert.ok(b384.startsWith("b26e7d28") && b384.endsWith("f3f80e12"), b384);
});

describe("EKs against swtpm's provisioning", { skip: swtpmSkipReason() }, () => {
  let swtpm: SwtpmInstance;
  let tpm: Tpm;
  before(async () => {
    swtpm = await startSwtpm({ transport: "tcp" });
    tpm = new Tpm(openTransport(swtpm.uri));
  });
  after(async () => {
    await tpm?.close();
    await swtpm?.stop();
  });

  for (const [alg, handle] of [["rsa", 0x81010001], ["ecc384", 0x81010016]] as const) {
    test(`the persistent EK at 0x${handle.toString(16)} is our ${alg} template's EK, and its certificate matches`, async () => {
      const persistent = await persistentEk(tpm, handle);
      const created = await createEk(tpm, alg);
      try {
        assert.deepEqual(created.name, persistent.name);
        const der = await readEkCertificate(tpm, alg);
        assert.ok(der, "swtpm_setup wrote a certificate");
        assert.ok(sameKey(publicKeyOf(created.public), new X509Certificate(der.slice().buffer).publicKeyObject));
        assert.equal((await ekReport(tpm, alg)).certificate?.matchesEk, true);
      } finally {
        await releaseEk(tpm, created);
        await releaseEk(tpm, persistent); // a no-op: persistent EKs stay
      }
      assert.deepEqual((await persistentEk(tpm, handle)).name, persistent.name, "still persistent");
    });
  }

  test("persistentEk refuses what is not an EK", async () => {
    await assert.rejects(persistentEk(tpm, 0x80000000), /not a persistent handle/);
    await assert.rejects(persistentEk(tpm, 0x81000999), (e) => e instanceof TpmResponseError && e.is(TPM_RC.HANDLE));
  });

  test("the EK CA chain is read from NV 0x01C00100 onwards, certificates split at their DER lengths", async () => {
    assert.deepEqual(await readEkCertChain(tpm), [], "swtpm provisions no chain");
    const pem = [swtpm.intermediateCertPem!, swtpm.rootCertPem!];
    const ders = pem.map((p) => new Uint8Array(new X509Certificate(p).rawData));
    // Index 0x01C00100 holds the intermediate with padding after it; 0x01C00101 holds the root.
    const padded = new Uint8Array(ders[0]!.length + 40);
    padded.set(ders[0]!);
    const indices = [0x01c00100, 0x01c00101];
    const contents = [padded, ders[1]!];
    try {
      for (const [i, index] of indices.entries()) {
        await nvDefine(tpm, index, contents[i]!.length);
        await nvWrite(tpm, index, contents[i]!);
      }
      assert.deepEqual(await readEkCertChain(tpm), ders);
      assert.deepEqual(splitDer(new Uint8Array([...ders[0]!, ...ders[1]!])), ders);
    } finally {
      for (const index of indices) await nvUndefine(tpm, index).catch(() => {});
    }
  });

  test("a created RSA-3072 (H-6) EK works with its PolicyB-SHA384 session", async () => {
    const ek = await createEk(tpm, "rsa3072");
    try {
      assert.deepEqual(ek.public.authPolicy, ekPolicyB(TPM_ALG.SHA384));
      assert.equal(await readEkCertificate(tpm, "rsa3072"), null, "no certificate for it in swtpm");
    } finally {
      await releaseEk(tpm, ek);
    }
  });
});

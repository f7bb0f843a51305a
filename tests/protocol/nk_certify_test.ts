/**
 * verifyNkCertification against certifications made by a TPM (the simulator and swtpm): RSA and EC NKs,
 * RSA and ECC AKs, and each of checks 3-6 broken exactly, refused with that check named.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { generateKeyPairSync, type KeyObject } from "node:crypto";
import {
  expectedNkKey,
  identityNonceBytes,
  type NkCertifyCheck,
  NkCertifyError,
  verifyNkCertification,
  type VerifyNkCertificationInput,
} from "../../src/protocol/nk_certify.ts";
import { certifySoftwareKey } from "../../src/tpm/certify.ts";
import { TPM_ALG, TPM_ECC_CURVE, TPM_RH } from "../../src/tpm/constants.ts";
import { encode } from "../../src/tpm/marshal.ts";
import { createPrimary, flush, type LoadedKey } from "../../src/tpm/objects.ts";
import { quote } from "../../src/tpm/quote.ts";
import { TPM2B_PUBLIC, TPMT_SIGNATURE } from "../../src/tpm/structures.ts";
import { akTemplate } from "../../src/tpm/templates.ts";
import { startTestTpm, type TestTpm, type TestTpmKind } from "../helpers/agent_tpm.ts";
import { swtpmSkipReason } from "../helpers/swtpm.ts";
import { createCa, issueCertificate } from "../../src/registrar/tls.ts";

const NONCE = new Uint8Array(32).fill(0x5a);
const RSA_AK = akTemplate();
const ECC_AK = akTemplate({ key: { type: "ecc", curve: TPM_ECC_CURVE.NIST_P256 } });

const nkKeys = {
  rsa: () => generateKeyPairSync("rsa", { modulusLength: 2048 }),
  ec: () => generateKeyPairSync("ec", { namedCurve: "P-256" }),
};

function refused(input: VerifyNkCertificationInput, check: NkCertifyCheck, pattern?: RegExp): void {
  assert.throws(() => verifyNkCertification(input), (e: unknown) => {
    assert.ok(e instanceof NkCertifyError, `expected NkCertifyError, got ${String(e)}`);
    assert.equal(e.code, "ERR_NK_CERTIFY");
    assert.equal(e.check, check, e.message);
    assert.match(e.message, new RegExp(`^NK certification failed \\(${check}\\)`));
    if (pattern) assert.match(e.message, pattern);
    return true;
  });
}

const kinds: { kind: TestTpmKind; skip?: string }[] = [
  { kind: "sim" },
  { kind: "swtpm", skip: swtpmSkipReason() },
];

for (const { kind, skip } of kinds) {
  describe(`verifyNkCertification with certifications by ${kind}`, { skip }, () => {
    let t: TestTpm;
    let rsaAk: LoadedKey;
    let eccAk: LoadedKey;
    before(async () => {
      t = await startTestTpm(kind);
      rsaAk = await createPrimary(t.tpm, TPM_RH.OWNER, RSA_AK);
      eccAk = await createPrimary(t.tpm, TPM_RH.OWNER, ECC_AK);
    });
    after(async () => {
      await flush(t.tpm, rsaAk.handle).catch(() => {});
      await flush(t.tpm, eccAk.handle).catch(() => {});
      await t.stop();
    });

    async function certified(
      ak: LoadedKey,
      nk: KeyObject,
      nonce: Uint8Array = NONCE,
      use: "sign" | "decrypt" = "sign",
    ) {
      const c = await certifySoftwareKey(t.tpm, nk, ak, nonce, use);
      return {
        nkTpm: encode(TPM2B_PUBLIC, c.public),
        nkAttest: c.attest,
        nkSign: encode(TPMT_SIGNATURE, c.signature),
        akTpm: encode(TPM2B_PUBLIC, ak.public),
        nonce,
      };
    }

    for (const [akName, akOf] of [["RSA", () => rsaAk], ["ECC", () => eccAk]] as const) {
      for (const nkKind of ["rsa", "ec"] as const) {
        test(`${akName} AK certifies an ${nkKind.toUpperCase()} NK: the binding verifies`, async () => {
          const nk = nkKeys[nkKind]();
          const c = await certified(akOf(), nk.privateKey);
          const pem = nk.publicKey.export({ format: "pem", type: "spki" }).toString();
          const v = verifyNkCertification({ ...c, expectedKey: pem });
          assert.equal(v.hashAlg, TPM_ALG.SHA256);
          assert.ok(expectedNkKey(pem).equals(v.nkKey));
        });
      }
    }

    test("an RSA decryption NK (mTLS off) verifies against its transport_key, and against a certificate", async () => {
      const nk = nkKeys.rsa();
      const c = await certified(rsaAk, nk.privateKey, NONCE, "decrypt");
      verifyNkCertification({ ...c, expectedKey: nk.publicKey });
      const ca = await createCa("CN=nk test CA");
      const cert = await issueCertificate(ca, {
        subject: "CN=agent",
        publicKey: new Uint8Array(nk.publicKey.export({ format: "der", type: "spki" })),
      });
      verifyNkCertification({ ...c, expectedKey: cert.toString("pem") });
    });

    test("an identity proof's nonce is the query nonce's ASCII bytes", async () => {
      const nk = nkKeys.ec();
      const c = await certified(eccAk, nk.privateKey, identityNonceBytes("abc123"));
      verifyNkCertification({ ...c, nonce: identityNonceBytes("abc123"), expectedKey: nk.publicKey });
      refused({ ...c, nonce: identityNonceBytes("abc124"), expectedKey: nk.publicKey }, "attest", /extraData/);
    });

    test("check 3 (attest): another nonce, a quote instead of a certification, a wrong magic, trailing bytes", async () => {
      const nk = nkKeys.ec();
      const c = await certified(rsaAk, nk.privateKey);
      const input = { ...c, expectedKey: nk.publicKey };
      refused({ ...input, nonce: new Uint8Array(32).fill(0x5b) }, "attest", /extraData/);
      const q = await quote(t.tpm, rsaAk, { nonce: NONCE, pcrs: [16], hashAlg: TPM_ALG.SHA256 });
      refused({ ...input, nkAttest: q.attest, nkSign: encode(TPMT_SIGNATURE, q.signature) }, "attest", /type/);
      const badMagic = c.nkAttest.slice();
      badMagic[0] = 0;
      refused({ ...input, nkAttest: badMagic }, "attest", /magic/);
      refused({ ...input, nkAttest: new Uint8Array([...c.nkAttest, 0]) }, "attest");
    });

    test("check 4 (name): the certification of another key, or an nk_tpm that does not parse", async () => {
      const nk = nkKeys.ec();
      const other = nkKeys.ec();
      const ofOther = await certified(rsaAk, other.privateKey);
      const mine = await certified(rsaAk, nk.privateKey);
      refused({ ...ofOther, nkTpm: mine.nkTpm, expectedKey: nk.publicKey }, "name", /certifies the object/);
      refused({ ...mine, nkTpm: mine.nkTpm.subarray(0, 10), expectedKey: nk.publicKey }, "name", /nk_tpm/);
    });

    test("check 5 (signature): signed by another AK, a garbled signature, an AK of another scheme", async () => {
      const nk = nkKeys.rsa();
      const byOther = await certified(eccAk, nk.privateKey);
      refused({ ...byOther, akTpm: encode(TPM2B_PUBLIC, rsaAk.public), expectedKey: nk.publicKey }, "signature");
      const c = await certified(eccAk, nk.privateKey);
      const garbled = c.nkSign.slice();
      garbled[garbled.length - 1]! ^= 1;
      refused({ ...c, nkSign: garbled, expectedKey: nk.publicKey }, "signature", /does not verify/);
      refused({ ...c, nkSign: c.nkSign.subarray(0, 3), expectedKey: nk.publicKey }, "signature", /nk_sign/);
      const pss = akTemplate({ signAlg: TPM_ALG.RSAPSS });
      refused({ ...c, akTpm: pss, expectedKey: nk.publicKey }, "signature", /RSASSA or ECDSA/);
    });

    test("check 6 (key): an NK other than the mTLS certificate's or transport_key's key", async () => {
      const nk = nkKeys.rsa();
      const c = await certified(rsaAk, nk.privateKey);
      refused({ ...c, expectedKey: nkKeys.rsa().publicKey }, "key");
      refused({ ...c, expectedKey: nkKeys.ec().publicKey }, "key");
      refused({ ...c, expectedKey: "not a PEM" }, "key", /expected key/);
    });
  });
}

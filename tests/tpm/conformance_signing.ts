/**
 * Conformance cases about signing (Part 3 §18, §20), from defects the simulator had and swtpm does
 * not: keyed-hash (HMAC) signing keys, RSASSA-PSS, a qualifyingData longer than a digest, and a
 * scheme that does not fit the key's type.
 */
import assert from "node:assert/strict";
import { constants, generateKeyPairSync, type KeyObject, randomBytes, verify } from "node:crypto";
import { hmac } from "@noble/hashes/hmac";
import { Certify, Quote, Sign, VerifySignature } from "../../src/tpm/commands.ts";
import { RC_MODIFIER, TPM_ALG, TPM_RC, TPM_RH, TPM_ST } from "../../src/tpm/constants.ts";
import { hash, hashFor, publicKeyOf } from "../../src/tpm/crypto.ts";
import { TpmResponseError } from "../../src/tpm/errors.ts";
import { externalPublic, externalSensitive } from "../../src/tpm/external_key.ts";
import { encode } from "../../src/tpm/marshal.ts";
import { flush, type LoadedKey, loadExternal } from "../../src/tpm/objects.ts";
import { pcrSelection } from "../../src/tpm/pcrs.ts";
import { verifySignature } from "../../src/tpm/signature.ts";
import { TPMA_OBJECT, TPMS_ATTEST, type TPMT_PUBLIC, type TPMT_SIG_SCHEME } from "../../src/tpm/structures.ts";
import type { Tpm } from "../../src/tpm/client.ts";
import type { Backend } from "./conformance.ts";
import type { Case } from "./conformance_sessions.ts";

const SHA256 = TPM_ALG.SHA256;
const NULL_TICKET = { tag: TPM_ST.HASHCHECK, hierarchy: TPM_RH.NULL, digest: new Uint8Array() };
const NULL_SCHEME: TPMT_SIG_SCHEME = { scheme: TPM_ALG.NULL, details: null };
const scheme = (alg: number): TPMT_SIG_SCHEME => ({ scheme: alg, details: { hashAlg: SHA256 } });
const enc = new TextEncoder();

function expectRc(rc: number) {
  return (e: unknown) => {
    assert.ok(e instanceof TpmResponseError, `expected a TpmResponseError, got ${String(e)}`);
    assert.equal(e.rc, rc, e.message);
    return true;
  };
}

/** Load a software key (public and private) into the NULL hierarchy; `fn` runs with it, then it is flushed. */
async function withKey<T>(
  tpm: Tpm,
  pub: TPMT_PUBLIC,
  sensitive: Parameters<typeof loadExternal>[2],
  fn: (k: LoadedKey) => Promise<T>,
): Promise<T> {
  const k = await loadExternal(tpm, pub, sensitive);
  try {
    return await fn(k);
  } finally {
    await flush(tpm, k.handle);
  }
}

const softKey = (kind: "rsa" | "ecc"): KeyObject =>
  kind === "rsa"
    ? generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey
    : generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey;

/** A keyed-hash signing key with a known secret: unique = H(seedValue ‖ key) (Part 1 §27.2.5). */
function hmacKey(secret: Uint8Array) {
  const seedValue = new Uint8Array(randomBytes(32));
  const pub: TPMT_PUBLIC = {
    type: TPM_ALG.KEYEDHASH,
    nameAlg: SHA256,
    objectAttributes: TPMA_OBJECT.of("userWithAuth", "sign"),
    authPolicy: new Uint8Array(),
    parameters: { scheme: { scheme: TPM_ALG.HMAC, details: { hashAlg: SHA256 } } },
    unique: hash(SHA256, seedValue, secret),
  };
  return {
    pub,
    sensitive: { sensitiveType: TPM_ALG.KEYEDHASH, authValue: new Uint8Array(), seedValue, sensitive: secret },
  };
}

function quote(tpm: Tpm, signHandle: number, inScheme: TPMT_SIG_SCHEME, qualifyingData = new Uint8Array(8)) {
  return tpm.execute(Quote, { signHandle, qualifyingData, inScheme, PCRselect: [pcrSelection(SHA256, [0, 16])] });
}

function certify(tpm: Tpm, handle: number, inScheme: TPMT_SIG_SCHEME, qualifyingData = new Uint8Array(8)) {
  return tpm.execute(Certify, { objectHandle: handle, signHandle: handle, qualifyingData, inScheme });
}

export function signingCases(it: Case, backend: () => Backend): void {
  it("a keyed-hash key signs with HMAC: Sign, Quote, Certify; VerifySignature checks it", async () => {
    const tpm = backend().tpm;
    const secret = new Uint8Array(randomBytes(32));
    const { pub, sensitive } = hmacKey(secret);
    const mac = (data: Uint8Array) => hmac(hashFor(SHA256), secret, data);
    await withKey(tpm, pub, sensitive, async (k) => {
      const digest = hash(SHA256, enc.encode("HMAC-signed"));
      const { signature } = await tpm.execute(Sign, {
        keyHandle: k.handle,
        digest,
        inScheme: NULL_SCHEME,
        validation: NULL_TICKET,
      });
      assert.deepEqual(signature, { sigAlg: TPM_ALG.HMAC, signature: { hashAlg: SHA256, digest: mac(digest) } });
      await tpm.execute(VerifySignature, { keyHandle: k.handle, digest, signature });
      const other = hash(SHA256, enc.encode("something else"));
      await assert.rejects(
        tpm.execute(VerifySignature, { keyHandle: k.handle, digest: other, signature }),
        expectRc(TPM_RC.SIGNATURE | RC_MODIFIER.parameter(2)),
      );

      const q = await quote(tpm, k.handle, scheme(TPM_ALG.HMAC));
      const quoted = hash(SHA256, encode(TPMS_ATTEST, q.quoted));
      assert.deepEqual(q.signature, { sigAlg: TPM_ALG.HMAC, signature: { hashAlg: SHA256, digest: mac(quoted) } });
      const c = await certify(tpm, k.handle, NULL_SCHEME);
      const certified = hash(SHA256, encode(TPMS_ATTEST, c.certifyInfo));
      assert.deepEqual(c.signature, { sigAlg: TPM_ALG.HMAC, signature: { hashAlg: SHA256, digest: mac(certified) } });
    });
  });

  it("RSASSA-PSS: Sign with a digest-long salt, Quote, and VerifySignature of any salt length", async () => {
    const tpm = backend().tpm;
    const key = softKey("rsa");
    const pub = externalPublic(key, "sign");
    await withKey(tpm, pub, externalSensitive(key), async (k) => {
      const message = enc.encode("PSS over a digest");
      const digest = hash(SHA256, message);
      const { signature } = await tpm.execute(Sign, {
        keyHandle: k.handle,
        digest,
        inScheme: scheme(TPM_ALG.RSAPSS),
        validation: NULL_TICKET,
      });
      assert.equal(signature.sigAlg, TPM_ALG.RSAPSS);
      verifySignature(pub, message, signature);
      const sig = (signature.signature as { sig: Uint8Array }).sig;
      const pss = { key: publicKeyOf(pub), padding: constants.RSA_PKCS1_PSS_PADDING };
      assert.ok(verify("sha256", message, { ...pss, saltLength: 32 }, sig), "the salt is as long as the digest");
      await tpm.execute(VerifySignature, { keyHandle: k.handle, digest, signature });

      const q = await quote(tpm, k.handle, scheme(TPM_ALG.RSAPSS));
      verifySignature(pub, encode(TPMS_ATTEST, q.quoted), q.signature);
    });
  });

  it("Quote and Certify take a qualifyingData of 50 bytes, longer than the signing digest", async () => {
    const tpm = backend().tpm;
    const key = softKey("ecc");
    const pub = externalPublic(key, "sign");
    const nonce = new Uint8Array(randomBytes(50));
    await withKey(tpm, pub, externalSensitive(key), async (k) => {
      const q = await quote(tpm, k.handle, scheme(TPM_ALG.ECDSA), nonce);
      assert.deepEqual(q.quoted.extraData, nonce);
      verifySignature(pub, encode(TPMS_ATTEST, q.quoted), q.signature);
      const c = await certify(tpm, k.handle, scheme(TPM_ALG.ECDSA), nonce);
      assert.deepEqual(c.certifyInfo.extraData, nonce);
    });
  });

  it("a scheme that does not fit the key's type is TPM_RC_SCHEME on parameter 2 for Sign, Quote and Certify", async () => {
    const tpm = backend().tpm;
    const wrong = TPM_RC.SCHEME | RC_MODIFIER.parameter(2);
    for (const [kind, alien] of [["ecc", TPM_ALG.RSASSA], ["rsa", TPM_ALG.ECDSA]] as const) {
      const key = softKey(kind);
      await withKey(tpm, externalPublic(key, "sign"), externalSensitive(key), async (k) => {
        const digest = hash(SHA256, enc.encode(kind));
        await assert.rejects(
          tpm.execute(Sign, { keyHandle: k.handle, digest, inScheme: scheme(alien), validation: NULL_TICKET }),
          expectRc(wrong),
        );
        await assert.rejects(quote(tpm, k.handle, scheme(alien)), expectRc(wrong));
        await assert.rejects(certify(tpm, k.handle, scheme(alien)), expectRc(wrong));
      });
    }
  });
}

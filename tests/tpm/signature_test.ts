/**
 * verifySignature: the captured swtpm quote signature, software RSA (PKCS#1 v1.5, PSS) and ECDSA keys,
 * and each refusal with its reason.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { constants } from "node:crypto";
import { TPM_ALG, TPM_ECC_CURVE } from "../../src/tpm/constants.ts";
import { SignatureError, signatureHashAlg, verifySignature } from "../../src/tpm/signature.ts";
import { signatureEcc, signatureRsa, type TPMT_PUBLIC, type TPMT_SIGNATURE as Sig } from "../../src/tpm/structures.ts";
import { capturedAk, capturedQuote } from "../helpers/captured_quote.ts";
import { softKey } from "../helpers/soft_key.ts";

const SHA256: number = TPM_ALG.SHA256;

function rejects(fn: () => void, reason: string): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof SignatureError, `expected SignatureError, got ${String(e)}`);
    assert.equal(e.code, "ERR_TPM_SIGNATURE");
    assert.equal(e.reason, reason, e.message);
    return true;
  });
}

const MSG = new TextEncoder().encode("attestation bytes stand-in");

describe("verifySignature: captured swtpm quote", () => {
  const ak = capturedAk().outPublic;

  test("the raw Quote vector verifies with the AK of ReadPublic_AK_persistent", () => {
    const { attest, signature } = capturedQuote();
    assert.equal(signature.sigAlg, TPM_ALG.RSASSA);
    assert.equal(signatureHashAlg(signature), SHA256);
    verifySignature(ak, attest, signature);
  });

  test("one changed byte of the message: invalid", () => {
    const { attest, signature } = capturedQuote();
    attest[attest.length - 1]! ^= 1;
    rejects(() => verifySignature(ak, attest, signature), "invalid");
  });

  test("a truncated RSA signature: malformed", () => {
    const { attest, signature } = capturedQuote();
    const s = signatureRsa(signature);
    rejects(
      () => verifySignature(ak, attest, { sigAlg: TPM_ALG.RSASSA, signature: { ...s, sig: s.sig.slice(1) } }),
      "malformed",
    );
  });

  test("the AK's fixed scheme (RSASSA/SHA-256) refuses PSS and other hashes", () => {
    const { attest, signature } = capturedQuote();
    const s = signatureRsa(signature);
    rejects(() => verifySignature(ak, attest, { sigAlg: TPM_ALG.RSAPSS, signature: s }), "scheme");
    rejects(
      () => verifySignature(ak, attest, { sigAlg: TPM_ALG.RSASSA, signature: { ...s, hash: TPM_ALG.SHA1 } }),
      "scheme",
    );
  });

  test("an ECDSA signature for an RSA key: key-type", () => {
    const { attest } = capturedQuote();
    const sig: Sig = {
      sigAlg: TPM_ALG.ECDSA,
      signature: { hash: SHA256, signatureR: new Uint8Array(32).fill(1), signatureS: new Uint8Array(32).fill(1) },
    };
    rejects(() => verifySignature(ak, attest, sig), "key-type");
  });
});

describe("verifySignature: software RSA keys", () => {
  const { pub, sign } = softKey("rsa");

  test("RSASSA with SHA-1/256/384/512 on a key without a scheme", () => {
    for (const h of [TPM_ALG.SHA1, TPM_ALG.SHA256, TPM_ALG.SHA384, TPM_ALG.SHA512]) {
      const sig = sign(MSG, { sigAlg: TPM_ALG.RSASSA, hashAlg: h });
      assert.equal(signatureHashAlg(sig), h);
      verifySignature(pub, MSG, sig);
    }
  });

  test("RSAPSS with the digest-length salt (TPM) and the maximum salt; another salt is invalid", () => {
    verifySignature(pub, MSG, sign(MSG, { sigAlg: TPM_ALG.RSAPSS, saltLength: 32 }));
    verifySignature(pub, MSG, sign(MSG, { sigAlg: TPM_ALG.RSAPSS, saltLength: constants.RSA_PSS_SALTLEN_MAX_SIGN }));
    verifySignature(pub, MSG, sign(MSG, { sigAlg: TPM_ALG.RSAPSS, hashAlg: TPM_ALG.SHA384, saltLength: 48 }));
    rejects(() => verifySignature(pub, MSG, sign(MSG, { sigAlg: TPM_ALG.RSAPSS, saltLength: 20 })), "invalid");
  });

  test("a PKCS#1 v1.5 signature presented as PSS (and back) is invalid", () => {
    const v15 = sign(MSG, { sigAlg: TPM_ALG.RSASSA });
    rejects(() => verifySignature(pub, MSG, { ...v15, sigAlg: TPM_ALG.RSAPSS }), "invalid");
    const pss = sign(MSG, { sigAlg: TPM_ALG.RSAPSS, saltLength: 32 });
    rejects(() => verifySignature(pub, MSG, { ...pss, sigAlg: TPM_ALG.RSASSA }), "invalid");
  });

  test("a signature by another key is invalid", () => {
    const other = softKey("rsa");
    rejects(() => verifySignature(pub, MSG, other.sign(MSG, { sigAlg: TPM_ALG.RSASSA })), "invalid");
  });

  test("a key fixed to RSAPSS refuses RSASSA", () => {
    const pss = softKey("rsa", { scheme: TPM_ALG.RSAPSS });
    verifySignature(pss.pub, MSG, pss.sign(MSG, { sigAlg: TPM_ALG.RSAPSS, saltLength: 32 }));
    rejects(() => verifySignature(pss.pub, MSG, pss.sign(MSG, { sigAlg: TPM_ALG.RSASSA })), "scheme");
  });

  test("unsupported hash, NULL and HMAC signatures", () => {
    const sig = sign(MSG, { sigAlg: TPM_ALG.RSASSA });
    const s = signatureRsa(sig);
    rejects(
      () => verifySignature(pub, MSG, { sigAlg: TPM_ALG.RSASSA, signature: { ...s, hash: TPM_ALG.SM3_256 } }),
      "hash",
    );
    rejects(
      () => verifySignature(pub, MSG, { sigAlg: TPM_ALG.RSASSA, signature: { ...s, hash: TPM_ALG.NULL } }),
      "hash",
    );
    rejects(() => verifySignature(pub, MSG, { sigAlg: TPM_ALG.NULL, signature: null }), "key-type");
    const hmac: Sig = { sigAlg: TPM_ALG.HMAC, signature: { hashAlg: SHA256, digest: new Uint8Array(32) } };
    assert.equal(signatureHashAlg(hmac), SHA256);
    assert.equal(signatureHashAlg({ sigAlg: TPM_ALG.NULL, signature: null }), TPM_ALG.NULL);
    rejects(() => verifySignature(pub, MSG, hmac), "key-type");
  });

  test("a key without the sign attribute (an EK-like decrypt key): key-type", () => {
    const decryptOnly: TPMT_PUBLIC = { ...pub, objectAttributes: 0x000300b2 };
    rejects(() => verifySignature(decryptOnly, MSG, sign(MSG, { sigAlg: TPM_ALG.RSASSA })), "key-type");
  });

  test("a keyedhash object is not a signing key", () => {
    const keyed: TPMT_PUBLIC = {
      type: TPM_ALG.KEYEDHASH,
      nameAlg: SHA256,
      objectAttributes: 0x00040072,
      authPolicy: new Uint8Array(0),
      parameters: { scheme: { scheme: TPM_ALG.NULL, details: null } },
      unique: new Uint8Array(32),
    };
    rejects(() => verifySignature(keyed, MSG, sign(MSG, { sigAlg: TPM_ALG.RSASSA })), "key-type");
  });
});

describe("verifySignature: software ECDSA keys", () => {
  test("P-256 and P-384 with SHA-256/384", () => {
    for (const curve of ["P-256", "P-384"] as const) {
      const { pub, sign } = softKey("ecc", { curve });
      for (const h of [TPM_ALG.SHA256, TPM_ALG.SHA384]) verifySignature(pub, MSG, sign(MSG, { hashAlg: h }));
    }
  });

  test("r and s with leading zeros removed or added still verify", () => {
    const { pub, sign } = softKey("ecc", { scheme: TPM_ALG.ECDSA });
    const sig = sign(MSG);
    const { signatureR, signatureS } = signatureEcc(sig);
    const strip = (b: Uint8Array) => b.subarray(b.findIndex((x) => x !== 0));
    const pad = (b: Uint8Array) => Uint8Array.of(0, 0, ...b);
    for (const f of [strip, pad]) {
      verifySignature(pub, MSG, {
        sigAlg: TPM_ALG.ECDSA,
        signature: { hash: SHA256, signatureR: f(signatureR), signatureS: f(signatureS) },
      });
    }
  });

  test("a changed message or another key is invalid", () => {
    const { pub, sign } = softKey("ecc");
    const other = softKey("ecc");
    rejects(() => verifySignature(pub, new TextEncoder().encode("other"), sign(MSG)), "invalid");
    rejects(() => verifySignature(pub, MSG, other.sign(MSG)), "invalid");
  });

  test("zero or oversized r/s: malformed", () => {
    const { pub } = softKey("ecc");
    const one = new Uint8Array(32).fill(1);
    for (
      const [r, s] of [[new Uint8Array(32), one], [one, new Uint8Array(0)], [new Uint8Array(33).fill(1), one]] as const
    ) {
      rejects(
        () =>
          verifySignature(pub, MSG, {
            sigAlg: TPM_ALG.ECDSA,
            signature: { hash: SHA256, signatureR: r, signatureS: s },
          }),
        "malformed",
      );
    }
  });

  test("ECDAA/ECSCHNORR are unsupported; RSA signatures do not fit an EC key; a fixed ECDSA key refuses SHA-384", () => {
    const { pub, sign } = softKey("ecc", { scheme: TPM_ALG.ECDSA });
    const sig = sign(MSG);
    rejects(() => verifySignature(pub, MSG, { ...sig, sigAlg: TPM_ALG.ECSCHNORR }), "unsupported");
    rejects(() => verifySignature(pub, MSG, { ...sig, sigAlg: TPM_ALG.ECDAA }), "unsupported");
    const rsa = softKey("rsa");
    rejects(() => verifySignature(pub, MSG, rsa.sign(MSG, { sigAlg: TPM_ALG.RSASSA })), "key-type");
    rejects(() => verifySignature(pub, MSG, sign(MSG, { hashAlg: TPM_ALG.SHA384 })), "scheme");
  });

  test("a curve we cannot use: unsupported", () => {
    const { pub, sign } = softKey("ecc");
    const bn: TPMT_PUBLIC = { ...pub, parameters: { ...pub.parameters, curveID: TPM_ECC_CURVE.BN_P256 } as never };
    rejects(() => verifySignature(bn, MSG, sign(MSG)), "unsupported");
  });
});

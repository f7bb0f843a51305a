/**
 * verifySignature: the captured swtpm quote signature, software RSA (PKCS#1 v1.5, PSS) and ECDSA keys,
 * and each refusal with its reason.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { constants, generateKeyPairSync, type KeyObject, sign } from "node:crypto";
import { ReadPublic } from "../../src/tpm/commands.ts";
import { TPM_ALG, TPM_ECC_CURVE } from "../../src/tpm/constants.ts";
import { decodeResponseFrame } from "../../src/tpm/frame.ts";
import { decode } from "../../src/tpm/marshal.ts";
import { SignatureError, signatureHashAlg, verifySignature } from "../../src/tpm/signature.ts";
import { type TPMT_PUBLIC, TPMT_SIGNATURE, type TPMT_SIGNATURE as Sig } from "../../src/tpm/structures.ts";
import { rawHex } from "../helpers/vectors.ts";

const SHA256: number = TPM_ALG.SHA256;
const NULL_SCHEME = { scheme: TPM_ALG.NULL, details: null };
const SYM_NULL = { algorithm: TPM_ALG.NULL, keyBits: null, mode: null, details: null };
const NODE_HASH: Record<number, string> = {
  [TPM_ALG.SHA1]: "sha1",
  [TPM_ALG.SHA256]: "sha256",
  [TPM_ALG.SHA384]: "sha384",
  [TPM_ALG.SHA512]: "sha512",
};

const fromB64url = (s: unknown) => new Uint8Array(Buffer.from(String(s), "base64url"));

/** A software key with its TPMT_PUBLIC (AK attributes), standing in for a TPM key. */
function softKey(kind: "rsa" | "ecc", scheme: number = TPM_ALG.NULL, curve: "P-256" | "P-384" = "P-256") {
  const { publicKey, privateKey } = kind === "rsa"
    ? generateKeyPairSync("rsa", { modulusLength: 2048 })
    : generateKeyPairSync("ec", { namedCurve: curve });
  const jwk = publicKey.export({ format: "jwk" });
  const keyScheme = scheme === TPM_ALG.NULL ? NULL_SCHEME : { scheme, details: { hashAlg: SHA256 } };
  const pub: TPMT_PUBLIC = kind === "rsa"
    ? {
      type: TPM_ALG.RSA,
      nameAlg: SHA256,
      objectAttributes: 0x00050072,
      authPolicy: new Uint8Array(0),
      parameters: { symmetric: SYM_NULL, scheme: keyScheme, keyBits: 2048, exponent: 0 },
      unique: fromB64url(jwk.n),
    }
    : {
      type: TPM_ALG.ECC,
      nameAlg: SHA256,
      objectAttributes: 0x00050072,
      authPolicy: new Uint8Array(0),
      parameters: {
        symmetric: SYM_NULL,
        scheme: keyScheme,
        curveID: curve === "P-256" ? TPM_ECC_CURVE.NIST_P256 : TPM_ECC_CURVE.NIST_P384,
        kdf: NULL_SCHEME,
      },
      unique: { x: fromB64url(jwk.x), y: fromB64url(jwk.y) },
    };
  return { pub, privateKey };
}

function rsaSig(key: KeyObject, msg: Uint8Array, sigAlg: number, hashAlg = SHA256, saltLength?: number): Sig {
  const sig = sigAlg === TPM_ALG.RSAPSS
    ? sign(NODE_HASH[hashAlg]!, msg, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: saltLength! })
    : sign(NODE_HASH[hashAlg]!, msg, key);
  return { sigAlg, signature: { hash: hashAlg, sig: new Uint8Array(sig) } };
}

function ecdsaSig(key: KeyObject, msg: Uint8Array, hashAlg = SHA256): Sig {
  const p1363 = new Uint8Array(sign(NODE_HASH[hashAlg]!, msg, { key, dsaEncoding: "ieee-p1363" }));
  const n = p1363.length / 2;
  return {
    sigAlg: TPM_ALG.ECDSA,
    signature: { hash: hashAlg, signatureR: p1363.slice(0, n), signatureS: p1363.slice(n) },
  };
}

function rejects(fn: () => void, reason: string): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof SignatureError, `expected SignatureError, got ${String(e)}`);
    assert.equal(e.code, "ERR_TPM_SIGNATURE");
    assert.equal(e.reason, reason, e.message);
    return true;
  });
}

/** The AK of the raw vectors and the quote it signed. */
function capturedQuote() {
  const rp = decodeResponseFrame(rawHex("ReadPublic_AK_persistent.rsp.hex"), { responseHandles: 0, sessionCount: 0 });
  const ak = decode(ReadPublic.response, rp.parameters).outPublic;
  const q = decodeResponseFrame(rawHex("Quote_AK_rsassa_sha256_pcrs_0_1_2_3_10.rsp.hex"), {
    responseHandles: 0,
    sessionCount: 1,
  });
  const size = (q.parameters[0]! << 8) | q.parameters[1]!;
  const attest = q.parameters.slice(2, 2 + size);
  const signature = decode(TPMT_SIGNATURE, q.parameters.slice(2 + size));
  return { ak, attest, signature };
}

const MSG = new TextEncoder().encode("attestation bytes stand-in");

describe("verifySignature: captured swtpm quote", () => {
  test("the raw Quote vector verifies with the AK of ReadPublic_AK_persistent", () => {
    const { ak, attest, signature } = capturedQuote();
    assert.equal(signature.sigAlg, TPM_ALG.RSASSA);
    assert.equal(signatureHashAlg(signature), SHA256);
    verifySignature(ak, attest, signature);
  });

  test("one changed byte of the message: invalid", () => {
    const { ak, attest, signature } = capturedQuote();
    attest[attest.length - 1]! ^= 1;
    rejects(() => verifySignature(ak, attest, signature), "invalid");
  });

  test("a truncated RSA signature: malformed", () => {
    const { ak, attest, signature } = capturedQuote();
    const s = signature.signature as { hash: number; sig: Uint8Array };
    rejects(
      () => verifySignature(ak, attest, { sigAlg: TPM_ALG.RSASSA, signature: { ...s, sig: s.sig.slice(1) } }),
      "malformed",
    );
  });

  test("the AK's fixed scheme (RSASSA/SHA-256) refuses PSS and other hashes", () => {
    const { ak, attest, signature } = capturedQuote();
    const s = signature.signature as { hash: number; sig: Uint8Array };
    rejects(() => verifySignature(ak, attest, { sigAlg: TPM_ALG.RSAPSS, signature: s }), "scheme");
    rejects(
      () => verifySignature(ak, attest, { sigAlg: TPM_ALG.RSASSA, signature: { ...s, hash: TPM_ALG.SHA1 } }),
      "scheme",
    );
  });

  test("an ECDSA signature for an RSA key: key-type", () => {
    const { ak, attest } = capturedQuote();
    const sig: Sig = {
      sigAlg: TPM_ALG.ECDSA,
      signature: { hash: SHA256, signatureR: new Uint8Array(32).fill(1), signatureS: new Uint8Array(32).fill(1) },
    };
    rejects(() => verifySignature(ak, attest, sig), "key-type");
  });
});

describe("verifySignature: software RSA keys", () => {
  const { pub, privateKey } = softKey("rsa");

  test("RSASSA with SHA-1/256/384/512 on a key without a scheme", () => {
    for (const h of [TPM_ALG.SHA1, TPM_ALG.SHA256, TPM_ALG.SHA384, TPM_ALG.SHA512]) {
      const sig = rsaSig(privateKey, MSG, TPM_ALG.RSASSA, h);
      assert.equal(signatureHashAlg(sig), h);
      verifySignature(pub, MSG, sig);
    }
  });

  test("RSAPSS with the digest-length salt (TPM) and the maximum salt; another salt is invalid", () => {
    verifySignature(pub, MSG, rsaSig(privateKey, MSG, TPM_ALG.RSAPSS, SHA256, 32));
    verifySignature(pub, MSG, rsaSig(privateKey, MSG, TPM_ALG.RSAPSS, SHA256, constants.RSA_PSS_SALTLEN_MAX_SIGN));
    verifySignature(pub, MSG, rsaSig(privateKey, MSG, TPM_ALG.RSAPSS, TPM_ALG.SHA384, 48));
    rejects(() => verifySignature(pub, MSG, rsaSig(privateKey, MSG, TPM_ALG.RSAPSS, SHA256, 20)), "invalid");
  });

  test("a PKCS#1 v1.5 signature presented as PSS (and back) is invalid", () => {
    const v15 = rsaSig(privateKey, MSG, TPM_ALG.RSASSA);
    rejects(() => verifySignature(pub, MSG, { ...v15, sigAlg: TPM_ALG.RSAPSS }), "invalid");
    const pss = rsaSig(privateKey, MSG, TPM_ALG.RSAPSS, SHA256, 32);
    rejects(() => verifySignature(pub, MSG, { ...pss, sigAlg: TPM_ALG.RSASSA }), "invalid");
  });

  test("a signature by another key is invalid", () => {
    const other = softKey("rsa");
    rejects(() => verifySignature(pub, MSG, rsaSig(other.privateKey, MSG, TPM_ALG.RSASSA)), "invalid");
  });

  test("a key fixed to RSAPSS refuses RSASSA", () => {
    const pss = softKey("rsa", TPM_ALG.RSAPSS);
    verifySignature(pss.pub, MSG, rsaSig(pss.privateKey, MSG, TPM_ALG.RSAPSS, SHA256, 32));
    rejects(() => verifySignature(pss.pub, MSG, rsaSig(pss.privateKey, MSG, TPM_ALG.RSASSA)), "scheme");
  });

  test("unsupported hash, NULL and HMAC signatures", () => {
    const sig = rsaSig(privateKey, MSG, TPM_ALG.RSASSA);
    const s = sig.signature as { hash: number; sig: Uint8Array };
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
    rejects(() => verifySignature(decryptOnly, MSG, rsaSig(privateKey, MSG, TPM_ALG.RSASSA)), "key-type");
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
    rejects(() => verifySignature(keyed, MSG, rsaSig(privateKey, MSG, TPM_ALG.RSASSA)), "key-type");
  });
});

describe("verifySignature: software ECDSA keys", () => {
  test("P-256 and P-384 with SHA-256/384", () => {
    for (const curve of ["P-256", "P-384"] as const) {
      const { pub, privateKey } = softKey("ecc", TPM_ALG.NULL, curve);
      for (const h of [TPM_ALG.SHA256, TPM_ALG.SHA384]) verifySignature(pub, MSG, ecdsaSig(privateKey, MSG, h));
    }
  });

  test("r and s with leading zeros removed or added still verify", () => {
    const { pub, privateKey } = softKey("ecc", TPM_ALG.ECDSA);
    const sig = ecdsaSig(privateKey, MSG);
    const { signatureR, signatureS } = sig.signature as { signatureR: Uint8Array; signatureS: Uint8Array };
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
    const { pub, privateKey } = softKey("ecc");
    const other = softKey("ecc");
    rejects(() => verifySignature(pub, new TextEncoder().encode("other"), ecdsaSig(privateKey, MSG)), "invalid");
    rejects(() => verifySignature(pub, MSG, ecdsaSig(other.privateKey, MSG)), "invalid");
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
    const { pub, privateKey } = softKey("ecc", TPM_ALG.ECDSA);
    const sig = ecdsaSig(privateKey, MSG);
    rejects(() => verifySignature(pub, MSG, { ...sig, sigAlg: TPM_ALG.ECSCHNORR }), "unsupported");
    rejects(() => verifySignature(pub, MSG, { ...sig, sigAlg: TPM_ALG.ECDAA }), "unsupported");
    const rsa = softKey("rsa");
    rejects(() => verifySignature(pub, MSG, rsaSig(rsa.privateKey, MSG, TPM_ALG.RSASSA)), "key-type");
    rejects(() => verifySignature(pub, MSG, ecdsaSig(privateKey, MSG, TPM_ALG.SHA384)), "scheme");
  });

  test("a curve we cannot use: unsupported", () => {
    const { pub, privateKey } = softKey("ecc");
    const bn: TPMT_PUBLIC = { ...pub, parameters: { ...pub.parameters, curveID: TPM_ECC_CURVE.BN_P256 } as never };
    rejects(() => verifySignature(bn, MSG, ecdsaSig(privateKey, MSG)), "unsupported");
  });
});

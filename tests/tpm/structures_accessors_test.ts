/** The checked union accessors of structures.ts: the member when the selector matches, MarshalError otherwise. */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { TPM_ALG, TPM_CAP, TPM_GENERATED_VALUE, TPM_ST } from "../../src/tpm/constants.ts";
import { MarshalError } from "../../src/tpm/errors.ts";
import { decode, encode } from "../../src/tpm/marshal.ts";
import {
  asymSchemeDetails,
  attestCertify,
  attestQuote,
  capabilityPcrs,
  capabilityProperties,
  publicAsym,
  publicEcc,
  publicKeyedHash,
  publicRsa,
  signatureEcc,
  signatureHmac,
  signatureRsa,
  sigSchemeDetails,
  symKeyBits,
  symObjectKeyBits,
  symObjectMode,
  TPMA_OBJECT,
  TPMS_ATTEST,
  type TPMS_ATTEST as Attest,
  TPMT_PUBLIC,
  type TPMT_PUBLIC as Public,
  type TPMT_SIGNATURE as Signature,
  uniqueEcc,
  uniqueRsa,
} from "../../src/tpm/structures.ts";

const A = TPM_ALG;
const aes128cfb = { algorithm: A.AES, keyBits: 128, mode: A.CFB, details: null };

const rsa: Public = {
  type: A.RSA,
  nameAlg: A.SHA256,
  objectAttributes: TPMA_OBJECT.of("sign", "restricted"),
  authPolicy: new Uint8Array(0),
  parameters: {
    symmetric: { algorithm: A.NULL, keyBits: null, mode: null, details: null },
    scheme: { scheme: A.RSASSA, details: { hashAlg: A.SHA256 } },
    keyBits: 2048,
    exponent: 0,
  },
  unique: new Uint8Array(256).fill(7),
};
const ecc: Public = {
  type: A.ECC,
  nameAlg: A.SHA256,
  objectAttributes: TPMA_OBJECT.of("decrypt", "restricted"),
  authPolicy: new Uint8Array(0),
  parameters: {
    symmetric: aes128cfb,
    scheme: { scheme: A.NULL, details: null },
    curveID: 3,
    kdf: { scheme: A.NULL, details: null },
  },
  unique: { x: new Uint8Array(32).fill(1), y: new Uint8Array(32).fill(2) },
};

/** The error an accessor raises, checked to be a selector MarshalError whose message names `parts`. */
function rejects(f: () => unknown, ...parts: string[]): void {
  assert.throws(f, (e: unknown) => {
    assert.ok(e instanceof MarshalError, `expected MarshalError, got ${String(e)}`);
    assert.equal(e.code, "ERR_TPM_MARSHAL");
    assert.equal(e.fault, "selector");
    for (const p of parts) assert.ok(e.message.includes(p), `"${e.message}" should mention ${p}`);
    return true;
  });
}

describe("TPMT_PUBLIC accessors", () => {
  test("RSA parameters and modulus of an RSA key (also after a round trip)", () => {
    const back = decode(TPMT_PUBLIC, encode(TPMT_PUBLIC, rsa));
    assert.equal(publicRsa(back).keyBits, 2048);
    assert.equal(publicAsym(back).scheme.scheme, A.RSASSA);
    assert.deepEqual(uniqueRsa(back), new Uint8Array(256).fill(7));
  });
  test("ECC parameters and point of an ECC key", () => {
    assert.equal(publicEcc(ecc).curveID, 3);
    assert.deepEqual(uniqueEcc(ecc).y, new Uint8Array(32).fill(2));
    assert.equal(symObjectKeyBits(publicAsym(ecc).symmetric), 128);
    assert.equal(symObjectMode(publicAsym(ecc).symmetric), A.CFB);
  });
  test("the wrong member raises MarshalError naming the union and the selector", () => {
    rejects(
      () => publicEcc(rsa),
      "TPMU_PUBLIC_PARMS",
      "TPMT_PUBLIC.parameters",
      "ECC (0x0023)",
      "type is RSA (0x0001)",
    );
    rejects(() => uniqueRsa(ecc), "TPMU_PUBLIC_ID", "type is ECC");
    rejects(() => publicKeyedHash(rsa), "TPMU_PUBLIC_PARMS", "KEYEDHASH");
    rejects(() => publicAsym({ ...rsa, type: A.SYMCIPHER }), "RSA (0x0001) or ECC (0x0023)", "SYMCIPHER");
  });
  test("a NULL symmetric definition has no key size or mode", () => {
    rejects(() => symObjectKeyBits(publicAsym(rsa).symmetric), "TPMU_SYM_KEY_BITS", "algorithm is NULL");
    rejects(() => symObjectMode(publicAsym(rsa).symmetric), "TPMU_SYM_MODE", "algorithm is NULL");
    assert.equal(symKeyBits(aes128cfb), 128);
    rejects(() => symKeyBits({ algorithm: A.XOR, keyBits: A.SHA256, mode: null, details: null }), "XOR");
  });
});

describe("scheme accessors", () => {
  test("hashAlg of a signing scheme; NULL and RSAES have no details", () => {
    assert.equal(sigSchemeDetails({ scheme: A.ECDSA, details: { hashAlg: A.SHA384 } }).hashAlg, A.SHA384);
    rejects(() => sigSchemeDetails({ scheme: A.NULL, details: null }), "TPMU_SIG_SCHEME", "scheme is NULL");
    assert.equal(asymSchemeDetails(publicAsym(rsa).scheme).hashAlg, A.SHA256);
    rejects(() => asymSchemeDetails({ scheme: A.RSAES, details: null }), "TPMU_ASYM_SCHEME", "RSAES");
  });
});

describe("TPMT_SIGNATURE accessors", () => {
  const rsaSig: Signature = { sigAlg: A.RSAPSS, signature: { hash: A.SHA256, sig: new Uint8Array(4) } };
  const eccSig: Signature = {
    sigAlg: A.ECDSA,
    signature: { hash: A.SHA256, signatureR: new Uint8Array(1), signatureS: new Uint8Array(2) },
  };
  const hmacSig: Signature = { sigAlg: A.HMAC, signature: { hashAlg: A.SHA1, digest: new Uint8Array(20) } };
  test("each scheme's member", () => {
    assert.equal(signatureRsa(rsaSig).sig.length, 4);
    assert.equal(signatureEcc(eccSig).signatureS.length, 2);
    assert.equal(signatureHmac(hmacSig).hashAlg, A.SHA1);
  });
  test("another scheme's member raises", () => {
    rejects(() => signatureRsa(eccSig), "TPMU_SIGNATURE", "TPMT_SIGNATURE.signature", "sigAlg is ECDSA");
    rejects(() => signatureEcc(rsaSig), "TPMU_SIGNATURE", "sigAlg is RSAPSS");
    rejects(() => signatureHmac({ sigAlg: A.NULL, signature: null }), "sigAlg is NULL");
  });
});

describe("TPMS_ATTEST and TPMS_CAPABILITY_DATA accessors", () => {
  const header = {
    magic: TPM_GENERATED_VALUE,
    qualifiedSigner: new Uint8Array(0),
    extraData: new Uint8Array(0),
    clockInfo: { clock: 0n, resetCount: 0, restartCount: 0, safe: true },
    firmwareVersion: 0n,
  };
  const quote: Attest = {
    ...header,
    type: TPM_ST.ATTEST_QUOTE,
    attested: { pcrSelect: [], pcrDigest: new Uint8Array(32) },
  };
  test("quote info of a quote, certify info refused", () => {
    assert.equal(attestQuote(decode(TPMS_ATTEST, encode(TPMS_ATTEST, quote))).pcrDigest.length, 32);
    rejects(() => attestCertify(quote), "TPMU_ATTEST", "ATTEST_CERTIFY", "type is ATTEST_QUOTE (0x8018)");
  });
  test("capability data by capability", () => {
    const props = { capability: TPM_CAP.TPM_PROPERTIES, data: [{ property: 0x100, value: 1 }] };
    assert.deepEqual(capabilityProperties(props), [{ property: 0x100, value: 1 }]);
    rejects(() => capabilityPcrs(props), "TPMU_CAPABILITIES", "capability is TPM_PROPERTIES");
  });
});

describe("accessor types", () => {
  test("each accessor is typed as exactly its member", () => {
    const n: Uint8Array = uniqueRsa(rsa);
    // @ts-expect-error: the RSA modulus is not an ECC point
    const p: { x: Uint8Array } = uniqueRsa(rsa);
    // @ts-expect-error: TPMS_RSA_PARMS has no curveID
    const c: number = publicRsa(rsa).curveID;
    assert.equal(n.length, 256);
    assert.equal(p.x, undefined);
    assert.equal(c, undefined);
  });
});

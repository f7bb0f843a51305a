/**
 * checkQuoteAttest / checkCertifyAttest against captured swtpm output (raw vectors and the tpm2-tools
 * files of swtpm-state/), and each refusal with its reason, in the documented order of checks.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { generateKeyPairSync, type KeyObject, sign } from "node:crypto";
import { readFileSync } from "node:fs";
import { AttestationError, checkCertifyAttest, checkQuoteAttest } from "../../src/tpm/attest.ts";
import { Certify, PCR_Read, ReadPublic } from "../../src/tpm/commands.ts";
import { TPM_ALG, TPM_ECC_CURVE } from "../../src/tpm/constants.ts";
import { hash, objectName } from "../../src/tpm/crypto.ts";
import { decodeResponseFrame } from "../../src/tpm/frame.ts";
import { decode, encode } from "../../src/tpm/marshal.ts";
import { decodePcrFile } from "../../src/tpm/pcr_file.ts";
import { SignatureError } from "../../src/tpm/signature.ts";
import {
  TPM2B_PUBLIC,
  TPMS_ATTEST,
  type TPMT_PUBLIC,
  TPMT_SIGNATURE,
  type TPMT_SIGNATURE as Sig,
} from "../../src/tpm/structures.ts";
import { readQuoteFiles } from "../../src/tpm/tpm2_tools_files.ts";
import { fromHex, rawHex, toHex, VECTOR_DIR } from "../helpers/vectors.ts";

const STATE_DIR = VECTOR_DIR + "swtpm-state/";
const state = (f: string) => new Uint8Array(readFileSync(STATE_DIR + f));
const SHA256: number = TPM_ALG.SHA256;
const NULL_SCHEME = { scheme: TPM_ALG.NULL, details: null };
const SYM_NULL = { algorithm: TPM_ALG.NULL, keyBits: null, mode: null, details: null };
const fromB64url = (s: unknown) => new Uint8Array(Buffer.from(String(s), "base64url"));

/** A software key acting as an AK: its TPMT_PUBLIC and a signer producing TPMT_SIGNATUREs. */
function softAk(kind: "rsa" | "ecc"): { pub: TPMT_PUBLIC; sign(msg: Uint8Array): Sig } {
  const { publicKey, privateKey } = kind === "rsa"
    ? generateKeyPairSync("rsa", { modulusLength: 2048 })
    : generateKeyPairSync("ec", { namedCurve: "P-256" });
  const jwk = publicKey.export({ format: "jwk" });
  const common = { nameAlg: SHA256, objectAttributes: 0x00050072, authPolicy: new Uint8Array(0) };
  if (kind === "rsa") {
    return {
      pub: {
        type: TPM_ALG.RSA,
        ...common,
        parameters: {
          symmetric: SYM_NULL,
          scheme: { scheme: TPM_ALG.RSASSA, details: { hashAlg: SHA256 } },
          keyBits: 2048,
          exponent: 0,
        },
        unique: fromB64url(jwk.n),
      },
      sign: (msg) => ({
        sigAlg: TPM_ALG.RSASSA,
        signature: { hash: SHA256, sig: new Uint8Array(sign("sha256", msg, privateKey as KeyObject)) },
      }),
    };
  }
  return {
    pub: {
      type: TPM_ALG.ECC,
      ...common,
      parameters: {
        symmetric: SYM_NULL,
        scheme: { scheme: TPM_ALG.ECDSA, details: { hashAlg: SHA256 } },
        curveID: TPM_ECC_CURVE.NIST_P256,
        kdf: NULL_SCHEME,
      },
      unique: { x: fromB64url(jwk.x), y: fromB64url(jwk.y) },
    },
    sign: (msg) => {
      const rs = new Uint8Array(sign("sha256", msg, { key: privateKey, dsaEncoding: "ieee-p1363" }));
      return {
        sigAlg: TPM_ALG.ECDSA,
        signature: { hash: SHA256, signatureR: rs.slice(0, 32), signatureS: rs.slice(32) },
      };
    },
  };
}

function rejects(fn: () => unknown, reason: string): AttestationError {
  let caught: AttestationError | undefined;
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof AttestationError, `expected AttestationError, got ${String(e)}`);
    assert.equal(e.code, "ERR_TPM_ATTESTATION");
    assert.equal(e.reason, reason, e.message);
    caught = e;
    return true;
  });
  return caught!;
}

/** A TPM2B_ATTEST ‖ TPMT_SIGNATURE response parameter area, split with the attest bytes kept as signed. */
function splitAttestResponse(params: Uint8Array): { attest: Uint8Array; signature: Sig } {
  const size = (params[0]! << 8) | params[1]!;
  return { attest: params.slice(2, 2 + size), signature: decode(TPMT_SIGNATURE, params.slice(2 + size)) };
}

function rawAk() {
  const rp = decodeResponseFrame(rawHex("ReadPublic_AK_persistent.rsp.hex"), { responseHandles: 0, sessionCount: 0 });
  return decode(ReadPublic.response, rp.parameters);
}

function rawQuote() {
  const q = decodeResponseFrame(rawHex("Quote_AK_rsassa_sha256_pcrs_0_1_2_3_10.rsp.hex"), {
    responseHandles: 0,
    sessionCount: 1,
  });
  // PCR_Read of 0 and 10 from the same state; 1-3 were never extended and hold zeros.
  const pr = decodeResponseFrame(rawHex("PCR_Read_sha256_0_10.rsp.hex"), { responseHandles: 0, sessionCount: 0 });
  const [pcr0, pcr10] = decode(PCR_Read.response, pr.parameters).pcrValues;
  const zero = new Uint8Array(32);
  return {
    ...splitAttestResponse(q.parameters),
    qualifyingData: fromHex("0011223344556677"),
    pcrValues: [pcr0!, zero, zero, zero, pcr10!],
  };
}

function rawCertify() {
  const c = decodeResponseFrame(rawHex("Certify_AK_by_AK.rsp.hex"), { responseHandles: 0, sessionCount: 2 });
  assert.ok(decode(Certify.response, c.parameters));
  return { ...splitAttestResponse(c.parameters), qualifyingData: fromHex("cafe") };
}

/** The same attestation with one field changed, re-signed by `signer`. */
function resign(attest: Uint8Array, signer: { sign(msg: Uint8Array): Sig }, edit: (a: TPMS_ATTEST) => void) {
  const a = decode(TPMS_ATTEST, attest);
  edit(a);
  const bytes = encode(TPMS_ATTEST, a);
  return { attest: bytes, signature: signer.sign(bytes) };
}

describe("checkQuoteAttest: raw swtpm vectors", () => {
  const ak = rawAk().outPublic;

  test("the quote verifies, its PCR values hash to pcrDigest, the clock is safe", () => {
    const q = rawQuote();
    assert.equal(toHex(hash(SHA256, ...q.pcrValues)).slice(0, 8), "a9bd3455");
    const r = checkQuoteAttest({ ...q, signer: ak, requireSafe: true });
    assert.equal(r.hashAlg, SHA256);
    assert.equal(toHex(r.pcrDigest).slice(0, 8), "a9bd3455");
    assert.deepEqual(r.pcrSelect, [{ hash: SHA256, pcrSelect: Uint8Array.of(0x0f, 0x04, 0x00) }]);
    assert.equal(r.clockInfo.safe, true);
    assert.equal(toHex(r.extraData), "0011223344556677");
  });

  test("another nonce: nonce", () => {
    rejects(
      () => checkQuoteAttest({ ...rawQuote(), signer: ak, qualifyingData: fromHex("0011223344556678") }),
      "nonce",
    );
  });

  test("another AK: signature (with the SignatureError as cause)", () => {
    const e = rejects(() => checkQuoteAttest({ ...rawQuote(), signer: softAk("rsa").pub }), "signature");
    assert.ok(e.cause instanceof SignatureError);
    assert.equal(e.cause.reason, "invalid");
  });

  test("a changed PCR value: pcr-digest; a missing one: pcr-values", () => {
    const q = rawQuote();
    const flipped = q.pcrValues.map((v) => v.slice());
    flipped[4]![0]! ^= 1;
    rejects(() => checkQuoteAttest({ ...q, signer: ak, pcrValues: flipped }), "pcr-digest");
    rejects(() => checkQuoteAttest({ ...q, signer: ak, pcrValues: q.pcrValues.slice(1) }), "pcr-values");
    rejects(() => checkQuoteAttest({ ...q, signer: ak, pcrValues: [...q.pcrValues, q.pcrValues[0]!] }), "pcr-values");
    rejects(
      () => checkQuoteAttest({ ...q, signer: ak, pcrValues: [new Uint8Array(20), ...q.pcrValues.slice(1)] }),
      "pcr-values",
    );
  });

  test("magic, type and parse come first; then the signature; then content", () => {
    const q = rawQuote();
    const badMagic = q.attest.slice();
    badMagic[0] = 0xfe;
    rejects(() => checkQuoteAttest({ ...q, signer: ak, attest: badMagic, qualifyingData: new Uint8Array(1) }), "magic");
    rejects(() => checkQuoteAttest({ ...q, signer: ak, attest: rawCertify().attest }), "type");
    rejects(() => checkQuoteAttest({ ...q, signer: ak, attest: q.attest.slice(0, -1) }), "parse");
    rejects(() => checkQuoteAttest({ ...q, signer: ak, attest: Uint8Array.of(...q.attest, 0) }), "parse");
    rejects(() => checkQuoteAttest({ ...q, signer: ak, attest: q.attest.slice(0, 3) }), "parse");
    // Signed content changed: the signature fails before the (now also wrong) nonce is looked at.
    const edited = q.attest.slice();
    edited[edited.length - 1]! ^= 1;
    rejects(
      () => checkQuoteAttest({ ...q, signer: ak, attest: edited, qualifyingData: new Uint8Array(1) }),
      "signature",
    );
  });

  test("safe = NO, re-signed by a software AK: clock-unsafe only when requireSafe", () => {
    const soft = softAk("rsa");
    const q = rawQuote();
    const unsafe = resign(q.attest, soft, (a) => (a.clockInfo.safe = false));
    const r = checkQuoteAttest({ ...q, ...unsafe, signer: soft.pub });
    assert.equal(r.clockInfo.safe, false);
    rejects(() => checkQuoteAttest({ ...q, ...unsafe, signer: soft.pub, requireSafe: true }), "clock-unsafe");
    const softEcc = softAk("ecc");
    const eccSigned = resign(q.attest, softEcc, () => {});
    checkQuoteAttest({ ...q, ...eccSigned, signer: softEcc.pub, requireSafe: true });
  });
});

describe("checkCertifyAttest", () => {
  const { outPublic: ak, name } = rawAk();

  test("Certify_AK_by_AK verifies; the certified Name is the AK's", () => {
    assert.equal(toHex(objectName(ak)), toHex(name));
    const r = checkCertifyAttest({ ...rawCertify(), signer: ak, certifiedName: name });
    assert.equal(toHex(r.name), toHex(name));
    assert.equal(r.hashAlg, SHA256);
  });

  test("the swtpm-state certify.attest / certify.sig (plain) verify against ak.pub and ak.name", () => {
    const pub = decode(TPM2B_PUBLIC, state("ak.pub"));
    const certifiedName = state("ak.name");
    assert.equal(toHex(objectName(pub)), toHex(certifiedName));
    const signature: Sig = { sigAlg: TPM_ALG.RSASSA, signature: { hash: SHA256, sig: state("certify.sig") } };
    checkCertifyAttest({
      attest: state("certify.attest"),
      signature,
      signer: pub,
      qualifyingData: fromHex("00ff55aa"),
      certifiedName,
    });
  });

  test("refusals: nonce, name, signature, type, magic", () => {
    const c = rawCertify();
    const ok = { ...c, signer: ak, certifiedName: name };
    rejects(() => checkCertifyAttest({ ...ok, qualifyingData: fromHex("cafd") }), "nonce");
    const otherName = name.slice();
    otherName[5]! ^= 1;
    rejects(() => checkCertifyAttest({ ...ok, certifiedName: otherName }), "name");
    rejects(() => checkCertifyAttest({ ...ok, signer: softAk("ecc").pub }), "signature");
    rejects(() => checkCertifyAttest({ ...ok, attest: rawQuote().attest }), "type");
    const badMagic = c.attest.slice();
    badMagic[3] = 0;
    rejects(() => checkCertifyAttest({ ...ok, attest: badMagic }), "magic");
  });
});

describe("checkQuoteAttest: swtpm-state tpm2-tools files", () => {
  test("quote.msg / quote.sig / quote.pcrs verify with nonce.hex against ak.pub", async () => {
    const files = await readQuoteFiles(STATE_DIR);
    const pcrs = decodePcrFile(files.pcrs);
    const r = checkQuoteAttest({
      attest: files.attest,
      signature: files.signature,
      signer: files.akPublic,
      qualifyingData: fromHex(readFileSync(STATE_DIR + "nonce.hex", "utf8")),
      pcrValues: pcrs.values.flat(),
      requireSafe: true,
    });
    assert.deepEqual(r.pcrSelect.map((s) => [s.hash, toHex(s.pcrSelect)]), [[SHA256, "0f0400"]]);
    assert.equal(toHex(encode(TPM2B_PUBLIC, files.akPublic)), toHex(files.akPublicBytes));
  });
});

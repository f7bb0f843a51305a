/**
 * checkQuoteAttest / checkCertifyAttest against captured swtpm output (raw vectors and the tpm2-tools
 * files of swtpm-state/), and each refusal with its reason, in the documented order of checks.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { AttestationError, checkCertifyAttest, checkQuoteAttest } from "../../src/tpm/attest.ts";
import { Certify } from "../../src/tpm/commands.ts";
import { TPM_ALG } from "../../src/tpm/constants.ts";
import { hash, objectName } from "../../src/tpm/crypto.ts";
import { decodeResponseFrame } from "../../src/tpm/frame.ts";
import { decode, encode } from "../../src/tpm/marshal.ts";
import { decodePcrFile } from "../../src/tpm/pcr_file.ts";
import { SignatureError } from "../../src/tpm/signature.ts";
import { attestQuote, TPM2B_PUBLIC, TPMS_ATTEST, type TPMT_SIGNATURE as Sig } from "../../src/tpm/structures.ts";
import { pcrSelection, selectedPcrs } from "../../src/tpm/pcrs.ts";
import { readQuoteFiles } from "../../src/tpm/tpm2_tools_files.ts";
import { capturedAk, capturedQuote, splitAttestResponse } from "../helpers/captured_quote.ts";
import { softKey } from "../helpers/soft_key.ts";
import { fromHex, rawHex, toHex, VECTOR_DIR } from "../helpers/vectors.ts";

const STATE_DIR = VECTOR_DIR + "swtpm-state/";
const state = (f: string) => new Uint8Array(readFileSync(STATE_DIR + f));
const SHA256: number = TPM_ALG.SHA256;

/** A software AK with a TPM AK's fixed scheme: RSASSA or ECDSA, SHA-256. */
const softAk = (kind: "rsa" | "ecc") => softKey(kind, { scheme: kind === "rsa" ? TPM_ALG.RSASSA : TPM_ALG.ECDSA });

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
  const ak = capturedAk().outPublic;

  test("the quote verifies, its PCR values hash to pcrDigest, the clock is safe", () => {
    const q = capturedQuote();
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
      () => checkQuoteAttest({ ...capturedQuote(), signer: ak, qualifyingData: fromHex("0011223344556678") }),
      "nonce",
    );
  });

  test("another AK: signature (with the SignatureError as cause)", () => {
    const e = rejects(() => checkQuoteAttest({ ...capturedQuote(), signer: softAk("rsa").pub }), "signature");
    assert.ok(e.cause instanceof SignatureError);
    assert.equal(e.cause.reason, "invalid");
  });

  test("a changed PCR value: pcr-digest; a missing one: pcr-values", () => {
    const q = capturedQuote();
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

  test("values read for another selection than the quoted one: pcr-selection", () => {
    const q = capturedQuote();
    const quoted = decode(TPMS_ATTEST, q.attest);
    const selection = attestQuote(quoted).pcrSelect;
    checkQuoteAttest({ ...q, signer: ak, pcrSelection: selection });
    const fewer = selection.map((s) => pcrSelection(s.hash, selectedPcrs(s).slice(1)));
    rejects(() => checkQuoteAttest({ ...q, signer: ak, pcrSelection: fewer }), "pcr-selection");
  });

  test("magic, type and parse come first; then the signature; then content", () => {
    const q = capturedQuote();
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
    const q = capturedQuote();
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
  const { outPublic: ak, name } = capturedAk();

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
    rejects(() => checkCertifyAttest({ ...ok, attest: capturedQuote().attest }), "type");
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

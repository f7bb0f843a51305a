/**
 * The Keylime quote string and verifyQuote (spec/keylime.md §5): format strictness, every verifier
 * check with its reason, captured swtpm quotes, and live quotes made by tpm2-tools on a private swtpm
 * (RSA and ECC AKs) with the result cross-checked by tpm2_checkquote.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import fc from "fast-check";
import { decodePcrBlob, encodePcrBlob } from "../../src/protocol/pcr_blob.ts";
import {
  decodeQuote,
  encodeQuote,
  QuoteFormatError,
  QuoteVerificationError,
  verifyQuote,
  type VerifyQuoteInput,
} from "../../src/protocol/quote.ts";
import { TPM_ALG, TPM_GENERATED_VALUE, TPM_ST } from "../../src/tpm/constants.ts";
import { hash, objectName } from "../../src/tpm/crypto.ts";
import { encode } from "../../src/tpm/marshal.ts";
import { pcrSelection } from "../../src/tpm/pcrs.ts";
import {
  TPM2B_PUBLIC,
  TPMS_ATTEST,
  type TPMS_CLOCK_INFO,
  type TPMS_PCR_SELECTION,
  type TPMT_PUBLIC,
  TPMT_SIGNATURE,
} from "../../src/tpm/structures.ts";
import { readQuoteFiles, writeQuoteFiles } from "../../src/tpm/tpm2_tools_files.ts";
import { capturedAk, capturedQuote } from "../helpers/captured_quote.ts";
import { type SoftKey, softKey } from "../helpers/soft_key.ts";
import { requireTools, startSwtpm, type SwtpmInstance, swtpmSkipReason } from "../helpers/swtpm.ts";
import { VECTOR_DIR } from "../helpers/vectors.ts";
import { toBase64, toHex } from "../../src/util/encoding.ts";

const SHA1: number = TPM_ALG.SHA1;
const SHA256: number = TPM_ALG.SHA256;
const SHA384: number = TPM_ALG.SHA384;
const NULL_SCHEME = { scheme: TPM_ALG.NULL, details: null };
const utf8 = (s: string) => new TextEncoder().encode(s);

interface QuoteSpec {
  nonce?: string;
  selections?: TPMS_PCR_SELECTION[];
  values?: Uint8Array[][];
  /** PCR values the blob carries, when they differ from the quoted ones. */
  blobSelections?: TPMS_PCR_SELECTION[];
  blobValues?: Uint8Array[][];
  clock?: Partial<TPMS_CLOCK_INFO>;
  hashAlg?: number;
  pss?: boolean;
}

const NONCE = "Gq5pWqrsXzDdwvjPW0mi";
const digest = (fill: number, n = 32) => new Uint8Array(n).fill(fill);

/** A quote as a TPM would make it (TPMS_ATTEST per Part 2 §10.12.12), signed by a software AK without a fixed scheme. */
function softQuote(ak: SoftKey, spec: QuoteSpec = {}): string {
  const hashAlg = spec.hashAlg ?? SHA256;
  const selections = spec.selections ?? [pcrSelection(SHA256, [10, 16])];
  const values = spec.values ?? [[digest(0xaa), digest(0xbb)]];
  const attest = encode(TPMS_ATTEST, {
    magic: TPM_GENERATED_VALUE,
    type: TPM_ST.ATTEST_QUOTE,
    qualifiedSigner: objectName(ak.pub),
    extraData: utf8(spec.nonce ?? NONCE),
    clockInfo: { clock: 5000n, resetCount: 3, restartCount: 1, safe: true, ...spec.clock },
    firmwareVersion: 0x2019102300163636n,
    attested: { pcrSelect: selections, pcrDigest: hash(hashAlg, ...values.flat()) },
  });
  return encodeQuote({
    attest,
    signature: ak.sign(attest, { hashAlg, sigAlg: spec.pss === true ? TPM_ALG.RSAPSS : undefined }),
    pcrBlob: encodePcrBlob(spec.blobSelections ?? selections, spec.blobValues ?? values),
  });
}

function rejects(input: VerifyQuoteInput, reason: string): QuoteVerificationError {
  let caught: QuoteVerificationError | undefined;
  assert.throws(() => verifyQuote(input), (e: unknown) => {
    assert.ok(e instanceof QuoteVerificationError, `expected QuoteVerificationError, got ${String(e)}`);
    assert.equal(e.code, "ERR_QUOTE_VERIFICATION");
    assert.equal(e.reason, reason, e.message);
    caught = e;
    return true;
  });
  return caught!;
}

function formatError(s: string, part: string): void {
  assert.throws(() => decodeQuote(s), (e: unknown) => {
    assert.ok(e instanceof QuoteFormatError, `expected QuoteFormatError, got ${String(e)}`);
    assert.equal(e.code, "ERR_QUOTE_FORMAT");
    assert.equal(e.part, part, e.message);
    return true;
  });
}

// ---- the quote string -----------------------------------------------------------------------------

describe("quote string", () => {
  const ak = softKey("rsa");
  const good = softQuote(ak);

  test("encodeQuote / decodeQuote round trip", () => {
    const q = decodeQuote(good);
    assert.ok(good.startsWith("r"));
    assert.equal(good.split(":").length, 3);
    assert.equal(encodeQuote({ attest: q.attest, signature: q.signature, pcrBlob: q.pcrBlob }), good);
    assert.equal(encodeQuote({ attest: q.attest, signature: q.signatureBytes, pcrBlob: q.pcrBlob }), good);
    assert.equal(toHex(encode(TPMT_SIGNATURE, q.signature)), toHex(q.signatureBytes));
  });

  test("prefix, parts and base64 are strict, and the error names the part", () => {
    const [a, s, p] = good.slice(1).split(":") as [string, string, string];
    formatError(good.slice(1), "quote");
    formatError("d" + good.slice(1), "quote");
    formatError(`r${a}:${s}`, "quote");
    formatError(`r${a}:${s}:${p}:`, "quote");
    formatError(`r:${s}:${p}`, "TPMS_ATTEST");
    formatError(`r${a}A:${s}:${p}`, "TPMS_ATTEST");
    formatError(`r${a} :${s}:${p}`, "TPMS_ATTEST");
    formatError(`r${a}:${s.replace(/[+/]/g, "-")}X:${p}`, "TPMT_SIGNATURE");
    formatError(`r${a}:${s}:`, "PCRBLOB");
    formatError(`r${a}:${s}:${p}\n`, "PCRBLOB");
    formatError(`r${a}:AAE=:${p}`, "TPMT_SIGNATURE"); // "AAE=" decodes; "AAF=" has spare bits set
    formatError(`r${a}:AAF=:${p}`, "TPMT_SIGNATURE");
    formatError(`r${a}:${s.slice(0, 40)}:${p}`, "TPMT_SIGNATURE");
    formatError("r" + "A".repeat(70000), "quote");
    formatError(42 as unknown as string, "quote");
  });

  test("random strings and mangled quotes raise only QuoteFormatError", () => {
    const only = (s: string) => {
      try {
        decodeQuote(s);
      } catch (e) {
        if (!(e instanceof QuoteFormatError)) throw new Error(`decodeQuote threw ${String(e)}`);
      }
    };
    fc.assert(fc.property(fc.string({ maxLength: 300 }), (s) => only(s)), { numRuns: 300 });
    fc.assert(
      fc.property(fc.string({ unit: fc.constantFrom(..."rAZaz09+/=:"), maxLength: 200 }), (s) => only(s)),
      { numRuns: 300 },
    );
    fc.assert(
      fc.property(
        fc.nat({ max: good.length }),
        fc.nat({ max: good.length }),
        fc.string({ maxLength: 3 }),
        (i, j, ins) => {
          only(good.slice(0, i) + ins + good.slice(Math.min(good.length, i + j % 5)));
          only(good.slice(0, i));
        },
      ),
      { numRuns: 300 },
    );
  });
});

// ---- verifyQuote with software AKs -----------------------------------------------------------------

describe("verifyQuote: checks and reasons", () => {
  const rsa = softKey("rsa");
  const ecc = softKey("ecc");
  const base = { nonce: NONCE, hashAlg: SHA256 };

  test("an RSA (RSASSA) and an EC (ECDSA) quote verify; the result holds the hash_alg bank", () => {
    for (const ak of [rsa, ecc]) {
      const r = verifyQuote({ ...base, quote: softQuote(ak), akPublic: ak.pub });
      assert.deepEqual([...r.pcrs.keys()], [10, 16]);
      assert.equal(toHex(r.pcrs.get(16)!), toHex(digest(0xbb)));
      assert.equal(r.clock.resetCount, 3);
      assert.equal(r.clock.clock, 5000n);
      assert.equal(toHex(r.attest.extraData), toHex(utf8(NONCE)));
    }
  });

  test("the AK as aik_tpm bytes (TPM2B_PUBLIC); unusable aik_tpm: ak", () => {
    const aikTpm = encode(TPM2B_PUBLIC, rsa.pub);
    verifyQuote({ ...base, quote: softQuote(rsa), aikTpm });
    rejects({ ...base, quote: softQuote(rsa), aikTpm: aikTpm.slice(1) }, "ak");
    const keyed: TPMT_PUBLIC = {
      type: TPM_ALG.KEYEDHASH,
      nameAlg: SHA256,
      objectAttributes: 0x00040072,
      authPolicy: new Uint8Array(0),
      parameters: { scheme: NULL_SCHEME },
      unique: new Uint8Array(32),
    };
    rejects({ ...base, quote: softQuote(rsa), akPublic: keyed }, "ak");
  });

  test("several banks: the digest covers all, pcrs is the hash_alg bank", () => {
    const selections = [pcrSelection(SHA1, [0, 1]), pcrSelection(SHA256, [0, 1, 2, 3, 4, 5, 10, 16])];
    const values = [[digest(1, 20), digest(2, 20)], Array.from({ length: 8 }, (_, i) => digest(0x10 + i))];
    const r = verifyQuote({ ...base, quote: softQuote(ecc, { selections, values }), akPublic: ecc.pub });
    assert.deepEqual([...r.pcrs.keys()], [0, 1, 2, 3, 4, 5, 10, 16]);
    assert.deepEqual([...r.banks.keys()], [SHA1, SHA256]);
  });

  test("another nonce: nonce", () => {
    rejects({ ...base, quote: softQuote(rsa), akPublic: rsa.pub, nonce: NONCE + "x" }, "nonce");
    rejects({ ...base, quote: softQuote(rsa, { nonce: "" }), akPublic: rsa.pub }, "nonce");
  });

  test("another AK: signature", () => {
    rejects({ ...base, quote: softQuote(rsa), akPublic: softKey("rsa").pub }, "signature");
    rejects({ ...base, quote: softQuote(ecc), akPublic: softKey("ecc").pub }, "signature");
  });

  test("a flipped PCR value in the blob: pcr-digest", () => {
    const blobValues = [[digest(0xaa), digest(0xbc)]];
    rejects({ ...base, quote: softQuote(rsa, { blobValues }), akPublic: rsa.pub }, "pcr-digest");
  });

  test("a blob selecting other PCRs, or no PCR of the hash_alg bank: pcr-selection", () => {
    rejects(
      { ...base, quote: softQuote(rsa, { blobSelections: [pcrSelection(SHA256, [10, 17])] }), akPublic: rsa.pub },
      "pcr-selection",
    );
    rejects(
      {
        ...base,
        quote: softQuote(rsa, {
          blobSelections: [pcrSelection(SHA1, [10, 16])],
          blobValues: [[digest(1, 20), digest(2, 20)]],
        }),
        akPublic: rsa.pub,
      },
      "pcr-selection",
    );
    const sha1Only = { selections: [pcrSelection(SHA1, [10])], values: [[digest(1, 20)]] };
    rejects({ ...base, quote: softQuote(rsa, sha1Only), akPublic: rsa.pub }, "pcr-selection");
  });

  test("Keylime's scheme and hash rules: RSAPSS or an RSA/EC mismatch is signature-scheme; another hash is hash-alg", () => {
    rejects({ ...base, quote: softQuote(rsa, { pss: true }), akPublic: rsa.pub }, "signature-scheme");
    rejects({ ...base, quote: softQuote(rsa), akPublic: ecc.pub }, "signature-scheme");
    rejects({ ...base, quote: softQuote(rsa, { hashAlg: SHA384 }), akPublic: rsa.pub }, "hash-alg");
    // hash_alg names both the signature's hash and the PCR bank (keylime tpm_util.py checkquote).
    const sha384 = { hashAlg: SHA384, selections: [pcrSelection(SHA384, [10])], values: [[digest(7, 48)]] };
    verifyQuote({ ...base, hashAlg: SHA384, quote: softQuote(rsa, sha384), akPublic: rsa.pub });
    rejects({ ...base, hashAlg: TPM_ALG.SM3_256, quote: softQuote(rsa), akPublic: rsa.pub }, "hash-alg");
  });

  test("an unsafe clock (safe = NO): clock-unsafe", () => {
    rejects({ ...base, quote: softQuote(rsa, { clock: { safe: false } }), akPublic: rsa.pub }, "clock-unsafe");
  });

  test("against the previous quote: reset-count, restart-count, clock", () => {
    const quote = softQuote(rsa); // clock 5000, resetCount 3, restartCount 1
    const ok = { ...base, quote, akPublic: rsa.pub };
    verifyQuote({ ...ok, previous: { clock: 4999n, resetCount: 3, restartCount: 1 } });
    verifyQuote({ ...ok, previous: { clock: 100n, resetCount: 2, restartCount: 7 } }); // a reset zeroes restartCount
    rejects({ ...ok, previous: { clock: 100n, resetCount: 4, restartCount: 0 } }, "reset-count");
    rejects({ ...ok, previous: { clock: 100n, resetCount: 3, restartCount: 2 } }, "restart-count");
    rejects({ ...ok, previous: { clock: 5000n, resetCount: 3, restartCount: 1 } }, "clock");
  });

  test("a truncated or garbled quote string: format, naming the part", () => {
    const quote = softQuote(rsa);
    const e = rejects({ ...base, quote: quote.slice(0, quote.lastIndexOf(":")), akPublic: rsa.pub }, "format");
    assert.ok(e.cause instanceof QuoteFormatError);
    assert.equal(e.cause.part, "quote");
    const g = rejects({ ...base, quote: quote.replace(":", ":!"), akPublic: rsa.pub }, "format");
    assert.equal((g.cause as QuoteFormatError).part, "TPMT_SIGNATURE");
    rejects({ ...base, quote: "", akPublic: rsa.pub }, "format");
  });

  test("a blob that does not parse: pcr-blob", () => {
    const [a, s] = softQuote(rsa).slice(1).split(":");
    rejects(
      { ...base, quote: `r${a}:${s}:${toBase64(new TextEncoder().encode("not a blob"))}`, akPublic: rsa.pub },
      "pcr-blob",
    );
  });

  test("attest header and structure: magic, type, parse", () => {
    const q = decodeQuote(softQuote(rsa));
    const withAttest = (attest: Uint8Array) => encodeQuote({ attest, signature: rsa.sign(attest), pcrBlob: q.pcrBlob });
    const magic = q.attest.slice();
    magic[1] = 0;
    rejects({ ...base, quote: withAttest(magic), akPublic: rsa.pub }, "magic");
    const type = q.attest.slice();
    type[5] = 0x17; // TPM_ST_ATTEST_CERTIFY
    rejects({ ...base, quote: withAttest(type), akPublic: rsa.pub }, "type");
    rejects({ ...base, quote: withAttest(q.attest.slice(0, -2)), akPublic: rsa.pub }, "parse");
  });

  test("the signature is checked before the content", () => {
    const q = decodeQuote(softQuote(rsa, { nonce: "other", blobValues: [[digest(1), digest(2)]] }));
    const other = softKey("rsa");
    const quote = encodeQuote({ attest: q.attest, signature: other.sign(q.attest), pcrBlob: q.pcrBlob });
    rejects({ ...base, quote, akPublic: rsa.pub }, "signature");
  });
});

// ---- captured swtpm quotes ------------------------------------------------------------------------

describe("verifyQuote: captured swtpm quotes", () => {
  test("the raw Quote vector, as a Keylime quote with the PCR_Read values, verifies with its AK", () => {
    const ak = capturedAk().outPublic;
    const q = capturedQuote();
    const quote = encodeQuote({
      attest: q.attest,
      signature: q.signature,
      pcrBlob: encodePcrBlob([pcrSelection(SHA256, [0, 1, 2, 3, 10])], [q.pcrValues]),
    });
    // qualifyingData 0011223344556677 is ASCII, so it can stand as a Keylime nonce string.
    const nonce = String.fromCharCode(...q.qualifyingData);
    const r = verifyQuote({ quote, akPublic: ak, nonce, hashAlg: SHA256 });
    assert.equal(toHex(r.pcrs.get(10)!).slice(0, 8), "ff16f4da");
    rejects({ quote, akPublic: ak, nonce: nonce.slice(1), hashAlg: SHA256 }, "nonce");
  });

  test("the swtpm-state tpm2-tools files: signature holds; their binary nonce is no Keylime nonce", async () => {
    const files = await readQuoteFiles(VECTOR_DIR + "swtpm-state/");
    const quote = encodeQuote({ attest: files.attest, signature: files.signature, pcrBlob: files.pcrs });
    const nonceHex = readFileSync(VECTOR_DIR + "swtpm-state/nonce.hex", "utf8").trim();
    // The signature check passes (it comes first); extraData holds bytes >= 0x80, which no nonce string encodes to.
    rejects({ quote, aikTpm: files.akPublicBytes, nonce: nonceHex, hashAlg: SHA256 }, "nonce");
    rejects({ quote, aikTpm: files.akPublicBytes, nonce: nonceHex, hashAlg: SHA1 }, "hash-alg");
    rejects({ quote, akPublic: softKey("rsa").pub, nonce: nonceHex, hashAlg: SHA256 }, "signature");
  });
});

// ---- live: tpm2-tools on a private swtpm ------------------------------------------------------------

const TOOLS = ["tpm2_createek", "tpm2_createak", "tpm2_quote", "tpm2_flushcontext", "tpm2_checkquote"];
const liveSkip = swtpmSkipReason() ?? requireTools(...TOOLS);

function run(file: string, args: string[], env: NodeJS.ProcessEnv, cwd: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { env, cwd, timeout: 60_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${file} ${args.join(" ")} failed: ${err.message}\n${stdout}\n${stderr}`));
      else resolve(String(stdout));
    });
  });
}

describe("verifyQuote: live tpm2-tools quotes on swtpm", { skip: liveSkip }, () => {
  let swtpm: SwtpmInstance;
  let dir: string;
  let env: NodeJS.ProcessEnv;
  const tool = (...args: string[]) => run(args[0]!, args.slice(1), env, dir);
  // Raw swtpm has 3 transient slots and no resource manager (spec/tpm.md §7.1).
  const flush = async () => {
    await tool("tpm2_flushcontext", "-t");
    await tool("tpm2_flushcontext", "-s");
  };
  const nonceHex = (n: string) => toHex(new TextEncoder().encode(n));

  before(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), "keylime-ts-quote-"));
    swtpm = await startSwtpm({ transport: "tcp" });
    env = { ...process.env, TPM2TOOLS_TCTI: swtpm.tctiForTools };
    await tool("tpm2_createek", "-c", "ek.ctx", "-G", "rsa", "-u", "ek.pub");
    await flush();
  });
  after(async () => {
    await swtpm?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** createak, then tpm2_quote into <name>/ with the file names of tpm2_tools_files.ts. */
  async function toolsQuote(name: string, alg: "rsa" | "ecc", pcrs: string, nonce: string): Promise<string> {
    const out = path.join(dir, name);
    mkdirSync(out, { recursive: true });
    const scheme = alg === "rsa" ? "rsassa" : "ecdsa";
    const ak = `${name}.ctx`;
    await tool(
      "tpm2_createak",
      "-C",
      "ek.ctx",
      "-c",
      ak,
      "-G",
      alg,
      "-g",
      "sha256",
      "-s",
      scheme,
      "-u",
      `${name}/ak.pub`,
    );
    await flush();
    const q = ["-c", ak, "-l", pcrs, "-q", nonceHex(nonce), "-g", "sha256"];
    await tool("tpm2_quote", ...q, "-m", `${name}/quote.msg`, "-s", `${name}/quote.sig`, "-o", `${name}/quote.pcrs`);
    await flush();
    return out;
  }

  /** What tpm2_checkquote thinks of a quote directory. */
  const checkquote = (qdir: string, nonce: string) =>
    tool(
      "tpm2_checkquote",
      "-u",
      path.join(qdir, "ak.pub"),
      "-m",
      path.join(qdir, "quote.msg"),
      "-s",
      path.join(qdir, "quote.sig"),
      "-f",
      path.join(qdir, "quote.pcrs"),
      "-g",
      "sha256",
      "-q",
      nonceHex(nonce),
    );

  test("RSA AK (RSASSA): the Keylime quote built from the tpm2-tools files verifies", async () => {
    const nonce = "k8Lq3vXz0aP9sTnW2mRc";
    const qdir = await toolsQuote("rsa", "rsa", "sha256:0,1,10,16", nonce);
    const files = await readQuoteFiles(qdir);
    // The fresh tpm2_quote -o file re-encodes byte for byte.
    assert.equal(toHex(encodePcrBlob(files.pcrFile.selections, files.pcrFile.values)), toHex(files.pcrs));
    const quote = encodeQuote({ attest: files.attest, signature: files.signature, pcrBlob: files.pcrs });
    const r = verifyQuote({ quote, aikTpm: files.akPublicBytes, nonce, hashAlg: SHA256 });
    assert.deepEqual([...r.pcrs.keys()], [0, 1, 10, 16]);
    assert.equal(r.clock.safe, true);
    rejects({ quote, aikTpm: files.akPublicBytes, nonce: nonce.toLowerCase(), hashAlg: SHA256 }, "nonce");

    // A second quote by the same AK is later: its clock passes against the first, not the other way round.
    const qdir2 = await toolsQuote("rsa2", "rsa", "sha256:0,1,10,16", nonce);
    const f2 = await readQuoteFiles(qdir2);
    const quote2 = encodeQuote({ attest: f2.attest, signature: f2.signature, pcrBlob: f2.pcrs });
    const r2 = verifyQuote({ quote: quote2, aikTpm: f2.akPublicBytes, nonce, hashAlg: SHA256, previous: r.clock });
    rejects({ quote, aikTpm: files.akPublicBytes, nonce, hashAlg: SHA256, previous: r2.clock }, "clock");
    // tpm2_createak made a new key for rsa2: the first quote does not verify with it.
    rejects({ quote, aikTpm: f2.akPublicBytes, nonce, hashAlg: SHA256 }, "signature");
  });

  test("ECC AK (ECDSA), two banks crossing a TPML_DIGEST group: verifies, and the blob re-encodes", async () => {
    const nonce = "Zz0123456789abcdefgh";
    const qdir = await toolsQuote("ecc", "ecc", "sha1:0,1+sha256:0,1,2,3,4,5,10,16", nonce);
    const files = await readQuoteFiles(qdir);
    assert.equal(files.akPublic.type, TPM_ALG.ECC);
    assert.equal(files.signature.sigAlg, TPM_ALG.ECDSA);
    assert.equal(files.pcrs.length, 136 + 2 * 532);
    assert.equal(toHex(encodePcrBlob(files.pcrFile.selections, files.pcrFile.values)), toHex(files.pcrs));
    const quote = encodeQuote({ attest: files.attest, signature: files.signature, pcrBlob: files.pcrs });
    const r = verifyQuote({ quote, aikTpm: files.akPublicBytes, nonce, hashAlg: SHA256 });
    assert.deepEqual([...r.pcrs.keys()], [0, 1, 2, 3, 4, 5, 10, 16]);
    assert.deepEqual([...r.banks.get(SHA1)!.keys()], [0, 1]);
    // A flipped PCR value in the blob.
    const blob = decodePcrBlob(files.pcrs);
    blob.values[1]![6]![0]! ^= 1;
    const flipped = encodeQuote({
      attest: files.attest,
      signature: files.signature,
      pcrBlob: encodePcrBlob(blob.selections, blob.values),
    });
    rejects({ quote: flipped, aikTpm: files.akPublicBytes, nonce, hashAlg: SHA256 }, "pcr-digest");
  });

  test("what we write, tpm2_checkquote accepts: tools quote rewritten by writeQuoteFiles, and a software-AK quote", async () => {
    const nonce = "w1r2i3t4e5";
    const toolsNonce = "k8Lq3vXz0aP9sTnW2mRc";
    const toolsDir = await toolsQuote("rsa3", "rsa", "sha256:0,10,16", toolsNonce);
    const files = await readQuoteFiles(toolsDir);
    const again = path.join(dir, "rewritten");
    const q = decodeQuote(encodeQuote({ attest: files.attest, signature: files.signature, pcrBlob: files.pcrs }));
    await writeQuoteFiles(again, {
      akPublic: files.akPublic,
      attest: q.attest,
      signature: q.signature,
      pcrs: q.pcrBlob,
    });
    for (const f of ["ak.pub", "quote.msg", "quote.sig", "quote.pcrs"]) {
      assert.equal(toHex(readFileSync(path.join(again, f))), toHex(readFileSync(path.join(toolsDir, f))), f);
    }
    await checkquote(again, toolsNonce);

    const soft = softKey("rsa");
    const sq = decodeQuote(softQuote(soft, { nonce }));
    const softDir = path.join(dir, "soft");
    await writeQuoteFiles(softDir, {
      akPublic: soft.pub,
      attest: sq.attest,
      signature: sq.signature,
      pcrs: sq.pcrBlob,
    });
    await checkquote(softDir, nonce);
    await assert.rejects(checkquote(softDir, nonce + "x"));
  });
});

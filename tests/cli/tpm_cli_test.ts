/**
 * `keylime-ts tpm ...` run as a process against a private swtpm, cross-checked with tpm2-tools on
 * the same TPM: the EK public key and certificate, and PCR values after extends.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createPublicKey } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { trimDer } from "../../src/tpm/ek.ts";
import { verifyQuote } from "../../src/protocol/quote.ts";
import { decode } from "../../src/tpm/marshal.ts";
import { TPM2B_PUBLIC } from "../../src/tpm/structures.ts";
import { X509Certificate } from "../../src/tpm/x509.ts";
import { requireTools, startSwtpm, type SwtpmInstance, swtpmSkipReason } from "../helpers/swtpm.ts";
import { fromBase64, toHex } from "../../src/util/encoding.ts";
import { type Run, runProcess } from "../helpers/run_process.ts";

const MAIN = fileURLToPath(new URL("../../src/main.ts", import.meta.url));
const skip = swtpmSkipReason() ??
  requireTools("tpm2_createek", "tpm2_pcrread", "tpm2_nvread", "tpm2_flushcontext", "tpm2_checkquote");

const run = runProcess;

/** The CLI as a user runs it: a separate process. */
const cli = (...args: string[]) => run(process.execPath, ["run", "--allow-all", MAIN, ...args]);

describe("keylime-ts tpm against swtpm, cross-checked with tpm2-tools", { skip }, () => {
  let swtpm: SwtpmInstance;
  let dir: string;
  let tools: (tool: string, ...args: string[]) => Promise<Run>;

  before(async () => {
    swtpm = await startSwtpm({ transport: "tcp" });
    dir = mkdtempSync(join(tmpdir(), "keylime-ts-cli-"));
    const env = { ...process.env, TPM2TOOLS_TCTI: swtpm.tctiForTools };
    tools = async (tool, ...args) => {
      const r = await run(tool, args, env);
      assert.equal(r.code, 0, `${tool} ${args.join(" ")} failed: ${r.stderr}`);
      return r;
    };
  });
  after(async () => {
    await swtpm?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test("tpm ek --alg rsa: the same key as tpm2_createek -G rsa and as the certificate in NV 0x01c00002", async () => {
    const ours = await cli("tpm", "ek", "--alg", "rsa", "--json", "--tpm", swtpm.uri);
    assert.equal(ours.code, 0, ours.stderr);
    const report = JSON.parse(ours.stdout);
    assert.equal(report.certificate.matchesEk, true);

    await tools("tpm2_createek", "-G", "rsa", "-u", join(dir, "ek.pem"), "-f", "pem", "-c", join(dir, "ek.ctx"));
    await tools("tpm2_flushcontext", "-t"); // raw swtpm has no resource manager
    await tools("tpm2_nvread", "0x01c00002", "-o", join(dir, "ekcert.der"));

    const theirPem = readFileSync(join(dir, "ek.pem"), "utf8");
    assert.equal(report.publicKeyPem, theirPem, "byte-identical PEM");
    const nvCert = new X509Certificate(trimDer(readFileSync(join(dir, "ekcert.der"))).slice().buffer);
    assert.equal(report.certificate.pem, nvCert.toString("pem") + "\n");
    const certKey = createPublicKey({ key: Buffer.from(nvCert.publicKey.rawData), format: "der", type: "spki" });
    assert.equal(certKey.export({ format: "pem", type: "spki" }), theirPem);
  });

  test("tpm ek --alg ecc: the same key as tpm2_createek -G ecc", async () => {
    const ours = await cli("tpm", "ek", "--alg", "ecc", "--json", "--tpm", swtpm.uri);
    assert.equal(ours.code, 0, ours.stderr);
    const report = JSON.parse(ours.stdout);
    assert.equal(report.certificate, null, "swtpm 0.7.1 provisions no P-256 EK certificate");
    await tools(
      "tpm2_createek",
      "-G",
      "ecc",
      "-u",
      join(dir, "ek-ecc.pem"),
      "-f",
      "pem",
      "-c",
      join(dir, "ek-ecc.ctx"),
    );
    await tools("tpm2_flushcontext", "-t");
    assert.equal(report.publicKeyPem, readFileSync(join(dir, "ek-ecc.pem"), "utf8"));
  });

  test("tpm pcrs prints what tpm2_pcrread prints, after extends by both", async () => {
    await tools("tpm2_pcrextend", `10:sha256=${"aa".repeat(32)},sha1=${"bb".repeat(20)}`);
    await tools("tpm2_pcrextend", `16:sha256=${"cc".repeat(32)}`);
    await tools("tpm2_pcrextend", `10:sha256=${"dd".repeat(32)}`);
    const sel = "sha1:0,1,10,16+sha256:0,1,10,16";
    const theirs = await tools("tpm2_pcrread", sel);
    const ours = await cli("tpm", "pcrs", "--bank", "sha1,sha256", "--pcrs", "0,1,10,16", "--tpm", swtpm.uri);
    assert.equal(ours.code, 0, ours.stderr);
    assert.equal(ours.stdout, theirs.stdout);
    assert.match(ours.stdout, /10: 0x(?!0{64})[0-9A-F]{64}/, "PCR 10 moved");

    const json = JSON.parse((await cli("tpm", "pcrs", "--pcrs", "10", "--json", "--tpm", swtpm.uri)).stdout);
    assert.match(theirs.stdout, new RegExp(`10: 0x${json.sha256["10"].toUpperCase()}`));
  });

  test("tpm pcrs reads all 24 PCRs of two banks (several TPM2_PCR_Read calls)", async () => {
    const r = await cli("tpm", "pcrs", "--bank", "sha1,sha256", "--json", "--tpm", swtpm.uri);
    const out = JSON.parse(r.stdout);
    assert.equal(Object.keys(out.sha1).length, 24);
    assert.equal(Object.keys(out.sha256).length, 24);
  });

  test("tpm info and tpm random", async () => {
    const info = JSON.parse((await cli("tpm", "info", "--json", "--tpm", swtpm.uri)).stdout);
    assert.equal(info.manufacturer, "IBM");
    assert.deepEqual(info.vendorStrings.slice(0, 2), ["SW", "TPM"]);
    assert.ok(info.persistentHandles.includes(0x81010001));
    const rnd = await cli("tpm", "random", "100", "--tpm", swtpm.uri);
    assert.match(rnd.stdout, /^[0-9a-f]{200}\n$/);
  });

  test("TCTI from the environment is honoured", async () => {
    const r = await run(process.execPath, ["run", "--allow-all", MAIN, "tpm", "random", "8", "--json"], {
      ...process.env,
      TCTI: swtpm.uri,
    });
    assert.equal(r.code, 0, r.stderr);
    assert.match(JSON.parse(r.stdout).bytes, /^[0-9a-f]{16}$/);
  });

  test("errors name what failed", async () => {
    const bad = await cli("tpm", "info", "--tpm", "swtpm:host=127.0.0.1,port=notaport");
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /port=notaport.*ERR_TPM_URI/);
    const badPcr = await cli("tpm", "pcrs", "--pcrs", "0,99", "--tpm", swtpm.uri);
    assert.notEqual(badPcr.code, 0);
    assert.match(badPcr.stderr, /0-23/);
    // A request that cannot work is a usage error, not a response code the TPM never sent.
    const badScheme = await cli("tpm", "ak", "--key", "ecc", "--sign", "rsassa", "--tpm", swtpm.uri);
    assert.equal(badScheme.code, 1);
    assert.match(badScheme.stderr, /rsassa is not an ECC signing scheme.*\[ERR_TPM_USAGE\]/);
    assert.doesNotMatch(badScheme.stderr, /ERR_TPM_RC/);
  });

  test("tpm ak creates the AK once, saves it 0600, and loads the same AK again", async () => {
    const file = join(dir, "ak.json");
    const first = JSON.parse((await cli("tpm", "ak", "--ak-file", file, "--json", "--tpm", swtpm.uri)).stdout);
    const again = JSON.parse((await cli("tpm", "ak", "--ak-file", file, "--json", "--tpm", swtpm.uri)).stdout);
    assert.equal(first.created, true);
    assert.equal(again.created, false);
    assert.equal(again.name, first.name);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    const aik = decode(TPM2B_PUBLIC, fromBase64(first.aikTpm));
    assert.equal(aik.objectAttributes, 0x00050072, "Keylime's AK attributes");
    writeFileSync(join(dir, "bad.json"), '{"ak_hash_alg": "sha256"}');
    const bad = await cli("tpm", "ak", "--ak-file", join(dir, "bad.json"), "--tpm", swtpm.uri);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /bad\.json: "ak_hash_alg" must be one of Sha1, Sha256.*ERR_AGENT_STATE/);
  });

  test("tpm quote: the quote string verifies, and --out-dir files pass tpm2_checkquote", async () => {
    const file = join(dir, "ak-q.json");
    const out = join(dir, "quote");
    const nonce = "1234567890abcdefghij";
    for (const key of ["rsa", "ecc"]) {
      const r = await cli(
        "tpm",
        "quote",
        "--key",
        key,
        "--ak-file",
        `${file}.${key}`,
        "--nonce",
        nonce,
        "--pcrs",
        "0,1,10,16",
        "--out-dir",
        `${out}.${key}`,
        "--json",
        "--tpm",
        swtpm.uri,
      );
      assert.equal(r.code, 0, r.stderr);
      const q = JSON.parse(r.stdout);
      const verified = verifyQuote({
        quote: q.quote,
        aikTpm: fromBase64(q.aikTpm),
        nonce,
        hashAlg: 0x000b,
      });
      assert.deepEqual([...verified.pcrs.keys()], [0, 1, 10, 16]);
      await tools(
        "tpm2_checkquote",
        "-u",
        join(`${out}.${key}`, "ak.pub"),
        "-m",
        join(`${out}.${key}`, "quote.msg"),
        "-s",
        join(`${out}.${key}`, "quote.sig"),
        "-f",
        join(`${out}.${key}`, "quote.pcrs"),
        "-q",
        toHex(new TextEncoder().encode(nonce)),
      );
    }
  });

  test("every subcommand has --help", async () => {
    for (const sub of ["info", "pcrs", "ek", "random", "startup", "ak", "quote"]) {
      const r = await cli("tpm", sub, "--help");
      assert.equal(r.code, 0);
      assert.match(r.stdout, /--tpm <uri>/);
      assert.match(r.stdout, /--json/);
    }
  });
});

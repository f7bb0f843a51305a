/**
 * tpm2-tools 5.4 drive the embedded simulator through the Keylime flow over the swtpm protocol
 * (TPM2TOOLS_TCTI=swtpm:host=127.0.0.1,port=P), one tool process per step as an operator or a CI
 * script would (spec/tpm.md §9.1): getrandom, createek (RSA and ECC) and readpublic, the EK
 * certificate from NV checked by openssl against the simulator's CA, createak, makecredential +
 * a saved policy session + activatecredential, pcrextend/pcrread, quote + checkquote, certify, and
 * TPM2_Clear. Every .ctx file crosses process boundaries, so ContextSave/ContextLoad of objects and
 * sessions is exercised throughout. Our own client talks to the same engine in process to compare.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createHash, createPublicKey, X509Certificate } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { checkCertifyAttest, checkQuoteAttest } from "../../src/tpm/attest.ts";
import { Tpm } from "../../src/tpm/client.ts";
import { Startup } from "../../src/tpm/commands.ts";
import { TPM_ALG, TPM_ECC_CURVE, TPM_SU } from "../../src/tpm/constants.ts";
import { objectName, publicKeyOf, sameKey } from "../../src/tpm/crypto.ts";
import { createEk, releaseEk } from "../../src/tpm/ek.ts";
import { type EkAlg, POLICY_A_SHA256 } from "../../src/tpm/templates.ts";
import { decode } from "../../src/tpm/marshal.ts";
import { pcrRead, pcrSelection } from "../../src/tpm/pcrs.ts";
import {
  asymSchemeDetails,
  publicAsym,
  publicEcc,
  TPMA_OBJECT,
  type TPMT_PUBLIC,
  TPMT_SIGNATURE,
} from "../../src/tpm/structures.ts";
import { pcrFileValues } from "../../src/tpm/pcr_file.ts";
import {
  decodeAttestFile,
  decodePcrsFile,
  decodePublicFile,
  decodeSignatureFile,
} from "../../src/tpm/tpm2_tools_files.ts";
import { caCertificatePem, openSimulator } from "../../simulator/index.ts";
import { InProcessTransport } from "../../simulator/in_process.ts";
import { startListening } from "../../simulator/listen_uri.ts";
import type { SimTpm } from "../../simulator/sim_tpm.ts";
import type { TpmServer } from "../../simulator/socket_server.ts";
import { requireTools } from "../helpers/swtpm.ts";
import { toHex } from "../../src/util/encoding.ts";

const TOOLS = [
  "tpm2",
  "tpm2_getrandom",
  "tpm2_createek",
  "tpm2_readpublic",
  "tpm2_nvread",
  "tpm2_createak",
  "tpm2_makecredential",
  "tpm2_startauthsession",
  "tpm2_policysecret",
  "tpm2_activatecredential",
  "tpm2_flushcontext",
  "tpm2_pcrextend",
  "tpm2_pcrread",
  "tpm2_quote",
  "tpm2_checkquote",
  "tpm2_certify",
  "tpm2_clear",
  "tpm2_createprimary",
  "tpm2_changeauth",
  "openssl",
];
const skip = requireTools(...TOOLS);

const TOOL_TIMEOUT_MS = 60_000;
/** fixedTPM | fixedParent | sensitiveDataOrigin | userWithAuth | restricted | sign (spec/tpm.md §6). */
const AK_ATTRIBUTES = 0x00050072;
const hex = (b: Uint8Array) => toHex(b);
const bytes = (b: Buffer) => new Uint8Array(b);

interface ToolResult {
  stdout: string;
  stderr: string;
  code: number;
}

/** The PCR lines of `tpm2_pcrread` / `tpm2_quote` output: index -> lower-case hex. */
function pcrLines(stdout: string): Map<number, string> {
  const out = new Map<number, string>();
  for (const m of stdout.matchAll(/^\s*(\d+)\s*:\s*0x([0-9A-Fa-f]+)\s*$/gm)) {
    out.set(Number(m[1]), m[2]!.toLowerCase());
  }
  return out;
}

describe("tpm2-tools 5.4 against the simulator over the swtpm protocol (Keylime flow)", { skip }, () => {
  let engine: SimTpm;
  let server: TpmServer;
  let tpm: Tpm;
  let dir: string;
  const warnings: string[] = [];
  const f = (name: string) => join(dir, name);

  /** Run a tool against the simulator; never rejects (the caller asserts on code and stderr). */
  function run(tool: string, args: readonly string[]): Promise<ToolResult> {
    const env = { ...process.env, TPM2TOOLS_TCTI: server.uri };
    return new Promise((resolve) => {
      execFile(tool, args, { env, cwd: dir, timeout: TOOL_TIMEOUT_MS, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
        const e = err as (Error & { code?: unknown; killed?: boolean }) | null;
        const code = e ? (typeof e.code === "number" ? e.code : -1) : 0;
        const extra = e?.killed ? `\n(killed after ${TOOL_TIMEOUT_MS} ms)` : "";
        resolve({ stdout: String(stdout), stderr: String(stderr) + extra, code });
      });
    });
  }

  /** Run a tool that must succeed; its stderr (and the server's warnings) go into the failure message. */
  async function ok(tool: string, ...args: string[]): Promise<ToolResult> {
    const r = await run(tool, args);
    assert.equal(
      r.code,
      0,
      `${tool} ${args.join(" ")} exited ${r.code}\nstderr:\n${r.stderr}\nstdout:\n${r.stdout}` +
        (warnings.length ? `\nserver warnings:\n${warnings.join("\n")}` : ""),
    );
    return r;
  }

  /** Tools leave what they load from .ctx files loaded; 16 slots last a few steps, not the whole flow. */
  const flushTransients = () => ok("tpm2_flushcontext", "-t");

  /** The EK our own client derives, for comparison with what the tools got. */
  async function ourEk(alg: EkAlg): Promise<TPMT_PUBLIC> {
    const ek = await createEk(tpm, alg);
    await releaseEk(tpm, ek);
    return ek.public;
  }

  before(async () => {
    ({ engine } = await openSimulator());
    tpm = new Tpm(new InProcessTransport(engine));
    // tpm2-tools never send TPM2_Startup themselves.
    await tpm.execute(Startup, { startupType: TPM_SU.CLEAR });
    server = await startListening(engine, "swtpm:host=127.0.0.1,port=0", { warn: (m) => warnings.push(m) });
    dir = mkdtempSync(join(tmpdir(), "keylime-ts-sim-tools-"));
    writeFileSync(f("ca.pem"), caCertificatePem(engine.persistent));
  });

  after(async () => {
    await server?.close();
    await tpm?.close();
    await engine?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test("tpm2_getrandom 16 --hex", async () => {
    const { stdout } = await ok("tpm2_getrandom", "16", "--hex");
    assert.match(stdout.trim(), /^[0-9a-f]{32}$/);
  });

  for (const alg of ["rsa", "ecc"] as const) {
    test(`tpm2_createek -G ${alg} -f pem: the key of our createEk; tpm2_readpublic of it`, async () => {
      await ok("tpm2_createek", "-G", alg, "-c", f(`ek_${alg}.ctx`), "-u", f(`ek_${alg}.pem`), "-f", "pem");
      const expected = await ourEk(alg);
      const pem = readFileSync(f(`ek_${alg}.pem`), "utf8");
      assert.match(pem, /^-----BEGIN PUBLIC KEY-----/);
      assert.ok(sameKey(createPublicKey(pem), publicKeyOf(expected)), `${alg} EK differs:\n${pem}`);

      // ReadPublic through a ContextLoad of the saved EK, in a new process.
      const { stdout } = await ok(
        "tpm2_readpublic",
        "-c",
        f(`ek_${alg}.ctx`),
        "-o",
        f(`ek_${alg}.tss`),
        "-n",
        f(`ek_${alg}.name`),
      );
      const pub = decodePublicFile(bytes(readFileSync(f(`ek_${alg}.tss`))), `ek_${alg}.tss`);
      assert.deepEqual(pub, expected);
      assert.equal(hex(bytes(readFileSync(f(`ek_${alg}.name`)))), hex(objectName(expected)));
      assert.match(stdout, new RegExp(`name: ${hex(objectName(expected))}`));
      await flushTransients();
    });
  }

  for (const [alg, index] of [["rsa", "0x01c00002"], ["ecc", "0x01c0000a"]] as const) {
    test(`tpm2_nvread ${index}: the EK certificate verifies against the simulator CA and holds the EK`, async () => {
      await ok("tpm2_nvread", index, "-o", f(`cert_${alg}.der`));
      const cert = new X509Certificate(readFileSync(f(`cert_${alg}.der`)));
      writeFileSync(f(`cert_${alg}.pem`), cert.toString());
      const v = await ok("openssl", "verify", "-CAfile", f("ca.pem"), f(`cert_${alg}.pem`));
      assert.match(v.stdout, /: OK\s*$/, v.stdout + v.stderr);
      const ekPem = readFileSync(f(`ek_${alg}.pem`), "utf8");
      assert.ok(sameKey(cert.publicKey, createPublicKey(ekPem)), `the ${alg} certificate's key is not the EK`);
    });
  }

  const AKS = [
    { alg: "rsa", scheme: "rsassa", type: TPM_ALG.RSA, sigAlg: TPM_ALG.RSASSA },
    { alg: "ecc", scheme: "ecdsa", type: TPM_ALG.ECC, sigAlg: TPM_ALG.ECDSA },
  ] as const;

  for (const ak of AKS) {
    test(`tpm2_createak -G ${ak.alg} -g sha256 -s ${ak.scheme} under the RSA EK`, async () => {
      await ok(
        "tpm2_createak",
        "-C",
        f("ek_rsa.ctx"),
        "-c",
        f(`ak_${ak.alg}.ctx`),
        "-G",
        ak.alg,
        "-g",
        "sha256",
        "-s",
        ak.scheme,
        "-u",
        f(`ak_${ak.alg}.pub`),
        "-n",
        f(`ak_${ak.alg}.name`),
      );
      const pub = decodePublicFile(bytes(readFileSync(f(`ak_${ak.alg}.pub`))));
      assert.equal(pub.type, ak.type);
      assert.equal(pub.nameAlg, TPM_ALG.SHA256);
      assert.equal(pub.objectAttributes, AK_ATTRIBUTES, `attributes 0x${pub.objectAttributes.toString(16)}`);
      assert.ok(TPMA_OBJECT.has(pub.objectAttributes, "restricted") && TPMA_OBJECT.has(pub.objectAttributes, "sign"));
      const { scheme } = publicAsym(pub);
      assert.equal(scheme.scheme, ak.sigAlg);
      assert.equal(asymSchemeDetails(scheme).hashAlg, TPM_ALG.SHA256);
      if (ak.alg === "ecc") assert.equal(publicEcc(pub).curveID, TPM_ECC_CURVE.NIST_P256);
      assert.equal(hex(bytes(readFileSync(f(`ak_${ak.alg}.name`)))), hex(objectName(pub)));
      await flushTransients();
    });
  }

  test("tpm2_makecredential -T none + policy session (PolicySecret) + tpm2_activatecredential", async () => {
    // At most a SHA-256 digest: ActivateCredential returns certInfo as a TPM2B_DIGEST.
    const secret = "keylime-ts challenge: 0123456789";
    writeFileSync(f("secret"), secret);
    const akName = hex(bytes(readFileSync(f("ak_rsa.name"))));
    // Offline: the EK public (TSS format from tpm2_readpublic) and the AK Name are all it needs.
    await ok(
      "tpm2_makecredential",
      "-T",
      "none",
      "-u",
      f("ek_rsa.tss"),
      "-s",
      f("secret"),
      "-n",
      akName,
      "-o",
      f("blob"),
    );

    await ok("tpm2_startauthsession", "--policy-session", "-S", f("s.ctx"));
    const ps = await ok("tpm2_policysecret", "-S", f("s.ctx"), "-c", "e");
    assert.equal(ps.stdout.trim(), hex(POLICY_A_SHA256), "PolicySecret(TPM_RH_ENDORSEMENT) gives PolicyA");
    await ok(
      "tpm2_activatecredential",
      "-c",
      f("ak_rsa.ctx"),
      "-C",
      f("ek_rsa.ctx"),
      "-i",
      f("blob"),
      "-o",
      f("out"),
      "-P",
      `session:${f("s.ctx")}`,
    );
    assert.equal(readFileSync(f("out"), "utf8"), secret);
    await ok("tpm2_flushcontext", f("s.ctx"));
    await flushTransients();
  });

  test("the same with the ECC EK: makecredential -G ecc from the PEM, activate for the ECC AK", async () => {
    await ok(
      "tpm2_createak",
      "-C",
      f("ek_ecc.ctx"),
      "-c",
      f("akx.ctx"),
      "-G",
      "ecc",
      "-g",
      "sha256",
      "-s",
      "ecdsa",
      "-u",
      f("akx.pub"),
      "-n",
      f("akx.name"),
    );
    const akName = hex(bytes(readFileSync(f("akx.name"))));
    await ok(
      "tpm2_makecredential",
      "-T",
      "none",
      "-G",
      "ecc",
      "-u",
      f("ek_ecc.pem"),
      "-s",
      f("secret"),
      "-n",
      akName,
      "-o",
      f("blobx"),
    );
    await ok("tpm2_startauthsession", "--policy-session", "-S", f("sx.ctx"));
    await ok("tpm2_policysecret", "-S", f("sx.ctx"), "-c", "e");
    await ok(
      "tpm2_activatecredential",
      "-c",
      f("akx.ctx"),
      "-C",
      f("ek_ecc.ctx"),
      "-i",
      f("blobx"),
      "-o",
      f("outx"),
      "-P",
      `session:${f("sx.ctx")}`,
    );
    assert.equal(readFileSync(f("outx"), "utf8"), readFileSync(f("secret"), "utf8"));
    await ok("tpm2_flushcontext", f("sx.ctx"));
    await flushTransients();
  });

  test("tpm2_pcrextend 10:sha256=<hex>, tpm2_pcrread sha256:0,10: the software extend math", async () => {
    const sel = [pcrSelection(TPM_ALG.SHA256, [10])];
    const before = (await pcrRead(tpm, sel)).values.get(TPM_ALG.SHA256)!.get(10)!;
    const digest = createHash("sha256").update("keylime-ts measured boot event").digest();
    await ok("tpm2_pcrextend", `10:sha256=${digest.toString("hex")}`);
    const expected = createHash("sha256").update(before).update(digest).digest("hex");

    const { stdout } = await ok("tpm2_pcrread", "sha256:0,10");
    const pcrs = pcrLines(stdout);
    assert.equal(pcrs.get(0), "00".repeat(32), stdout);
    assert.equal(pcrs.get(10), expected, stdout);
  });

  for (const ak of AKS) {
    test(`tpm2_quote -l sha256:0,10,16 with the ${ak.alg.toUpperCase()} AK, tpm2_checkquote`, async () => {
      const nonce = ak.alg === "rsa" ? "5eed0f1ce0ffee01" : "5eed0f1ce0ffee02";
      const [m, s, p] = [f(`q_${ak.alg}.msg`), f(`q_${ak.alg}.sig`), f(`q_${ak.alg}.pcrs`)];
      await ok(
        "tpm2_quote",
        "-c",
        f(`ak_${ak.alg}.ctx`),
        "-l",
        "sha256:0,10,16",
        "-q",
        nonce,
        "-m",
        m,
        "-s",
        s,
        "-o",
        p,
        "-g",
        "sha256",
      );
      const chk = await ok("tpm2_checkquote", "-u", f(`ak_${ak.alg}.pub`), "-m", m, "-s", s, "-f", p, "-q", nonce);
      assert.match(chk.stdout, /sig:/);

      // Our verifier agrees, and a wrong nonce is refused by tpm2_checkquote.
      const akPub = decodePublicFile(bytes(readFileSync(f(`ak_${ak.alg}.pub`))));
      const attest = bytes(readFileSync(m));
      const values = pcrFileValues(decodePcrsFile(bytes(readFileSync(p)))).get(TPM_ALG.SHA256)!;
      const quoted = checkQuoteAttest({
        attest,
        signature: decodeSignatureFile(bytes(readFileSync(s))),
        signer: akPub,
        qualifyingData: bytes(Buffer.from(nonce, "hex")),
        pcrValues: [0, 10, 16].map((i) => values.get(i)!),
      });
      assert.equal(hex(quoted.extraData), nonce);
      const wrong = await run("tpm2_checkquote", [
        "-u",
        f(`ak_${ak.alg}.pub`),
        "-m",
        m,
        "-s",
        s,
        "-f",
        p,
        "-q",
        "00ff",
      ]);
      assert.notEqual(wrong.code, 0, "tpm2_checkquote accepted a wrong nonce");
      await flushTransients();
    });
  }

  test("tpm2_certify -c ak.ctx -C ak.ctx: checkCertifyAttest accepts it", async () => {
    await ok(
      "tpm2_certify",
      "-c",
      f("ak_rsa.ctx"),
      "-C",
      f("ak_rsa.ctx"),
      "-g",
      "sha256",
      "-o",
      f("a"),
      "-s",
      f("sig"),
    );
    const akPub = decodePublicFile(bytes(readFileSync(f("ak_rsa.pub"))));
    const attest = bytes(readFileSync(f("a")));
    const checked = checkCertifyAttest({
      attest,
      signature: decode(TPMT_SIGNATURE, bytes(readFileSync(f("sig")))),
      signer: akPub,
      // tpm2_certify 5.4 has no qualifyingData option and sends bytes of its own choosing.
      qualifyingData: decodeAttestFile(attest).extraData,
      certifiedName: objectName(akPub),
    });
    assert.equal(hex(checked.name), hex(bytes(readFileSync(f("ak_rsa.name")))));
    await flushTransients();
  });

  test("tpm2_changeauth -c o (an HMAC session, the response keyed with the new authValue) and back", async () => {
    // A session bound to the owner while its authValue is empty: the session key is still KDFa'd.
    await ok("tpm2_startauthsession", "--hmac-session", "--bind-context", "o", "-S", f("b1.ctx"));
    await ok("tpm2_createprimary", "-C", "o", "-P", `session:${f("b1.ctx")}`, "-G", "ecc", "-c", f("p1.ctx"));
    await ok("tpm2_flushcontext", f("b1.ctx"));

    // Bound, then the owner's authValue changes: the binding ends and the new authValue counts.
    await ok("tpm2_startauthsession", "--hmac-session", "--bind-context", "o", "-S", f("b2.ctx"));
    await ok("tpm2_changeauth", "-c", "o", "owner-secret");
    await ok(
      "tpm2_createprimary",
      "-C",
      "o",
      "-P",
      `session:${f("b2.ctx")}+owner-secret`,
      "-G",
      "ecc",
      "-c",
      f("p2.ctx"),
    );
    await ok("tpm2_flushcontext", f("b2.ctx"));
    await ok("tpm2_createprimary", "-C", "o", "-P", "owner-secret", "-G", "ecc", "-c", f("p3.ctx"));
    const wrong = await run("tpm2_createprimary", ["-C", "o", "-G", "ecc", "-c", f("p4.ctx")]);
    assert.notEqual(wrong.code, 0, "the owner's old (empty) authValue still works");
    await ok("tpm2_changeauth", "-c", "o", "-p", "owner-secret");
    await flushTransients();
  });

  test("tpm2 clear and tpm2_clear: the EK stays (EPS kept), an owner primary changes (SPS new)", async () => {
    await ok("tpm2_createprimary", "-C", "o", "-c", f("o1.ctx"));
    await ok("tpm2_readpublic", "-c", f("o1.ctx"), "-o", f("o1.pub"));
    await flushTransients();

    await ok("tpm2", "clear");
    // Saved between the two: resetCount is zero already, only the new owner proof tells them apart.
    await ok("tpm2_createprimary", "-C", "o", "-G", "ecc", "-c", f("between.ctx"));
    await flushTransients();
    await ok("tpm2_clear");

    // The cleared hierarchies' proofs changed: their saved contexts no longer load.
    for (const ctx of ["ek_rsa.ctx", "between.ctx"]) {
      const stale = await run("tpm2_readpublic", ["-c", f(ctx)]);
      assert.notEqual(stale.code, 0, `${ctx}, saved before TPM2_Clear, still loads`);
      assert.match(stale.stderr, /0x1DF|integrity/i, stale.stderr);
    }

    await ok("tpm2_createek", "-G", "rsa", "-c", f("ek2.ctx"), "-u", f("ek2.pem"), "-f", "pem");
    assert.ok(
      sameKey(
        createPublicKey(readFileSync(f("ek2.pem"), "utf8")),
        createPublicKey(readFileSync(f("ek_rsa.pem"), "utf8")),
      ),
      "the RSA EK changed across TPM2_Clear",
    );
    await ok("tpm2_createprimary", "-C", "o", "-c", f("o2.ctx"));
    await ok("tpm2_readpublic", "-c", f("o2.ctx"), "-o", f("o2.pub"));
    const [o1, o2] = [f("o1.pub"), f("o2.pub")].map((p) => decodePublicFile(bytes(readFileSync(p))));
    assert.notEqual(hex(objectName(o1!)), hex(objectName(o2!)), "the owner primary survived TPM2_Clear");
    await flushTransients();
  });

  test("the server saw no protocol errors", () => {
    assert.deepEqual(warnings, []);
  });
});

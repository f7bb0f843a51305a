/**
 * The attestation primitives end to end against swtpm, for RSA and ECC EKs and AKs: create the EK
 * and AK, activate a credential made in software (the registrar's side), quote and verify the quote
 * string in software, certify a software key (RSA-2048 and EC P-256) and check the attestation.
 * Cross-checks with tpm2-tools both ways, and the negative cases with their precise errors.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { authTag, decodeKeylimeBlob, makeKeylimeChallenge } from "../../src/protocol/credential.ts";
import { encodePcrBlob } from "../../src/protocol/pcr_blob.ts";
import { encodeQuote, verifyQuote } from "../../src/protocol/quote.ts";
import { activateCredential } from "../../src/tpm/activate.ts";
import { createAk, loadAk } from "../../src/tpm/ak.ts";
import { type AkAlgorithms } from "../../src/tpm/templates.ts";
import { checkCertifyAttest } from "../../src/tpm/attest.ts";
import { certify, certifySoftwareKey } from "../../src/tpm/certify.ts";
import { Tpm } from "../../src/tpm/client.ts";
import { PCR_Extend, Quote, Shutdown, Startup } from "../../src/tpm/commands.ts";
import { encodeCommandFrame, encodeParameters } from "../../src/tpm/frame.ts";
import { TPM_ALG, TPM_ECC_CURVE, TPM_RC, TPM_SU } from "../../src/tpm/constants.ts";
import { makeCredential } from "../../src/tpm/credential.ts";
import { objectName } from "../../src/tpm/crypto.ts";
import { createEk, type Ek, ekPolicySession, releaseEk } from "../../src/tpm/ek.ts";
import { type EkAlg } from "../../src/tpm/templates.ts";
import { TpmResponseError } from "../../src/tpm/errors.ts";
import { decode, encode } from "../../src/tpm/marshal.ts";
import { flush, type LoadedKey, readPublic } from "../../src/tpm/objects.ts";
import { quote } from "../../src/tpm/quote.ts";
import { PasswordSession } from "../../src/tpm/sessions.ts";
import { TPM2B_PUBLIC, TPMS_ATTEST, TPMT_SIGNATURE } from "../../src/tpm/structures.ts";
import { decodePublicFile, writeQuoteFiles } from "../../src/tpm/tpm2_tools_files.ts";
import { SwtpmTransport } from "../../src/tpm/transport/swtpm.ts";
import { requireTools, startSwtpm, type SwtpmInstance, swtpmSkipReason } from "../helpers/swtpm.ts";
import { fromBase64, toBase64, toHex } from "../../src/util/encoding.ts";

const skip = swtpmSkipReason() ??
  requireTools("tpm2_makecredential", "tpm2_checkquote", "tpm2_createek", "tpm2_createak", "tpm2_certify");
const enc = new TextEncoder();
const UUID = "d432fbb3-d2f1-4a97-9ef7-75bd81c00000";

const AKS: Record<string, AkAlgorithms> = {
  "RSA AK (RSASSA)": { key: { type: "rsa", bits: 2048 }, signAlg: TPM_ALG.RSASSA },
  "ECC AK (ECDSA)": { key: { type: "ecc", curve: TPM_ECC_CURVE.NIST_P256 }, signAlg: TPM_ALG.ECDSA },
};

function run(file: string, args: string[], env: NodeJS.ProcessEnv): Promise<string> {
  return new Promise((resolve, reject) =>
    execFile(
      file,
      args,
      { env, timeout: 60_000 },
      (err, stdout, stderr) =>
        err ? reject(new Error(`${file} ${args.join(" ")}: ${stderr || err.message}`)) : resolve(String(stdout)),
    )
  );
}

describe("Keylime attestation primitives against swtpm", { skip }, () => {
  let swtpm: SwtpmInstance;
  let transport: SwtpmTransport;
  let tpm: Tpm;
  let dir: string;
  let tools: (tool: string, ...args: string[]) => Promise<string>;

  before(async () => {
    swtpm = await startSwtpm({ transport: "tcp" });
    transport = new SwtpmTransport({ host: "127.0.0.1", port: swtpm.port! });
    tpm = new Tpm(transport);
    dir = mkdtempSync(join(tmpdir(), "keylime-ts-flow-"));
    const env = { ...process.env, TPM2TOOLS_TCTI: swtpm.tctiForTools };
    // swtpm serves one client at a time: let go of our connection while a tool runs.
    tools = async (tool, ...args) => {
      await transport.close();
      return await run(tool, args, env);
    };
  });
  after(async () => {
    await tpm?.close();
    await swtpm?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  for (const ekAlg of ["rsa", "ecc"] as const satisfies readonly EkAlg[]) {
    for (const [akLabel, algs] of Object.entries(AKS)) {
      test(`${ekAlg.toUpperCase()} EK, ${akLabel}: create, activate, quote, certify`, async () => {
        const ek = await createEk(tpm, ekAlg);
        const made = await createAk(tpm, ek, algs);
        const ak = await loadAk(tpm, ek, made);
        try {
          // The registrar's side: a challenge bound to the AK Name with the EK, as a Keylime blob.
          const aikTpm = encode(TPM2B_PUBLIC, ak.public);
          const challenge = await makeKeylimeChallenge(encode(TPM2B_PUBLIC, ek.public), aikTpm);
          const { credentialBlob, secret } = decodeKeylimeBlob(fromBase64(challenge.blob));
          const certInfo = await activateCredential(tpm, ak, ek, credentialBlob, secret);
          assert.equal(toBase64(certInfo), challenge.key, "the challenge comes back");
          assert.match(authTag(certInfo, UUID), /^[0-9a-f]{96}$/);

          // Quote: the Keylime quote string passes the software verifier.
          const nonce = "a3f1c0ffee";
          const q = await quote(tpm, ak, { nonce: enc.encode(nonce), pcrs: [0, 1, 10, 16], hashAlg: TPM_ALG.SHA256 });
          const pcrBlob = encodePcrBlob([q.selection], [[...q.pcrs.values()]]);
          const quoteString = encodeQuote({ attest: q.attest, signature: q.signature, pcrBlob });
          const verified = verifyQuote({ quote: quoteString, aikTpm, nonce, hashAlg: TPM_ALG.SHA256 });
          assert.deepEqual([...verified.pcrs.keys()], [0, 1, 10, 16]);
          assert.deepEqual(verified.pcrs.get(10), q.pcrs.get(10));

          // Certify software keys, RSA-2048 and EC P-256, loaded with LoadExternal.
          for (
            const key of [
              generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey,
              generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey,
            ]
          ) {
            const qualifyingData = new Uint8Array(32).fill(0xc3);
            const c = await certifySoftwareKey(tpm, key, ak, qualifyingData);
            const checked = checkCertifyAttest({
              attest: c.attest,
              signature: c.signature,
              signer: ak.public,
              qualifyingData,
              certifiedName: objectName(c.public),
            });
            assert.deepEqual(checked.name, c.name);
          }
        } finally {
          await flush(tpm, ak.handle);
          await releaseEk(tpm, ek);
        }
      });
    }
  }

  test("quote re-quotes when a PCR moves between TPM2_Quote and TPM2_PCR_Read", async () => {
    const ek = await createEk(tpm, "ecc");
    const ak = await loadAk(tpm, ek, await createAk(tpm, ek, AKS["ECC AK (ECDSA)"]!));
    // Right after the first Quote response, extend PCR 10 behind the client's back.
    const extend = encodeCommandFrame({
      code: PCR_Extend.code,
      handles: [10],
      auths: [new PasswordSession().authorize()],
      parameters: encodeParameters(PCR_Extend, {
        digests: [{ hashAlg: TPM_ALG.SHA256, digest: new Uint8Array(32).fill(0x42) }],
      }),
    });
    let quotes = 0;
    const send = transport.send.bind(transport);
    transport.send = async (command: Uint8Array) => {
      const response = await send(command);
      if (new DataView(command.buffer, command.byteOffset).getUint32(6) === Quote.code && quotes++ === 0) {
        await send(extend);
      }
      return response;
    };
    try {
      const nonce = "race";
      const q = await quote(tpm, ak, { nonce: enc.encode(nonce), pcrs: [10, 16], hashAlg: TPM_ALG.SHA256 });
      assert.equal(quotes, 2, "the first quote was thrown away");
      const pcrBlob = encodePcrBlob([q.selection], [[...q.pcrs.values()]]);
      const quoteString = encodeQuote({ attest: q.attest, signature: q.signature, pcrBlob });
      verifyQuote({ quote: quoteString, akPublic: ak.public, nonce, hashAlg: TPM_ALG.SHA256 });
    } finally {
      transport.send = send;
      await flush(tpm, ak.handle);
      await releaseEk(tpm, ek);
    }
  });

  test("a blob from tpm2_makecredential is activated by our client", async () => {
    const ek = await createEk(tpm, "rsa");
    const made = await createAk(tpm, ek, AKS["RSA AK (RSASSA)"]!);
    await releaseEk(tpm, ek);
    writeFileSync(join(dir, "ek.pub"), encode(TPM2B_PUBLIC, ek.public));
    writeFileSync(join(dir, "secret"), enc.encode("tpm2-tools made this credential!"));
    await tools(
      "tpm2_makecredential",
      "-T",
      "none",
      "-u",
      join(dir, "ek.pub"),
      "-s",
      join(dir, "secret"),
      "-n",
      toHex(made.name),
      "-o",
      join(dir, "blob"),
    );
    const { credentialBlob, secret } = decodeKeylimeBlob(new Uint8Array(readFileSync(join(dir, "blob"))));
    const ek2 = await createEk(tpm, "rsa");
    const ak = await loadAk(tpm, ek2, made);
    try {
      const certInfo = await activateCredential(tpm, ak, ek2, credentialBlob, secret);
      assert.equal(new TextDecoder().decode(certInfo), "tpm2-tools made this credential!");
    } finally {
      await flush(tpm, ak.handle);
      await releaseEk(tpm, ek2);
    }
  });

  test("our quote passes tpm2_checkquote (RSA and ECC AKs)", async () => {
    for (const algs of Object.values(AKS)) {
      const ek = await createEk(tpm, "rsa");
      const ak = await loadAk(tpm, ek, await createAk(tpm, ek, algs));
      const nonce = enc.encode("checkquote-nonce");
      const q = await quote(tpm, ak, { nonce, pcrs: [0, 1, 2, 3, 10, 16], hashAlg: TPM_ALG.SHA256 });
      await flush(tpm, ak.handle);
      await releaseEk(tpm, ek);
      const out = join(dir, `q-${algs.key!.type}`);
      await writeQuoteFiles(out, {
        akPublic: ak.public,
        attest: q.attest,
        signature: q.signature,
        pcrs: encodePcrBlob([q.selection], [[...q.pcrs.values()]]),
      });
      await tools(
        "tpm2_checkquote",
        "-u",
        join(out, "ak.pub"),
        "-m",
        join(out, "quote.msg"),
        "-s",
        join(out, "quote.sig"),
        "-f",
        join(out, "quote.pcrs"),
        "-q",
        toHex(nonce),
      );
    }
  });

  test("tpm2_certify's result passes our software check, and ours certifies a tools-made AK", async () => {
    await tools("tpm2_createek", "-c", join(dir, "tek.ctx"), "-G", "rsa", "-u", join(dir, "tek.pub"));
    await tools(
      "tpm2_createak",
      "-C",
      join(dir, "tek.ctx"),
      "-c",
      join(dir, "tak.ctx"),
      "-G",
      "rsa",
      "-g",
      "sha256",
      "-s",
      "rsassa",
      "-u",
      join(dir, "tak.pub"),
      "-n",
      join(dir, "tak.name"),
    );
    await tools("tpm2_flushcontext", "-t");
    await tools(
      "tpm2_certify",
      "-c",
      join(dir, "tak.ctx"),
      "-C",
      join(dir, "tak.ctx"),
      "-g",
      "sha256",
      "-o",
      join(dir, "certify.attest"),
      "-s",
      join(dir, "certify.sig"),
    );
    await tools("tpm2_flushcontext", "-t");
    const akPub = decodePublicFile(new Uint8Array(readFileSync(join(dir, "tak.pub"))));
    const attest = new Uint8Array(readFileSync(join(dir, "certify.attest")));
    const checked = checkCertifyAttest({
      attest,
      signature: decode(TPMT_SIGNATURE, new Uint8Array(readFileSync(join(dir, "certify.sig")))),
      signer: akPub,
      // tpm2_certify 5.4 takes no qualifyingData option and sends bytes of its own choosing.
      qualifyingData: decode(TPMS_ATTEST, attest).extraData,
      certifiedName: objectName(akPub),
    });
    assert.deepEqual(checked.name, new Uint8Array(readFileSync(join(dir, "tak.name"))));
  });

  test("negative: a wrong endorsement password names TPM_RC_AUTH_FAIL or TPM_RC_BAD_AUTH", async () => {
    const ek = await createEk(tpm, "rsa");
    try {
      await assert.rejects(
        ekPolicySession(tpm, ek, { endorsementAuth: new PasswordSession(enc.encode("not the password")) }),
        (e) => {
          assert.ok(e instanceof TpmResponseError, String(e));
          assert.ok(e.is(TPM_RC.AUTH_FAIL) || e.is(TPM_RC.BAD_AUTH), e.message);
          assert.match(e.message, /^TPM2_PolicySecret failed: TPM_RC_(AUTH_FAIL|BAD_AUTH) \(session 1\)/);
          return true;
        },
      );
    } finally {
      await releaseEk(tpm, ek);
    }
  });

  test("negative: a tampered blob, or a credential for another AK, fails integrity on the TPM", async () => {
    const ek = await createEk(tpm, "ecc");
    const ak = await loadAk(tpm, ek, await createAk(tpm, ek, AKS["ECC AK (ECDSA)"]!));
    const other = await createAk(tpm, ek, AKS["ECC AK (ECDSA)"]!);
    try {
      const made = await makeCredential(ek.public, ak.name, enc.encode("the challenge"));
      const tampered = made.credentialBlob.slice();
      tampered[tampered.length - 1]! ^= 0x01;
      const integrity = (e: unknown) =>
        e instanceof TpmResponseError && e.is(TPM_RC.INTEGRITY) &&
        /TPM2_ActivateCredential failed: TPM_RC_INTEGRITY/.test(e.message);
      await assert.rejects(activateCredential(tpm, ak, ek, tampered, made.secret), integrity);
      const forOther = await makeCredential(ek.public, other.name, enc.encode("the challenge"));
      await assert.rejects(activateCredential(tpm, ak, ek, forOther.credentialBlob, forOther.secret), integrity);
      assert.equal(
        new TextDecoder().decode(await activateCredential(tpm, ak, ek, made.credentialBlob, made.secret)),
        "the challenge",
      );
    } finally {
      await flush(tpm, ak.handle);
      await releaseEk(tpm, ek);
    }
  });

  /** Load the AK under a fresh EK, quote, and return the quote's clockInfo.safe. */
  async function quotedClockSafe(saved: Parameters<typeof loadAk>[2]): Promise<boolean> {
    const ek = await createEk(tpm, "rsa");
    const ak = await loadAk(tpm, ek, saved);
    try {
      const q = await quote(tpm, ak, { nonce: enc.encode("clock"), pcrs: [16], hashAlg: TPM_ALG.SHA256 });
      return decode(TPMS_ATTEST, q.attest).clockInfo.safe;
    } finally {
      await flush(tpm, ak.handle);
      await releaseEk(tpm, ek);
    }
  }

  test("the AK loads again from its saved parts after the TPM restarts", async () => {
    let ek: Ek = await createEk(tpm, "rsa");
    const saved = await createAk(tpm, ek, AKS["RSA AK (RSASSA)"]!);
    await releaseEk(tpm, ek);
    // An orderly power cycle (TPM2_Shutdown first): the clock stays trustworthy (safe = YES).
    await tpm.execute(Shutdown, { shutdownType: TPM_SU.CLEAR });
    await transport.control.init();
    await tpm.execute(Startup, { startupType: TPM_SU.CLEAR });
    assert.equal(await quotedClockSafe(saved), true, "after an orderly restart, clockInfo.safe is YES");
    // Without TPM2_Shutdown the TPM cannot vouch for its clock (safe = NO), which a verifier rejects.
    await transport.control.init();
    await tpm.execute(Startup, { startupType: TPM_SU.CLEAR });
    assert.equal(await quotedClockSafe(saved), false, "after a disorderly restart, clockInfo.safe is NO");
    ek = await createEk(tpm, "rsa");
    let ak: LoadedKey | undefined;
    try {
      ak = await loadAk(tpm, ek, saved);
      assert.deepEqual((await readPublic(tpm, ak.handle)).name, objectName(saved.public));
      const q = await quote(tpm, ak, { nonce: enc.encode("after restart"), pcrs: [16], hashAlg: TPM_ALG.SHA256 });
      const attest = decode(TPMS_ATTEST, q.attest);
      assert.ok(attest.clockInfo.resetCount >= 2, "both restarts counted as TPM Resets");
      const c = await certify(tpm, ak, ak, new Uint8Array(16));
      checkCertifyAttest({ ...c, signer: ak.public, qualifyingData: new Uint8Array(16), certifiedName: ak.name });
    } finally {
      if (ak) await flush(tpm, ak.handle);
      await releaseEk(tpm, ek);
    }
  });
});

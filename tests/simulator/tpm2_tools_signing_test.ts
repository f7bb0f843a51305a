/**
 * tpm2-tools 5.4 signing with what the simulator once refused, on the simulator over its swtpm socket
 * and on swtpm side by side: a keyed-hash (HMAC) key made by `tpm2 create -G hmac` signs with
 * `tpm2 sign` and `tpm2 quote` and `tpm2 verifysignature` checks it; an RSASSA-PSS quote has a
 * digest-long salt on both; a key whose policy is
 * PolicyPassword signs with `tpm2 sign -p session:session.ctx+pswd` (libtss2-esys sends that
 * session with an empty nonceCaller).
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { constants, verify } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { decode } from "../../src/tpm/marshal.ts";
import { TPM_ALG } from "../../src/tpm/constants.ts";
import { publicKeyOf } from "../../src/tpm/crypto.ts";
import { verifySignature } from "../../src/tpm/signature.ts";
import { signatureRsa, TPMT_SIGNATURE } from "../../src/tpm/structures.ts";
import { decodePublicFile, decodeSignatureFile } from "../../src/tpm/tpm2_tools_files.ts";
import { startListening } from "../../simulator/listen_uri.ts";
import { startedSimOver } from "../helpers/sim.ts";
import { requireTools, startSwtpm, swtpmSkipReason } from "../helpers/swtpm.ts";

const skip = requireTools("tpm2");
const TOOL_TIMEOUT_MS = 60_000;

interface Target {
  readonly tcti: string;
  stop(): Promise<void>;
}

const TARGETS: readonly { name: string; skip?: string; open(): Promise<Target> }[] = [
  {
    name: "the simulator over its swtpm socket",
    async open() {
      const sim = await startedSimOver("in process");
      const server = await startListening(sim.engine, "swtpm:host=127.0.0.1,port=0");
      return {
        tcti: server.uri,
        async stop() {
          await server.close();
          await sim.stop();
        },
      };
    },
  },
  {
    name: "swtpm",
    skip: swtpmSkipReason(),
    async open() {
      const s = await startSwtpm({ transport: "tcp" });
      return { tcti: s.tctiForTools, stop: () => s.stop() };
    },
  },
];

for (const target of TARGETS) {
  describe(`tpm2-tools signing on ${target.name}`, { skip: skip ?? target.skip }, () => {
    let t: Target;
    let dir: string;
    const f = (name: string) => join(dir, name);

    /** Run `tpm2 <args>`; it must succeed. Transients are flushed after each step (no resource manager). */
    function tpm2(...args: string[]): Promise<string> {
      const env = { ...process.env, TPM2TOOLS_TCTI: t.tcti };
      return new Promise((resolve, reject) => {
        execFile("tpm2", args, { env, cwd: dir, timeout: TOOL_TIMEOUT_MS }, (err, stdout, stderr) => {
          if (err) reject(new Error(`tpm2 ${args.join(" ")} failed: ${err.message}\n${stderr}`));
          else resolve(String(stdout));
        });
      });
    }
    const flushTransients = () => tpm2("flushcontext", "-t");

    before(async () => {
      t = await target.open();
      dir = mkdtempSync(join(tmpdir(), "keylime-ts-tools-sign-"));
      writeFileSync(f("msg.dat"), "signed by tpm2-tools");
      await tpm2("createprimary", "-C", "o", "-g", "sha256", "-G", "ecc", "-c", f("primary.ctx"));
      await flushTransients();
    });

    after(async () => {
      await t?.stop();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    test("tpm2 create -G hmac; tpm2 sign, tpm2 verifysignature and tpm2 quote with it", async () => {
      await tpm2("create", "-C", f("primary.ctx"), "-G", "hmac", "-u", f("hmac.pub"), "-r", f("hmac.priv"));
      await flushTransients();
      await tpm2("load", "-C", f("primary.ctx"), "-u", f("hmac.pub"), "-r", f("hmac.priv"), "-c", f("hmac.ctx"));
      await flushTransients();
      await tpm2("sign", "-c", f("hmac.ctx"), "-g", "sha256", "-o", f("hmac.sig"), f("msg.dat"));
      const sig = decode(TPMT_SIGNATURE, new Uint8Array(readFileSync(f("hmac.sig"))));
      assert.equal(sig.sigAlg, TPM_ALG.HMAC);
      await flushTransients();
      await tpm2("verifysignature", "-c", f("hmac.ctx"), "-g", "sha256", "-m", f("msg.dat"), "-s", f("hmac.sig"));
      await flushTransients();
      await tpm2(
        "quote",
        "-c",
        f("hmac.ctx"),
        "-l",
        "sha256:0,16",
        "-q",
        "0102030405",
        "-m",
        f("q.msg"),
        "-s",
        f("q.sig"),
      );
      assert.equal(decode(TPMT_SIGNATURE, new Uint8Array(readFileSync(f("q.sig")))).sigAlg, TPM_ALG.HMAC);
      await flushTransients();
    });

    test("an RSASSA-PSS key: tpm2 quote --scheme rsapss; the salt is as long as the digest", async () => {
      await tpm2(
        "create",
        "-C",
        f("primary.ctx"),
        "-G",
        "rsa2048:rsapss-sha256:null",
        "-a",
        "fixedtpm|fixedparent|sensitivedataorigin|userwithauth|sign",
        "-u",
        f("pss.pub"),
        "-r",
        f("pss.priv"),
      );
      await flushTransients();
      await tpm2("load", "-C", f("primary.ctx"), "-u", f("pss.pub"), "-r", f("pss.priv"), "-c", f("pss.ctx"));
      await flushTransients();
      const quote = ["-m", f("pss.msg"), "-s", f("pss.sig"), "-g", "sha256", "-q", "0a0b0c"];
      await tpm2("quote", "-c", f("pss.ctx"), "--scheme", "rsapss", "-l", "sha256:0,16", "-o", f("pss.pcrs"), ...quote);
      await flushTransients();
      // tpm2 checkquote 5.4 refuses PSS quotes of swtpm too, so the check is done here in software.
      const pub = decodePublicFile(new Uint8Array(readFileSync(f("pss.pub"))), "pss.pub");
      const message = new Uint8Array(readFileSync(f("pss.msg")));
      const signature = decodeSignatureFile(new Uint8Array(readFileSync(f("pss.sig"))), "pss.sig");
      assert.equal(signature.sigAlg, TPM_ALG.RSAPSS);
      verifySignature(pub, message, signature);
      const pss = { key: publicKeyOf(pub), padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 };
      assert.ok(verify("sha256", message, pss, signatureRsa(signature).sig));
    });

    test("a key whose policy is PolicyPassword: tpm2 sign -p session:session.ctx+pswd", async () => {
      await tpm2("startauthsession", "-S", f("trial.ctx"));
      await tpm2("policypassword", "-S", f("trial.ctx"), "-L", f("password.policy"));
      await tpm2("flushcontext", f("trial.ctx"));
      await tpm2(
        "create",
        "-C",
        f("primary.ctx"),
        "-G",
        "ecc",
        "-L",
        f("password.policy"),
        "-p",
        "pswd",
        "-a",
        "fixedtpm|fixedparent|sensitivedataorigin|sign",
        "-u",
        f("pw.pub"),
        "-r",
        f("pw.priv"),
      );
      await flushTransients();
      await tpm2("load", "-C", f("primary.ctx"), "-u", f("pw.pub"), "-r", f("pw.priv"), "-c", f("pw.ctx"));
      await flushTransients();
      await tpm2("startauthsession", "--policy-session", "-S", f("session.ctx"));
      await tpm2("policypassword", "-S", f("session.ctx"));
      await tpm2(
        "sign",
        "-c",
        f("pw.ctx"),
        "-p",
        "session:session.ctx+pswd",
        "-g",
        "sha256",
        "-o",
        f("pw.sig"),
        f("msg.dat"),
      );
      assert.equal(decode(TPMT_SIGNATURE, new Uint8Array(readFileSync(f("pw.sig")))).sigAlg, TPM_ALG.ECDSA);
      await tpm2("flushcontext", f("session.ctx"));
      await flushTransients();
    });
  });
}

/**
 * `keylime-ts demo`: the attestation flow end to end on the embedded simulator, with nothing else
 * installed. Every step is timed and checked; a failed check ends the demo with exit code 1.
 */
import type { Command } from "commander";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { caCertificatePem, openSimulator, simulatorTransport } from "../../simulator/index.ts";
import { authTag, decodeKeylimeBlob, makeKeylimeChallenge } from "../protocol/credential.ts";
import { encodePcrBlob } from "../protocol/pcr_blob.ts";
import { encodeQuote, verifyQuote } from "../protocol/quote.ts";
import { activateCredential } from "../tpm/activate.ts";
import { createAk, loadAk } from "../tpm/ak.ts";
import { Tpm } from "../tpm/client.ts";
import { Shutdown, Startup } from "../tpm/commands.ts";
import { TPM_ALG, TPM_SU } from "../tpm/constants.ts";
import { createEk, readEkCertificate, releaseEk } from "../tpm/ek.ts";
import { encode } from "../tpm/marshal.ts";
import { publicKeyOf, sameKey } from "../tpm/crypto.ts";
import { flush } from "../tpm/objects.ts";
import { pcrExtend } from "../tpm/pcrs.ts";
import { quote } from "../tpm/quote.ts";
import { TPM2B_PUBLIC } from "../tpm/structures.ts";
import { X509Certificate } from "../tpm/x509.ts";
import { print, printJson, warn } from "./output.ts";
import { fromBase64, toBase64, toHex } from "../util/encoding.ts";

interface Step {
  readonly step: string;
  readonly ok: boolean;
  readonly ms: number;
  readonly detail: string;
}

const AGENT_UUID = "d432fbb3-d2f1-4a97-9ef7-75bd81c00000";
const PCRS = [0, 1, 10, 16];

class DemoFailure extends Error {}

export function demoCommand(program: Command): void {
  program
    .command("demo")
    .description("run the attestation flow on the embedded software TPM: EK, AK, credential, quote, tamper check")
    .option("--json", "print the whole report as JSON")
    .option("--keep", "keep the simulator's state directory and print where it is")
    .action(async (o: { json?: boolean; keep?: boolean }) => {
      const steps: Step[] = [];
      const started = performance.now();
      const stateDir = await mkdtemp(join(tmpdir(), "keylime-ts-demo-"));
      if (!o.json) {
        warn("INSECURE: software TPM. The demo runs on keylime-ts's embedded simulator, which proves nothing.");
      }

      const run = async <T>(step: string, fn: () => Promise<[T, string]>): Promise<T> => {
        const t0 = performance.now();
        let entry: Step;
        try {
          const [value, detail] = await fn();
          entry = { step, ok: true, ms: performance.now() - t0, detail };
          steps.push(entry);
          if (!o.json) print(`  ok  ${step.padEnd(52)} ${entry.ms.toFixed(1).padStart(7)} ms  ${detail}`);
          return value;
        } catch (e) {
          entry = { step, ok: false, ms: performance.now() - t0, detail: (e as Error).message };
          steps.push(entry);
          if (!o.json) print(`  FAIL ${step.padEnd(51)} ${entry.ms.toFixed(1).padStart(7)} ms  ${entry.detail}`);
          throw new DemoFailure(entry.detail);
        }
      };

      let tpm: Tpm | undefined;
      try {
        const sim = await run("manufacture a software TPM", async () => {
          const s = await openSimulator({ stateDir });
          return [s, `seeds, EK certificates and a CA in ${s.statePath}`];
        });
        tpm = new Tpm(simulatorTransport(sim.engine));
        const t = tpm;
        await run("power on: TPM2_Startup(CLEAR)", async () => {
          await t.execute(Startup, { startupType: TPM_SU.CLEAR });
          return [undefined, "the TPM is running"];
        });
        const ek = await run("create the EK (RSA-2048, TCG template L-1)", async () => {
          const k = await createEk(t, "rsa");
          return [k, `name ${toHex(k.name).slice(0, 20)}...`];
        });
        await run("verify the EK certificate against the simulator CA", async () => {
          const der = await readEkCertificate(t, "rsa");
          if (!der) throw new Error("no EK certificate in NV 0x01c00002");
          const cert = new X509Certificate(der.slice().buffer);
          const ca = new X509Certificate(caCertificatePem(sim.engine.persistent));
          if (!(await cert.verify({ publicKey: ca.publicKey, signatureOnly: true }))) {
            throw new Error("the EK certificate's signature does not verify with the CA");
          }
          if (!sameKey(publicKeyOf(ek.public), cert.publicKeyObject)) {
            throw new Error("the certificate is for another key");
          }
          return [undefined, `"${cert.subject}" signed by the CA, key = EK`];
        });
        const ak = await run("create and load the AK under the EK", async () => {
          const made = await createAk(t, ek, { hashAlg: TPM_ALG.SHA256 });
          const loaded = await loadAk(t, ek, made);
          return [loaded, "RSA-2048 RSASSA-SHA256, attributes 0x00050072"];
        });
        const challenge = await run("registrar: MakeCredential for the AK (software)", async () => {
          const c = await makeKeylimeChallenge(encode(TPM2B_PUBLIC, ek.public), encode(TPM2B_PUBLIC, ak.public));
          return [c, "a challenge only the TPM holding the EK and the AK can open"];
        });
        await run("agent: ActivateCredential on the TPM", async () => {
          const { credentialBlob, secret } = decodeKeylimeBlob(fromBase64(challenge.blob));
          const certInfo = await activateCredential(t, ak, ek, credentialBlob, secret);
          if (toBase64(certInfo) !== challenge.key) {
            throw new Error("the recovered secret differs");
          }
          return [undefined, `secret recovered; auth_tag ${authTag(certInfo, AGENT_UUID).slice(0, 16)}...`];
        });
        const nonce = toHex(randomBytes(15));
        const aikTpm = encode(TPM2B_PUBLIC, ak.public);
        const first = await run(`quote PCRs ${PCRS.join(",")} with a fresh nonce`, async () => {
          const q = await quote(t, ak, { nonce: new TextEncoder().encode(nonce), pcrs: PCRS, hashAlg: TPM_ALG.SHA256 });
          const pcrBlob = encodePcrBlob([q.selection], [[...q.pcrs.values()]]);
          return [{ q, quote: encodeQuote({ attest: q.attest, signature: q.signature, pcrBlob }) }, `nonce ${nonce}`];
        });
        await run("verify the quote (signature, nonce, PCR digest)", () => {
          const v = verifyQuote({ quote: first.quote, aikTpm, nonce, hashAlg: TPM_ALG.SHA256 });
          return Promise.resolve([undefined, `${v.pcrs.size} PCRs check out; clock safe`]);
        });
        await run("extend PCR 10 (something changed)", async () => {
          await pcrExtend(t, 10, [{ hashAlg: TPM_ALG.SHA256, digest: new Uint8Array(32).fill(0x5a) }]);
          return [undefined, "PCR 10 extended"];
        });
        await run("the old quote no longer matches the PCRs", async () => {
          const now = await quote(t, ak, {
            nonce: new TextEncoder().encode(nonce),
            pcrs: PCRS,
            hashAlg: TPM_ALG.SHA256,
          });
          const stale = encodeQuote({
            attest: first.q.attest,
            signature: first.q.signature,
            pcrBlob: encodePcrBlob([now.selection], [[...now.pcrs.values()]]),
          });
          try {
            verifyQuote({ quote: stale, aikTpm, nonce, hashAlg: TPM_ALG.SHA256 });
          } catch (e) {
            return [undefined, `rejected: ${(e as Error).message.slice(0, 60)}`];
          }
          throw new Error("the stale quote still verified against the new PCR values");
        });
        await flush(t, ak.handle);
        await releaseEk(t, ek);
        await t.execute(Shutdown, { shutdownType: TPM_SU.CLEAR });
      } catch (e) {
        if (!(e instanceof DemoFailure)) throw e;
        process.exitCode = 1;
      } finally {
        await tpm?.close();
        if (!o.keep) await rm(stateDir, { recursive: true, force: true });
      }
      const total = performance.now() - started;
      const ok = steps.every((s) => s.ok);
      if (o.json) {
        printJson({ ok, totalMs: total, insecure: "software TPM", stateDir: o.keep ? stateDir : undefined, steps });
      } else {
        print(
          `${ok ? "all steps passed" : "a step FAILED"} in ${total.toFixed(0)} ms${
            o.keep ? `; state kept in ${stateDir}` : ""
          }`,
        );
      }
    });
}

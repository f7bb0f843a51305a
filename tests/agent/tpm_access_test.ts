/**
 * Sharing a TPM that has no resource manager (swtpm): between the agent's requests tpm2-tools reads PCRs
 * and the EK certificate from the same swtpm and finds no transient object of ours; the next quote still
 * verifies. After a TPM Reset the saved AK context is refused and the AK is loaded again.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { Quoter } from "../../src/agent/quoter.ts";
import { sharedAk } from "../../src/agent/tpm_access.ts";
import { verifyQuote } from "../../src/protocol/quote.ts";
import { createAk, loadAk, type SavedAk } from "../../src/tpm/ak.ts";
import { Tpm } from "../../src/tpm/client.ts";
import { Shutdown, Startup } from "../../src/tpm/commands.ts";
import { TPM_ALG, TPM_SU } from "../../src/tpm/constants.ts";
import { createEk, releaseEk } from "../../src/tpm/ek.ts";
import type { SwtpmTransport } from "../../src/tpm/transport/swtpm.ts";
import { openTransport } from "../../src/tpm/transport/uri.ts";
import { requireTools, startSwtpm, type SwtpmInstance } from "../helpers/swtpm.ts";

const skip = requireTools("swtpm", "swtpm_setup", "tpm2_pcrread", "tpm2_nvread", "tpm2_getcap");

describe("the AK on a TPM without a resource manager", { skip }, () => {
  let swtpm: SwtpmInstance;
  let tpm: Tpm;
  let saved: SavedAk;
  const warnings: string[] = [];
  let quoter: Quoter;
  let access: Awaited<ReturnType<typeof sharedAk>>;
  let takenOver: number;
  const tools = (...args: string[]) =>
    execFileSync(args[0]!, args.slice(1), { env: { ...process.env, TPM2TOOLS_TCTI: swtpm.tctiForTools } });

  before(async () => {
    swtpm = await startSwtpm({ transport: "tcp" });
    tpm = new Tpm(openTransport(swtpm.uri));
    const ek = await createEk(tpm, "rsa");
    saved = await createAk(tpm, ek, {});
    const ak = await loadAk(tpm, ek, saved);
    await releaseEk(tpm, ek);
    takenOver = ak.handle;
    access = await sharedAk(tpm, ak, {
      idleMs: 0,
      reload: async (t) => {
        const e = await createEk(t, "rsa");
        try {
          return await loadAk(t, e, saved);
        } finally {
          await releaseEk(t, e);
        }
      },
      warn: (m) => warnings.push(m),
    });
    quoter = new Quoter(access, TPM_ALG.SHA256);
    const nk = generateKeyPairSync("rsa", { modulusLength: 2048 }).publicKey;
    await quoter.bindNk(nk.export({ format: "pem", type: "spki" }).toString());
  });
  after(async () => {
    access?.close();
    await tpm?.close();
    await swtpm?.stop();
  });

  async function quoteVerifies(nonce: string): Promise<void> {
    const q = await quoter.quote(nonce, [0, 10]);
    const v = verifyQuote({ quote: q, nonce, hashAlg: TPM_ALG.SHA256, akPublic: saved.public });
    assert.deepEqual([...v.pcrs.keys()], [0, 10, 16]);
  }

  test("tpm2-tools works between requests, and finds nothing of ours loaded", async () => {
    await quoteVerifies("first");
    // Let the idle release run (a timer of 0 ms).
    await new Promise((ok) => setTimeout(ok, 20));
    const pcrs = tools("tpm2_pcrread", "sha256:16").toString();
    assert.match(pcrs, /16 *: *0x[0-9A-F]{64}/);
    const cert = tools("tpm2_nvread", "0x01c00002");
    assert.equal(cert[0], 0x30, "the RSA EK certificate is DER");
    const transient = tools("tpm2_getcap", "handles-transient").toString().trim();
    assert.equal(transient, "", `transient objects left: ${transient}`);
    await quoteVerifies("second");
  });

  test("the reported AK handle stays the one taken over, while each request's load takes what is free", async () => {
    const loads: number[] = [];
    const reported: number[] = [];
    await access.use((_t, k) => Promise.resolve(void loads.push(k.handle)));
    reported.push(access.handle);
    // Another program's transient object now occupies the handle that load got.
    const other = await access.useTpm((t) => createEk(t, "rsa"));
    try {
      await access.use((_t, k) => Promise.resolve(void loads.push(k.handle)));
      reported.push(access.handle);
    } finally {
      await access.useTpm((t) => releaseEk(t, other));
    }
    assert.notEqual(loads[0], loads[1], "the two loads got different handles");
    assert.deepEqual(reported, [takenOver, takenOver]);
  });

  test("after a TPM Reset the AK is loaded again from its saved parts", async () => {
    // An orderly TPM Reset: Shutdown(CLEAR), power cycle, Startup(CLEAR).
    await access.useTpm(async (t) => {
      await t.execute(Shutdown, { shutdownType: TPM_SU.CLEAR });
      await (t.transport as SwtpmTransport).control.init();
      await t.execute(Startup, { startupType: TPM_SU.CLEAR });
    });
    const n = warnings.length;
    await quoter.bindNk("-----BEGIN PUBLIC KEY-----\nAA==\n-----END PUBLIC KEY-----\n");
    await quoteVerifies("afterreset");
    assert.equal(warnings.length, n + 1);
    assert.match(warnings.at(-1)!, /saved AK context was refused/);
  });
});

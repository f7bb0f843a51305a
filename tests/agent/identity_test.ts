/**
 * The agent's identity on swtpm and on the embedded simulator: EK, EK certificate chain, AK created
 * and reused by rust-keylime's rule, and an agent_data.json that rust-keylime would have written for an
 * AK made by tpm2-tools loads unchanged.
 */
import { strict as assert } from "node:assert";
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { after, before, describe, it } from "node:test";
import { type AgentConfig, agentPaths, loadAgentConfig } from "../../src/agent/config.ts";
import { closeIdentity, hashEk, openIdentity, resolveUuid } from "../../src/agent/identity.ts";
import { loadAgentData } from "../../src/agent/state.ts";
import { publicKeyOf, sameKey } from "../../src/tpm/crypto.ts";
import { X509Certificate } from "../../src/tpm/x509.ts";
import { recordingLog } from "../helpers/agent_log.ts";
import { startTestTpm, type TestTpm, type TestTpmKind } from "../helpers/agent_tpm.ts";
import { requireTools, swtpmSkipReason } from "../helpers/swtpm.ts";

const exec = promisify(execFile);

function configFor(keylimeDir: string, env: Record<string, string> = {}): AgentConfig {
  return loadAgentConfig({ root: keylimeDir, env: { KEYLIME_DIR: keylimeDir, ...env } }).config;
}

const mode = (p: string) => statSync(p).mode & 0o777;
const pemKeys = (pem: string) => pem.match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g) ?? [];

for (const kind of ["swtpm", "sim"] as TestTpmKind[]) {
  describe(`agent identity on ${kind}`, { skip: kind === "swtpm" ? swtpmSkipReason() : undefined }, () => {
    let t: TestTpm;
    const dirs: string[] = [];
    const newDir = () => {
      const d = mkdtempSync(join(tmpdir(), "agent-id-"));
      dirs.push(d);
      return d;
    };
    before(async () => {
      t = await startTestTpm(kind);
    });
    after(async () => {
      await t?.stop();
      for (const d of dirs) rmSync(d, { recursive: true, force: true });
    });

    for (const alg of ["rsa", "ecc"] as const) {
      it(`${alg}: creates the AK once, saves it 0600, and reuses it on the next start`, async () => {
        const dir = newDir();
        const c = configFor(dir, {
          KEYLIME_AGENT_TPM_ENCRYPTION_ALG: alg,
          KEYLIME_AGENT_TPM_SIGNING_ALG: alg === "rsa" ? "rsassa" : "ecdsa",
          KEYLIME_AGENT_UUID: "hash_ek",
        });
        const paths = agentPaths(c);
        const log = recordingLog();
        const first = await openIdentity(t.tpm, c, paths, log);
        await closeIdentity(t.tpm, first);
        assert.equal(first.akCreated, true);
        assert.equal(mode(paths.agentData), 0o600);
        assert.equal(mode(paths.payloadKey), 0o600);
        assert.equal(mode(paths.serverKey), 0o600);
        assert.equal(mode(paths.serverCert), 0o600);
        assert.equal(first.uuid, hashEk(first.ek.public));
        assert.equal(first.uuid.length, 64);
        // The EK certificate is first, and holds the EK's key.
        // swtpm_setup provisions RSA-2048 and P-384 EK certificates; the simulator RSA-2048 and P-256.
        const certs = pemKeys(first.ekCertPem);
        if (alg === "rsa" || kind === "sim") {
          assert.ok(certs.length >= 1, "a provisioned TPM has an EK certificate");
          assert.ok(sameKey(new X509Certificate(certs[0]!).publicKeyObject, publicKeyOf(first.ek.public)));
        } else {
          assert.equal(first.ekCertPem, "");
          assert.equal(log.lines.filter((l) => /No EK certificate/.test(l)).length, 1);
        }

        const second = await openIdentity(t.tpm, c, paths, recordingLog());
        await closeIdentity(t.tpm, second);
        assert.equal(second.akCreated, false);
        assert.deepEqual(second.akTpm, first.akTpm);
        assert.deepEqual(second.ekTpm, first.ekTpm);
        assert.equal(second.mtls!.certPem, first.mtls!.certPem);
        assert.deepEqual(
          second.nk.publicKey.export({ type: "spki", format: "der" }),
          first.nk.publicKey.export({ type: "spki", format: "der" }),
        );

        // Another tpm_hash_alg: a new AK, and the file rewritten for it.
        const c384 = { ...c, tpm_hash_alg: "sha384" };
        const third = await openIdentity(t.tpm, c384, paths, recordingLog());
        await closeIdentity(t.tpm, third);
        assert.equal(third.akCreated, true);
        assert.notDeepEqual(third.akTpm, first.akTpm);
        assert.equal((await loadAgentData(paths.agentData))!.akHashAlg, 0x000c);
      });
    }

    it("a signing scheme that does not fit the key is ERR_CONFIG before any TPM work", async () => {
      const c = configFor(newDir(), { KEYLIME_AGENT_TPM_ENCRYPTION_ALG: "ecc" });
      await assert.rejects(
        openIdentity(t.tpm, c, agentPaths(c), recordingLog()),
        (e: Error & { code?: string }) => e.code === "ERR_CONFIG" && /set tpm_signing_alg to "ecdsa"/.test(e.message),
      );
    });
  });
}

describe("an agent_data.json made as rust-keylime makes it, from a tpm2-tools AK", {
  skip: swtpmSkipReason() ?? requireTools("tpm2_createek", "tpm2_createak", "tpm2_readpublic", "tpm2_flushcontext"),
}, () => {
  let t: TestTpm;
  let dir: string;
  before(async () => {
    t = await startTestTpm("swtpm");
    dir = mkdtempSync(join(tmpdir(), "agent-rust-"));
  });
  after(async () => {
    await t?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("loads unchanged and keeps the AK", async () => {
    const env = { ...process.env, TPM2TOOLS_TCTI: t.swtpm!.tctiForTools };
    const f = (n: string) => join(dir, n);
    const tool = (name: string, ...args: string[]) => exec(name, args, { env });
    await tool("tpm2_createek", "-c", f("ek.ctx"), "-G", "rsa", "-u", f("ek.pub"));
    await tool("tpm2_readpublic", "-c", f("ek.ctx"), "-f", "pem", "-o", f("ek.pem"));
    await tool("tpm2_flushcontext", "-t");
    await tool(
      "tpm2_createak",
      ...["-C", f("ek.ctx"), "-c", f("ak.ctx"), "-G", "rsa", "-g", "sha256", "-s", "rsassa"],
      ...["-u", f("ak.pub"), "-r", f("ak.priv")],
    );
    for (const flag of ["-t", "-l", "-s"]) await tool("tpm2_flushcontext", flag);

    // What rust-keylime's AgentData::store writes: TPMT_PUBLIC and the TPM2B_PRIVATE buffer (no size
    // prefixes), and ek_hash = the ASCII of hex SHA-256 of the EK public key PEM.
    const akPub = readFileSync(f("ak.pub"));
    const akPriv = readFileSync(f("ak.priv"));
    const ekHash = createHash("sha256").update(readFileSync(f("ek.pem"))).digest("hex");
    const rust = {
      ak_hash_alg: "Sha256",
      ak_sign_alg: "RsaSsa",
      ak_public: [...akPub.subarray(2)],
      ak_private: [...akPriv.subarray(2)],
      ek_hash: [...Buffer.from(ekHash, "ascii")],
    };
    const keylimeDir = join(dir, "keylime");
    const c = configFor(keylimeDir);
    const paths = agentPaths(c);
    await openIdentity(t.tpm, c, paths, recordingLog()).then((id) => closeIdentity(t.tpm, id)); // makes the dir
    const text = JSON.stringify(rust, null, 2);
    writeFileSync(paths.agentData, text, { mode: 0o600 });

    const log = recordingLog();
    const id = await openIdentity(t.tpm, c, paths, log);
    await closeIdentity(t.tpm, id);
    assert.equal(id.akCreated, false, log.lines.join("\n"));
    assert.deepEqual(Buffer.from(id.akTpm), akPub, "aik_tpm is the tpm2-tools AK, byte for byte");
    assert.equal(id.ekHash, ekHash);
    assert.equal(readFileSync(paths.agentData, "utf8"), text, "the file is left as it was");
    assert.equal(id.uuid, "d432fbb3-d2f1-4a97-9ef7-75bd81c00000");
  });
});

describe("an unprovisioned TPM", { skip: swtpmSkipReason() }, () => {
  it("has no EK certificate: ekcert is empty with a one-line notice", async () => {
    const t = await startTestTpm("swtpm", { provision: false });
    const dir = mkdtempSync(join(tmpdir(), "agent-nocert-"));
    try {
      const c = configFor(dir);
      const log = recordingLog();
      const id = await openIdentity(t.tpm, c, agentPaths(c), log);
      await closeIdentity(t.tpm, id);
      assert.equal(id.ekCertPem, "");
      const notices = log.lines.filter((l) => /No EK certificate/.test(l));
      assert.equal(notices.length, 1);
      assert.doesNotMatch(notices[0]!, /\n|TPM_RC/);
    } finally {
      await t.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("uuid", () => {
  it("is resolved as rust-keylime does", () => {
    const log = recordingLog();
    const ek = null as never;
    assert.equal(resolveUuid("D432FBB3-D2F1-4A97-9EF7-75BD81C00000", ek, log), "d432fbb3-d2f1-4a97-9ef7-75bd81c00000");
    assert.match(resolveUuid("generate", ek, log), /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-/);
    const random = resolveUuid("not-a-uuid", ek, log);
    assert.match(random, /^[0-9a-f-]{36}$/);
    assert.ok(log.lines.some((l) => l.startsWith("WARN Misformatted UUID: not-a-uuid")));
  });
});

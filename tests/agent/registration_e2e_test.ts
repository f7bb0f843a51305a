/**
 * Registration end to end: the agent (in process, and once as `keylime-ts agent register`) against the
 * reference registrar on free ports, on swtpm and on the embedded simulator, for RSA and ECC EKs with
 * RSA and ECC AKs. Restarts reuse the AK (200 again); a new AK for the same uuid gets 403; a wrong
 * auth_tag deletes the record; a registrar that is down and then comes up is waited for.
 */
import { strict as assert } from "node:assert";
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { after, before, describe, it } from "node:test";
import { type AgentConfig, agentPaths, loadAgentConfig } from "../../src/agent/config.ts";
import { closeIdentity, openIdentity } from "../../src/agent/identity.ts";
import { registerAgent, type RegistrationOptions } from "../../src/agent/registration.ts";
import { loadRegistrarConfig } from "../../src/registrar/config.ts";
import { showAgent } from "../../src/registrar/registration.ts";
import { type RunningRegistrar, startRegistrar } from "../../src/registrar/server.ts";
import type { Tpm } from "../../src/tpm/client.ts";
import { recordingLog } from "../helpers/agent_log.ts";
import { freePort } from "../helpers/free_port.ts";
import { startTestTpm, type TestTpm, type TestTpmKind } from "../helpers/agent_tpm.ts";
import { requireTools, swtpmSkipReason } from "../helpers/swtpm.ts";

const exec = promisify(execFile);
const FAST_RETRY = { maxRetries: 0, initialDelayMs: 1, maxDelayMs: 1 };

async function registrar(dir: string, port = 0, tpmCaDir: string[] = []): Promise<RunningRegistrar> {
  const config = await loadRegistrarConfig(undefined, {
    ip: "127.0.0.1",
    port,
    tls_port: 0,
    database: join(dir, "registrar.sqlite"),
    tpm_ca_dir: tpmCaDir,
    allow_untrusted_ek: true,
  });
  return await startRegistrar(config, { log: () => {} });
}

function agentConfig(dir: string, reg: RunningRegistrar, env: Record<string, string> = {}): AgentConfig {
  return loadAgentConfig({
    root: dir,
    env: {
      KEYLIME_DIR: join(dir, "agent"),
      KEYLIME_AGENT_REGISTRAR_PORT: String(reg.port),
      ...env,
    },
  }).config;
}

/** One agent start: identity, registration, close. */
async function runAgent(tpm: Tpm, c: AgentConfig, options: RegistrationOptions = { retry: FAST_RETRY }) {
  const log = recordingLog();
  const id = await openIdentity(tpm, c, agentPaths(c), log);
  try {
    const r = await registerAgent(tpm, id, c, log, options);
    return { id, r, log };
  } catch (e) {
    (e as { log?: string[] }).log = log.lines;
    throw e;
  } finally {
    await closeIdentity(tpm, id);
  }
}

const COMBOS = [
  { name: "RSA EK, RSA AK", env: { KEYLIME_AGENT_TPM_ENCRYPTION_ALG: "rsa", KEYLIME_AGENT_TPM_SIGNING_ALG: "rsassa" } },
  { name: "ECC EK, ECC AK", env: { KEYLIME_AGENT_TPM_ENCRYPTION_ALG: "ecc", KEYLIME_AGENT_TPM_SIGNING_ALG: "ecdsa" } },
];

for (const kind of ["swtpm", "sim"] as TestTpmKind[]) {
  describe(`registration end to end on ${kind}`, { skip: kind === "swtpm" ? swtpmSkipReason() : undefined }, () => {
    let t: TestTpm;
    let dir: string;
    let reg: RunningRegistrar;
    before(async () => {
      t = await startTestTpm(kind);
      dir = mkdtempSync(join(tmpdir(), `agent-e2e-${kind}-`));
      reg = await registrar(dir);
    });
    after(async () => {
      await reg?.close();
      await t?.stop();
      rmSync(dir, { recursive: true, force: true });
    });

    for (const combo of COMBOS) {
      it(`${combo.name}: registers and activates; a restart reuses the AK and registers again with 200`, async () => {
        const uuid = crypto.randomUUID();
        const c = agentConfig(join(dir, uuid), reg, { ...combo.env, KEYLIME_AGENT_UUID: uuid });
        const first = await runAgent(t.tpm, c);
        assert.equal(first.id.akCreated, true);
        assert.equal(first.r.apiVersion, "2.6");
        const lines = first.log.lines;
        assert.ok(lines.includes(`INFO SUCCESS: Agent ${uuid} registered`), lines.join("\n"));
        assert.ok(lines.includes(`INFO SUCCESS: Agent ${uuid} activated`), lines.join("\n"));
        assert.ok(lines.some((l) => l.startsWith("INFO Requesting registrar API version to http://127.0.0.1:")));
        let shown = showAgent(reg.service, uuid);
        assert.deepEqual(shown.aik_tpm, first.id.akTpm, "the registrar lists the agent active with its AK");
        assert.equal(shown.regcount, 1);

        const second = await runAgent(t.tpm, c);
        assert.equal(second.id.akCreated, false);
        assert.deepEqual(second.id.akTpm, first.id.akTpm);
        shown = showAgent(reg.service, uuid);
        assert.deepEqual(shown.aik_tpm, first.id.akTpm);
      });
    }

    it("a new AK for a registered uuid gets 403 and the agent says what to do", async () => {
      const uuid = crypto.randomUUID();
      const c = agentConfig(join(dir, uuid), reg, { KEYLIME_AGENT_UUID: uuid });
      const first = await runAgent(t.tpm, c);
      await rm(agentPaths(c).agentData);
      await assert.rejects(runAgent(t.tpm, c), (e: Error & { code?: string; status?: number }) => {
        assert.equal(e.code, "ERR_REGISTRAR");
        assert.equal(e.status, 403);
        assert.match(e.message, /403.*different EK, EK certificate or AK/);
        assert.match(e.message, /delete the agent at the registrar/);
        return true;
      });
      assert.deepEqual(showAgent(reg.service, uuid).aik_tpm, first.id.akTpm, "the record keeps the old AK");
    });

    it("a wrong auth_tag: activation refused with 400 and the record deleted", async () => {
      const uuid = crypto.randomUUID();
      const c = agentConfig(join(dir, uuid), reg, { KEYLIME_AGENT_UUID: uuid });
      const flip = (tag: string) => (tag[0] === "0" ? "1" : "0") + tag.slice(1);
      await assert.rejects(
        runAgent(t.tpm, c, { retry: FAST_RETRY, alterAuthTag: flip }),
        (e: Error & { status?: number }) =>
          e.status === 400 && /deleted the record/.test(e.message) && /Restart the agent/.test(e.message),
      );
      assert.equal(reg.service.store.get(uuid), undefined);
      // A restart registers from scratch.
      await runAgent(t.tpm, c);
      assert.equal(showAgent(reg.service, uuid).agent_id, uuid);
    });
  });
}

describe("persistent EKs (ek_handle) with the other AK type, on swtpm", {
  skip: swtpmSkipReason() ?? requireTools("tpm2_createek", "tpm2_flushcontext"),
}, () => {
  const CASES = [
    {
      ek: "ecc",
      handle: "0x81000100",
      env: { KEYLIME_AGENT_TPM_ENCRYPTION_ALG: "rsa", KEYLIME_AGENT_TPM_SIGNING_ALG: "rsassa" },
      akType: 0x0001,
    },
    {
      ek: "rsa",
      handle: "0x81000101",
      env: { KEYLIME_AGENT_TPM_ENCRYPTION_ALG: "ecc", KEYLIME_AGENT_TPM_SIGNING_ALG: "ecdsa" },
      akType: 0x0023,
    },
  ];
  for (const k of CASES) {
    it(`${k.ek.toUpperCase()} EK at ${k.handle} with an ${k.env.KEYLIME_AGENT_TPM_ENCRYPTION_ALG.toUpperCase()} AK`, async () => {
      const t = await startTestTpm("swtpm");
      const dir = mkdtempSync(join(tmpdir(), "agent-ekhandle-"));
      const reg = await registrar(dir);
      try {
        const env = { ...process.env, TPM2TOOLS_TCTI: t.swtpm!.tctiForTools };
        await exec("tpm2_createek", ["-c", k.handle, "-G", k.ek], { env });
        const uuid = crypto.randomUUID();
        const c = agentConfig(dir, reg, { ...k.env, KEYLIME_AGENT_EK_HANDLE: k.handle, KEYLIME_AGENT_UUID: uuid });
        const { id } = await runAgent(t.tpm, c);
        assert.equal(id.ek.public.type, k.ek === "rsa" ? 0x0001 : 0x0023);
        assert.equal(id.ak.public.type, k.akType);
        // swtpm holds an RSA-2048 EK certificate but none for P-256.
        assert.equal(id.ekCertPem === "", k.ek === "ecc");
        assert.deepEqual(showAgent(reg.service, uuid).aik_tpm, id.akTpm);
      } finally {
        await reg.close();
        await t.stop();
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }
});

describe("registrar down, then up", () => {
  it("the agent retries with backoff, a log line per attempt, and registers once it answers", async () => {
    const t = await startTestTpm("sim");
    const dir = mkdtempSync(join(tmpdir(), "agent-retry-"));
    let reg: RunningRegistrar | undefined;
    try {
      const port = await freePort();
      const c = loadAgentConfig({
        root: dir,
        env: { KEYLIME_DIR: join(dir, "agent"), KEYLIME_AGENT_REGISTRAR_PORT: String(port) },
      }).config;
      const log = recordingLog();
      const id = await openIdentity(t.tpm, c, agentPaths(c), log);
      const registering = registerAgent(t.tpm, id, c, log, {
        retry: { maxRetries: 20, initialDelayMs: 50, maxDelayMs: 200 },
      });
      // Up after the agent has been refused at least twice.
      while (log.lines.filter((l) => /retry \d+ of 20/.test(l)).length < 2) {
        await new Promise((r) => setTimeout(r, 20));
      }
      reg = await registrar(dir, port);
      await registering;
      await closeIdentity(t.tpm, id);
      assert.ok(log.lines.some((l) => /connection refused/.test(l)), log.lines.join("\n"));
      assert.ok(log.lines.includes(`INFO SUCCESS: Agent ${id.uuid} activated`));
      assert.equal(showAgent(reg.service, id.uuid).agent_id, id.uuid);
    } finally {
      await reg?.close();
      await t.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("keylime-ts agent register as a process", { skip: swtpmSkipReason() }, () => {
  it("exits 0 once the agent is active, with rust-keylime's log lines", async () => {
    const t = await startTestTpm("swtpm");
    const dir = mkdtempSync(join(tmpdir(), "agent-cli-"));
    const reg = await registrar(dir);
    try {
      const env = {
        ...process.env,
        KEYLIME_TS_CONFIG_ROOT: dir,
        KEYLIME_DIR: join(dir, "agent"),
        KEYLIME_AGENT_REGISTRAR_PORT: String(reg.port),
        KEYLIME_AGENT_UUID: "hash_ek",
        TCTI: t.swtpm!.uri,
      };
      await t.tpm.close(); // one client per swtpm connection
      const r = await exec(process.execPath, ["run", "-A", "src/main.ts", "agent", "register", "--json"], { env });
      const out = JSON.parse(r.stdout);
      assert.equal(out.active, true);
      assert.match(out.uuid, /^[0-9a-f]{64}$/);
      assert.match(r.stderr, new RegExp(`INFO  keylime_agent > SUCCESS: Agent ${out.uuid} activated`));
      assert.equal(showAgent(reg.service, out.uuid).agent_id, out.uuid);
    } finally {
      await reg.close();
      await t.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/**
 * Registration with the NK certify extension end to end (spec/nk-certify.md, "Tests this design asks for"),
 * the agent in process against the reference registrar on free ports, on swtpm and on the simulator: with
 * mTLS on the AK certifies the mTLS key, with mTLS off the transport_key (RSA or EC); the stored binding
 * verifies again through nk_certify.ts; against a registrar that ignores the extension (as upstream's does)
 * the agent registers classically; require_nk_certify takes the agent.
 */
import { strict as assert } from "node:assert";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { type AgentConfig, agentPaths, loadAgentConfig } from "../../src/agent/config.ts";
import { closeIdentity, openIdentity } from "../../src/agent/identity.ts";
import { registerAgent } from "../../src/agent/registration.ts";
import { verifyNkCertification } from "../../src/protocol/nk_certify.ts";
import { loadRegistrarConfig } from "../../src/registrar/config.ts";
import { showAgent } from "../../src/registrar/registration.ts";
import { type RunningRegistrar, startRegistrar } from "../../src/registrar/server.ts";
import type { Tpm } from "../../src/tpm/client.ts";
import { recordingLog } from "../helpers/agent_log.ts";
import { startTestTpm, type TestTpm, type TestTpmKind } from "../helpers/agent_tpm.ts";
import { swtpmSkipReason } from "../helpers/swtpm.ts";

const FAST_RETRY = { maxRetries: 0, initialDelayMs: 1, maxDelayMs: 1 };

async function registrar(dir: string, requireNk = false): Promise<RunningRegistrar> {
  const config = await loadRegistrarConfig(undefined, {
    ip: "127.0.0.1",
    port: 0,
    tls_port: 0,
    database: join(dir, `registrar-${requireNk}.sqlite`),
    allow_untrusted_ek: true,
    require_nk_certify: requireNk,
  });
  return await startRegistrar(config, { log: () => {} });
}

/**
 * A registrar that does not speak the extension: upstream ignores unknown fields, so this proxy drops
 * nk_certify and transport_key before the reference registrar sees them.
 */
async function upstreamLike(inner: RunningRegistrar): Promise<{ port: number; close(): Promise<void> }> {
  const server: Server = createServer(async (req, res) => {
    let text = "";
    for await (const chunk of req) text += chunk;
    let body: string | undefined = text || undefined;
    if (body) {
      const json = JSON.parse(body);
      delete json.nk_certify;
      delete json.transport_key;
      body = JSON.stringify(json);
    }
    const answer = await fetch(`http://127.0.0.1:${inner.port}${req.url}`, {
      method: req.method!,
      ...(body ? { headers: { "Content-Type": "application/json" }, body } : {}),
    });
    res.writeHead(answer.status, { "Content-Type": "application/json" });
    res.end(await answer.text());
  });
  await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise<void>((ok) => server.close(() => ok())),
  };
}

function agentConfig(dir: string, registrarPort: number, env: Record<string, string> = {}): AgentConfig {
  return loadAgentConfig({
    root: dir,
    env: { KEYLIME_DIR: join(dir, "agent"), KEYLIME_AGENT_REGISTRAR_PORT: String(registrarPort), ...env },
  }).config;
}

async function runAgent(tpm: Tpm, c: AgentConfig) {
  const log = recordingLog();
  const id = await openIdentity(tpm, c, agentPaths(c), log);
  try {
    await registerAgent(tpm, id, c, log, { retry: FAST_RETRY });
    return { id, log };
  } finally {
    await closeIdentity(tpm, id);
  }
}

/** The tenant's second look: the binding the registrar stored verifies again. */
function storedBindingVerifies(reg: RunningRegistrar, uuid: string) {
  const shown = showAgent(reg.service, uuid);
  assert.ok(shown.nk_tpm && shown.nk_attest && shown.nk_sign && shown.certify_nonce, "the binding is shown");
  assert.equal(shown.certify_nonce.length, 32);
  assert.match(shown.nk_verified_at!, /^\d{4}-\d\d-\d\dT/);
  const expectedKey = shown.mtls_cert === "disabled" ? shown.transport_key! : shown.mtls_cert!;
  return verifyNkCertification({
    nkTpm: shown.nk_tpm,
    nkAttest: shown.nk_attest,
    nkSign: shown.nk_sign,
    akTpm: shown.aik_tpm,
    nonce: shown.certify_nonce,
    expectedKey,
  });
}

for (const kind of ["swtpm", "sim"] as TestTpmKind[]) {
  describe(
    `NK certified at registration on ${kind}`,
    { skip: kind === "swtpm" ? swtpmSkipReason() : undefined },
    () => {
      let t: TestTpm;
      let dir: string;
      let reg: RunningRegistrar;
      before(async () => {
        t = await startTestTpm(kind);
        dir = mkdtempSync(join(tmpdir(), `agent-nk-${kind}-`));
        reg = await registrar(dir);
      });
      after(async () => {
        await reg?.close();
        await t?.stop();
        rmSync(dir, { recursive: true, force: true });
      });

      it("mTLS on: the AK certifies the mTLS key; the registrar stores a binding that verifies", async () => {
        const uuid = crypto.randomUUID();
        const { id, log } = await runAgent(t.tpm, agentConfig(join(dir, uuid), reg.port, { KEYLIME_AGENT_UUID: uuid }));
        assert.ok(log.lines.includes(`INFO SUCCESS: Agent ${uuid} activated`), log.lines.join("\n"));
        assert.ok(log.lines.some((l) => l.includes("verified the NK's certification")), log.lines.join("\n"));
        const v = storedBindingVerifies(reg, uuid);
        assert.ok(v.nkKey.equals(id.mtls!.key.publicKey), "the NK is the mTLS key");
        assert.equal(showAgent(reg.service, uuid).transport_key, undefined);
      });

      for (const alg of ["rsa", "ecc"]) {
        it(`mTLS off, transport_key_alg = ${alg}: the transport_key is sent and certified`, async () => {
          const uuid = crypto.randomUUID();
          const c = agentConfig(join(dir, uuid), reg.port, {
            KEYLIME_AGENT_UUID: uuid,
            KEYLIME_AGENT_ENABLE_AGENT_MTLS: "false",
            KEYLIME_AGENT_TRANSPORT_KEY_ALG: alg,
          });
          const { id } = await runAgent(t.tpm, c);
          assert.equal(id.nk.privateKey.asymmetricKeyType, alg === "rsa" ? "rsa" : "ec");
          const v = storedBindingVerifies(reg, uuid);
          assert.ok(v.nkKey.equals(id.nk.publicKey), "the NK is the payload key, sent as transport_key");
          assert.equal(
            showAgent(reg.service, uuid).transport_key,
            id.nk.publicKey.export({ format: "pem", type: "spki" }),
          );
        });
      }

      it("against a registrar without the extension the agent registers classically", async () => {
        const proxy = await upstreamLike(reg);
        try {
          const uuid = crypto.randomUUID();
          const { log } = await runAgent(t.tpm, agentConfig(join(dir, uuid), proxy.port, { KEYLIME_AGENT_UUID: uuid }));
          assert.ok(log.lines.includes(`INFO SUCCESS: Agent ${uuid} activated`), log.lines.join("\n"));
          assert.ok(!log.lines.some((l) => l.includes("NK's certification")));
          const shown = showAgent(reg.service, uuid);
          assert.equal(shown.nk_tpm, undefined, "no binding: no nonce was issued");
          assert.equal(reg.service.store.get(uuid)!.certify_nonce, null);
        } finally {
          await proxy.close();
        }
      });

      it("a registrar with require_nk_certify takes the agent (it always offers nk_certify)", async () => {
        const strict = await registrar(dir, true);
        try {
          const uuid = crypto.randomUUID();
          await runAgent(t.tpm, agentConfig(join(dir, uuid), strict.port, { KEYLIME_AGENT_UUID: uuid }));
          storedBindingVerifies(strict, uuid);
        } finally {
          await strict.close();
        }
      });
    },
  );
}

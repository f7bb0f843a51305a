/**
 * `keylime_agent` as a process on swtpm with mTLS off, an EC P-256 transport key and nk_binding = certify
 * (spec/nk-certify.md): the registrar holds a certification of the transport_key that verifies; the
 * tenant's identity proof is a fresh certification over its nonce, the classic quote is refused and PCR 16
 * stays untouched; U and V reach the agent by ECIES, keys/verify answers and the payload's script runs.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { agentRoutePath, agentRoutes } from "../../src/protocol/agent_api.ts";
import { identityNonceBytes, verifyNkCertification } from "../../src/protocol/nk_certify.ts";
import { importNkPublicKey, tenantKeyRequests, verifyHmac } from "../../src/protocol/payload.ts";
import { buildPayloadZip } from "../../src/protocol/payload_zip_build.ts";
import { fromBase64 } from "../../src/util/encoding.ts";
import type { AgentClient } from "../helpers/agent_client.ts";
import { type AgentProcess, startAgentProcess, until } from "../helpers/agent_process.ts";
import { requireTools, swtpmSkipReason } from "../helpers/swtpm.ts";

const UUID = "ec000000-d2f1-4a97-9ef7-75bd81c0ec01";

describe("keylime_agent with an EC transport key, mTLS off, nk_binding = certify", {
  skip: swtpmSkipReason() ?? requireTools("tpm2_pcrread"),
}, () => {
  let agent: AgentProcess;
  let client: AgentClient;
  let outDir: string;
  let pubkey: string;

  before(async () => {
    agent = await startAgentProcess({
      uuid: UUID,
      mtls: false,
      conf: [`transport_key_alg = "ecc"`, `nk_binding = "certify"`, `enable_insecure_payload = true`],
    });
    client = agent.client();
    outDir = join(agent.dir, "out");
    mkdirSync(outDir);
  });

  after(async () => {
    client?.close();
    await agent?.stop();
  });

  test("the registrar verified and shows the certification of the EC transport_key", () => {
    const r = agent.registered as Record<string, string>;
    assert.equal(r.mtls_cert, "disabled");
    assert.match(r.transport_key!, /^-----BEGIN PUBLIC KEY-----/);
    const v = verifyNkCertification({
      nkTpm: fromBase64(r.nk_tpm!),
      nkAttest: fromBase64(r.nk_attest!),
      nkSign: fromBase64(r.nk_sign!),
      akTpm: agent.aikTpm,
      nonce: fromBase64(r.certify_nonce!),
      expectedKey: r.transport_key!,
    });
    assert.equal(v.nkKey.asymmetricKeyType, "ec");
  });

  test("identity: a certification over the tenant's nonce; the classic quote 400; PCR 16 untouched", async () => {
    const nonce = "tenantNonce0123456789";
    const a = await client.request(agentRoutePath(agentRoutes.identityCertify, "2.6", { nonce, binding: "certify" }));
    assert.equal(a.status, 200, JSON.stringify(a.json));
    const r = agentRoutes.identityCertify.results.parse(a.json.results);
    verifyNkCertification({
      nkTpm: r.nk_tpm,
      nkAttest: r.nk_attest,
      nkSign: r.nk_sign,
      akTpm: agent.aikTpm,
      nonce: identityNonceBytes(nonce),
      expectedKey: (agent.registered as Record<string, string>).transport_key!,
    });
    pubkey = r.pubkey;
    const q = await client.request(agentRoutePath(agentRoutes.identityQuote, "2.6", { nonce }));
    assert.equal(q.status, 400);
    assert.equal(q.json.status, "identity binding is certify");
    const env = { ...process.env, TPM2TOOLS_TCTI: agent.swtpm.tctiForTools };
    assert.match(execFileSync("tpm2_pcrread", ["sha256:16"], { env }).toString(), /16 *: *0x0{64}\b/);
  });

  test("U and V by ECIES to the certified key: keys/verify answers, the payload's script runs", async () => {
    const enc = new TextEncoder();
    const zip = buildPayloadZip({
      "autorun.sh": { data: enc.encode(`#!/bin/sh\necho by-ecies > ${join(outDir, "done")}\n`), executable: true },
    });
    const req = await tenantKeyRequests(await importNkPublicKey(pubkey), UUID, { payload: zip });
    assert.equal(req.ukey.encrypted_key.length, 65 + 12 + 32 + 16, "ECIES, not RSA-OAEP");
    const u = await client.request("/v2.6/keys/ukey", { body: agentRoutes.ukey.body.toJson(req.ukey) });
    assert.equal(u.status, 200, JSON.stringify(u.json));
    const v = await client.request("/v2.6/keys/vkey", { body: agentRoutes.vkey.body.toJson(req.vkey) });
    assert.equal(v.status, 200, JSON.stringify(v.json));
    const challenge = "challengeEcies012345";
    let hmac: unknown;
    await until("keys/verify", async () => {
      const a = await client.request(`/v2.6/keys/verify?challenge=${challenge}`);
      hmac = a.json.results.hmac;
      return a.status === 200;
    });
    assert.equal(hmac, verifyHmac(req.key.k, challenge));
    await until("the payload's file", () => existsSync(join(outDir, "done")));
    assert.equal(readFileSync(join(outDir, "done"), "utf8"), "by-ecies\n");
  });
});

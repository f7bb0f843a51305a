/**
 * The agent end to end as upstream's tests drive it: `keylime_agent` (a link to the launcher) started as a
 * process with an /etc-style configuration file (KEYLIME_AGENT_CONFIG), swtpm as its TPM, the reference
 * registrar in process. This test plays tenant and verifier: it reads the agent from the registrar, checks
 * an identity quote against the registrar's AK and PCR 16 against the NK, sends U then V with a zipped
 * payload whose autorun.sh writes a file, checks keys/verify, sees the file; a pair with a wrong auth_tag
 * runs nothing; a signed revocation runs an action whose output is in the log, an unsigned one runs none;
 * SIGTERM ends it with 0.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { agentRoutePath, agentRoutes } from "../../src/protocol/agent_api.ts";
import { generateBootstrapKey, importNkPublicKey, tenantKeyRequests, verifyHmac } from "../../src/protocol/payload.ts";
import { buildPayloadZip } from "../../src/protocol/payload_zip_build.ts";
import { verifyQuote } from "../../src/protocol/quote.ts";
import { TPM_ALG } from "../../src/tpm/constants.ts";
import type { AgentClient } from "../helpers/agent_client.ts";
import { type AgentProcess, ROOT, startAgentProcess, until } from "../helpers/agent_process.ts";
import { makeRevocationSigner, type RevocationSigner, sampleRevocationMessage } from "../helpers/revocation_ca.ts";
import { requireTools, swtpmSkipReason } from "../helpers/swtpm.ts";

const UUID = "e2e00000-d2f1-4a97-9ef7-75bd81c00000";
const enc = new TextEncoder();
const IMA_LIST = [
  "10 " + "a".repeat(40) + " ima-ng sha256:" + "b".repeat(64) + " boot_aggregate",
  "10 " + "c".repeat(40) + " ima-ng sha256:" + "d".repeat(64) + " /usr/bin/true",
  "",
].join("\n");

describe("keylime_agent as a process", {
  skip: swtpmSkipReason() ?? requireTools("tpm2_pcrread", "tpm2_nvread", "tpm2_getcap"),
}, () => {
  let agent: AgentProcess;
  let log: () => string;
  let client: AgentClient;
  let signer: RevocationSigner;
  let nkPem: string;
  let outDir: string;
  let aikTpm: Uint8Array;

  before(async () => {
    const dir = mkdtempSync(join(tmpdir(), "agent-e2e-"));
    outDir = join(dir, "out");
    mkdirSync(outDir);
    signer = await makeRevocationSigner(dir);
    // A pre-installed revocation action that says what it got.
    const actions = join(dir, "actions");
    mkdirSync(actions);
    writeFileSync(join(actions, "local_action"), '#!/bin/sh\necho "local action ran with $(head -c 20 "$1")"\n');
    chmodSync(join(actions, "local_action"), 0o755);
    agent = await startAgentProcess({
      uuid: UUID,
      conf: [`revocation_actions = "local_action"`, `revocation_actions_dir = "${actions}"`],
      env: { RUST_LOG: "keylime_agent=debug" },
      imaList: IMA_LIST,
    });
    log = agent.log;
    client = agent.client();
    aikTpm = agent.aikTpm;
  });

  after(async () => {
    client?.close();
    await agent?.stop();
  });

  test("logs registration and the API versions as rust-keylime does", () => {
    assert.match(log(), /Requesting registrar API version/);
    assert.match(log(), new RegExp(`SUCCESS: Agent ${UUID} registered`));
    assert.match(log(), new RegExp(`SUCCESS: Agent ${UUID} activated`));
    assert.match(log(), /> Starting server with API versions: 2\.1, 2\.2, 2\.3, 2\.4, 2\.5, 2\.6\n/);
  });

  test("an identity quote verifies with the registrar's AK, PCR 16 holds the NK", async () => {
    const nonce = "e2eNonce0123456789ab";
    const a = await client.request(agentRoutePath(agentRoutes.identityQuote, "2.2", { nonce }));
    assert.equal(a.status, 200, JSON.stringify(a.json));
    nkPem = a.json.results.pubkey as string;
    const v = verifyQuote({ quote: a.json.results.quote as string, nonce, hashAlg: TPM_ALG.SHA256, aikTpm });
    const h = createHash("sha256").update(nkPem).digest();
    const expected = createHash("sha256").update(Buffer.concat([Buffer.alloc(32), h])).digest();
    assert.deepEqual(Buffer.from(v.pcrs.get(16)!), expected);
  });

  test("tpm2-tools shares the swtpm between the agent's requests; the next quote still verifies", async () => {
    await new Promise((ok) => setTimeout(ok, 400)); // past the agent's idle release (200 ms)
    const env = { ...process.env, TPM2TOOLS_TCTI: agent.swtpm.tctiForTools };
    assert.match(execFileSync("tpm2_pcrread", ["sha256:16"], { env }).toString(), /16 *: *0x[0-9A-F]{64}/);
    assert.equal(execFileSync("tpm2_nvread", ["0x01c00002"], { env, stdio: ["ignore", "pipe", "ignore"] })[0], 0x30);
    assert.equal(execFileSync("tpm2_getcap", ["handles-transient"], { env }).toString().trim(), "");
    const nonce = "afterTools";
    const a = await client.request(agentRoutePath(agentRoutes.identityQuote, "2.6", { nonce }));
    assert.equal(a.status, 200, JSON.stringify(a.json));
    verifyQuote({ quote: a.json.results.quote as string, nonce, hashAlg: TPM_ALG.SHA256, aikTpm });
  });

  test("an integrity quote carries the IMA list from ima_ml_entry and PCR 10", async () => {
    const nonce = "integrityE2e";
    const a = await client.request(`/v2.1/quotes/integrity?nonce=${nonce}&mask=0x400&partial=1&ima_ml_entry=1`);
    assert.equal(a.status, 200, JSON.stringify(a.json));
    assert.equal(a.json.results.ima_measurement_list, IMA_LIST.split("\n").slice(1).join("\n"));
    assert.equal(a.json.results.ima_measurement_list_entry, 1);
    assert.equal(a.json.results.pubkey, undefined);
    assert.equal(a.json.results.mb_measurement_list, undefined);
    const v = verifyQuote({ quote: a.json.results.quote as string, nonce, hashAlg: TPM_ALG.SHA256, aikTpm });
    assert.deepEqual([...v.pcrs.keys()], [10, 16]);
  });

  async function deliver(file: string, opts: { wrongAuthTag?: boolean } = {}) {
    const nk = await importNkPublicKey(nkPem);
    const zip = buildPayloadZip({
      "autorun.sh": { data: enc.encode(`#!/bin/sh\necho delivered > ${join(outDir, file)}\n`), executable: true },
      "RevocationNotifier-cert.crt": enc.encode(signer.certPem),
    });
    const req = await tenantKeyRequests(nk, UUID, { payload: zip });
    if (opts.wrongAuthTag) {
      const other = await tenantKeyRequests(nk, UUID, { key: generateBootstrapKey() });
      req.ukey.auth_tag = other.ukey.auth_tag;
    }
    const u = await client.request("/v2.2/keys/ukey", { body: agentRoutes.ukey.body.toJson(req.ukey) });
    assert.equal(u.status, 200, JSON.stringify(u.json));
    const v = await client.request("/v2.2/keys/vkey", { body: agentRoutes.vkey.body.toJson(req.vkey) });
    assert.equal(v.status, 200, JSON.stringify(v.json));
    return req.key.k;
  }

  test("U then V with a zipped payload: keys/verify answers, autorun.sh runs", async () => {
    const k = await deliver("first");
    const challenge = "challenge0123456789a";
    let hmac: unknown;
    await until("keys/verify", async () => {
      const a = await client.request(`/v2.2/keys/verify?challenge=${challenge}`);
      hmac = a.json.results.hmac;
      return a.status === 200;
    });
    assert.equal(hmac, verifyHmac(k, challenge));
    await until("the payload's file", () => existsSync(join(outDir, "first")));
    assert.equal(readFileSync(join(outDir, "first"), "utf8"), "delivered\n");
  });

  test("a pair with a wrong auth_tag runs nothing (a good pair after it does)", async () => {
    await deliver("wrong", { wrongAuthTag: true });
    await deliver("third");
    await until("the third payload's file", () => existsSync(join(outDir, "third")));
    assert.equal(existsSync(join(outDir, "wrong")), false);
  });

  test("a signed revocation runs the action with its output logged; an unsigned one runs none", async () => {
    const msg = sampleRevocationMessage(UUID, "Tue Dec  1 22:00:00 2026");
    const body = (signature: Uint8Array) =>
      agentRoutes.revocation.body.toJson({ msg, signature }) as Record<string, unknown>;
    const signed = await client.request("/v2.2/notifications/revocation", { body: body(await signer.sign(msg)) });
    assert.equal(signed.status, 200);
    await until("the action's output", () => /local action ran with/.test(log()));
    assert.match(log(), /Executing revocation action local_action/);
    const runs = () => log().split("Executing revocation action local_action").length - 1;
    const before = runs();
    const unsigned = await client.request("/v2.2/notifications/revocation", { body: body(new Uint8Array(256)) });
    assert.equal(unsigned.status, 200);
    await until("the refusal", () => /Invalid revocation message signature/.test(log()));
    assert.equal(runs(), before);
  });

  test("SIGTERM: exit 0", async () => {
    // process.kill, not agent.kill: Deno's child_process reports any child it signalled as killed by it.
    process.kill(agent.pid, "SIGTERM");
    assert.equal(await agent.exit, 0, log());
    assert.doesNotMatch(log(), /-----BEGIN (?:RSA |EC )?PRIVATE KEY-----/);
  });
});

describe("keylime_agent with mTLS off and a payload script", () => {
  test("refuses to start, as rust-keylime does", async () => {
    const dir = mkdtempSync(join(tmpdir(), "agent-insecure-"));
    writeFileSync(join(dir, "agent.conf"), `[agent]\nenable_agent_mtls = false\nkeylime_dir = "${dir}"\n`);
    mkdirSync(join(dir, "bin"));
    symlinkSync(join(ROOT, "scripts", "keylime-ts"), join(dir, "bin", "keylime_agent"));
    const child = spawn(join(dir, "bin", "keylime_agent"), [], {
      env: { ...process.env, KEYLIME_AGENT_CONFIG: join(dir, "agent.conf"), TCTI: "swtpm:host=127.0.0.1,port=1" },
      stdio: ["ignore", "ignore", "pipe"],
    });
    let err = "";
    child.stderr!.on("data", (d) => (err += d));
    const code = await new Promise((ok) => child.once("exit", (c) => ok(c)));
    assert.equal(code, 1, err);
    assert.match(err, /'enable_insecure_payload' has to be set to 'True'/);
  });
});

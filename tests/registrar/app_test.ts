/**
 * The registrar app as a value (app.request, no socket): every route, upstream's statuses, messages and
 * envelope, and bad input refused with a 400 naming the field while nothing is stored.
 */
import { beforeEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createRegistrarApp } from "../../src/registrar/app.ts";
import { EkTrustStore } from "../../src/registrar/ek_trust.ts";
import type { RegistrarService } from "../../src/registrar/registration.ts";
import { memoryStore } from "../../src/registrar/store.ts";
import { createCa, issueCertificate, newKeyPair } from "../../src/registrar/tls.ts";
import { MAX_BODY_BYTES, REGISTRAR_ERROR_HEADER, registrarStatus } from "../../src/protocol/registrar_api.ts";
import { TPMA_OBJECT } from "../../src/tpm/structures.ts";
import { softAgent, softEkCa, type TestAgent } from "../helpers/registrar_agents.ts";
import { softKey } from "../helpers/soft_key.ts";
import { fromBase64, fromPem, toBase64, toPem } from "../../src/util/encoding.ts";

const JSON_TYPE = { "Content-Type": "application/json" };
const b64 = (b: Uint8Array) => toBase64(b);
const UUID = "d432fbb3-d2f1-4a97-9ef7-75bd81c00000";

let svc: RegistrarService;
let logs: string[];
let agentApp: ReturnType<typeof createRegistrarApp>;
let tenantApp: ReturnType<typeof createRegistrarApp>;

async function setup(allowUntrustedEk = false) {
  logs = [];
  svc = {
    store: memoryStore(),
    ekTrust: EkTrustStore.fromPem((await softEkCa()).cert.toString("pem")),
    allowUntrustedEk,
    log: (l) => logs.push(l),
  };
  agentApp = createRegistrarApp(svc, { tls: false });
  tenantApp = createRegistrarApp(svc, { tls: true });
}

/** A JSON content type goes with a body only: upstream refuses it on an empty body (keylime.md §0.5). */
async function call(
  app: typeof agentApp,
  method: string,
  path: string,
  body?: unknown,
  headers?: Record<string, string>,
) {
  const res = await app.request(path, {
    method,
    headers: headers ?? (body === undefined ? {} : JSON_TYPE),
    ...(body === undefined ? {} : { body: typeof body === "string" ? body : JSON.stringify(body) }),
  });
  const text = await res.text();
  return {
    status: res.status,
    text,
    json: text ? JSON.parse(text) : undefined,
    error: res.headers.get(REGISTRAR_ERROR_HEADER),
  };
}

async function register(agent: TestAgent, uuid = UUID, version = "2.6") {
  const r = await call(agentApp, "POST", `/v${version}/agents/${uuid}`, agent.body());
  assert.equal(r.status, 200, r.text);
  return fromBase64(r.json.results.blob);
}

async function registerAndActivate(agent: TestAgent, uuid = UUID) {
  const blob = await register(agent, uuid);
  const r = await call(agentApp, "PUT", `/v2.6/agents/${uuid}`, { auth_tag: await agent.answer(blob, uuid) });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json, { code: 200, status: "Success", results: {} });
}

describe("registrar routes", () => {
  beforeEach(() => setup());

  test("GET /version: current 2.6, the v2 scope", async () => {
    const r = await call(agentApp, "GET", "/version");
    assert.equal(r.status, 200);
    assert.equal(r.json.status, "Success");
    assert.equal(r.json.results.current_version, "2.6");
    assert.ok(r.json.results.supported_versions.includes("2.0"));
    assert.ok(!r.json.results.supported_versions.includes("3.0"));
  });

  test("register, activate, show, list, delete", async () => {
    const agent = await softAgent();
    await registerAndActivate(agent);
    const shown = await call(tenantApp, "GET", `/v2.6/agents/${UUID}`);
    assert.equal(shown.status, 200);
    const { results } = shown.json;
    assert.equal(results.agent_id, UUID);
    assert.equal(results.aik_tpm, b64(agent.akTpm));
    assert.equal(results.ek_tpm, b64(agent.ekTpm));
    // The single EK certificate as base64 DER (pull-mode rendering).
    assert.equal(results.ekcert, agent.ekcert!.replace(/-----[A-Z ]+-----|\s/g, ""));
    assert.equal(results.mtls_cert, "disabled");
    assert.equal(results.ip, "127.0.0.1");
    assert.equal(results.port, 9002);
    assert.equal(results.regcount, 1);
    assert.equal(svc.store.get(UUID)!.ek_trust, "trusted");
    assert.deepEqual((await call(tenantApp, "GET", "/v2.6/agents")).json.results, { uuids: [UUID] });
    assert.deepEqual((await call(tenantApp, "DELETE", `/v2/agents/${UUID}`)).json, {
      code: 200,
      status: "Success",
      results: {},
    });
    const gone = await call(tenantApp, "GET", `/v2.6/agents/${UUID}`);
    assert.deepEqual(gone.json, { code: 404, status: registrarStatus.notFound(UUID), results: {} });
    assert.equal((await call(tenantApp, "DELETE", `/v2.6/agents/${UUID}`)).status, 404);
  });

  test("the other registration and activation routes, under /v2 and /v2.M", async () => {
    const agent = await softAgent();
    let r = await call(agentApp, "POST", "/v2.1/agents", agent.body({ agent_id: "by-body" }));
    assert.equal(r.status, 200, r.text);
    let blob = fromBase64(r.json.results.blob);
    r = await call(agentApp, "PUT", "/v2/agents/by-body/activate", { auth_tag: await agent.answer(blob, "by-body") });
    assert.equal(r.status, 200, r.text);
    blob = await register(agent, "posted", "2.0");
    r = await call(agentApp, "POST", "/v2.5/agents/posted/activate", { auth_tag: await agent.answer(blob, "posted") });
    assert.equal(r.status, 200, r.text);
    assert.ok(svc.store.get("by-body")!.active && svc.store.get("posted")!.active);
  });

  test("a registered but inactive agent is 404 'has not been activated' to tenants", async () => {
    await register(await softAgent());
    const r = await call(tenantApp, "GET", `/v2.6/agents/${UUID}`);
    assert.deepEqual(r.json, { code: 404, status: registrarStatus.notActive(UUID), results: {} });
  });

  test("a wrong auth_tag deletes the record", async () => {
    const agent = await softAgent();
    const blob = await register(agent);
    const good = await agent.answer(blob, UUID);
    const wrong = good.slice(0, -1) + (good.endsWith("0") ? "1" : "0");
    const r = await call(agentApp, "PUT", `/v2.6/agents/${UUID}`, { auth_tag: wrong });
    assert.deepEqual(r.json, { code: 400, status: registrarStatus.authTagMismatch(wrong, UUID), results: {} });
    assert.equal(svc.store.get(UUID), undefined);
    assert.equal((await call(agentApp, "PUT", `/v2.6/agents/${UUID}`, { auth_tag: good })).status, 404);
  });

  test("an uppercase auth_tag fails: the registrar compares strings", async () => {
    const agent = await softAgent();
    const blob = await register(agent);
    const tag = (await agent.answer(blob, UUID)).toUpperCase();
    assert.equal((await call(agentApp, "PUT", `/v2.6/agents/${UUID}`, { auth_tag: tag })).status, 400);
  });

  test("activation: unknown agent 404, missing auth_tag a bare 400", async () => {
    const r = await call(agentApp, "PUT", "/v2.6/agents/nobody", { auth_tag: "00" });
    assert.deepEqual(r.json, { code: 404, status: registrarStatus.notFound("nobody"), results: {} });
    await register(await softAgent());
    const bare = await call(agentApp, "PUT", `/v2.6/agents/${UUID}`, {});
    assert.equal(bare.status, 400);
    assert.equal(bare.text, "");
    assert.equal(svc.store.get(UUID)!.active, false);
  });

  test("a new AK (or EK) for a registered uuid gets 403 and changes nothing; the same identity re-registers", async () => {
    const agent = await softAgent();
    await registerAndActivate(agent);
    const other = await softAgent();
    for (const body of [agent.body({ aik_tpm: b64(other.akTpm) }), other.body()]) {
      const r = await call(agentApp, "POST", `/v2.6/agents/${UUID}`, body);
      assert.equal(r.status, 403, r.text);
      assert.equal(r.json.status, registrarStatus.identityChanged);
    }
    const kept = svc.store.get(UUID)!;
    assert.deepEqual(kept.aik_tpm, agent.akTpm);
    assert.equal(kept.active, true);
    await registerAndActivate(agent);
    assert.equal(svc.store.get(UUID)!.regcount, 2);
  });

  test("tenant routes on the plain HTTP port: bare 400", async () => {
    for (
      const [method, path] of [["GET", "/v2.6/agents"], ["GET", `/v2.6/agents/${UUID}`], ["DELETE", "/v2/agents/x"]]
    ) {
      const r = await call(agentApp, method!, path!);
      assert.equal(r.status, 400);
      assert.equal(r.text, "");
    }
  });

  test("unknown paths 404, wrong methods 405, unknown versions 404 (all bare)", async () => {
    assert.equal((await call(agentApp, "GET", "/v2.6/nothing")).status, 404);
    assert.equal((await call(agentApp, "GET", "/v3.0/agents/x")).status, 404);
    assert.equal((await call(agentApp, "GET", "/v2.9/agents")).status, 404);
    const r = await call(agentApp, "PATCH", `/v2.6/agents/${UUID}`);
    assert.equal(r.status, 405);
    assert.equal(r.text, "");
  });
});

describe("bad input: 400 naming the field, nothing stored", () => {
  beforeEach(() => setup());

  async function refused(body: unknown, field: RegExp, opts: { path?: string; headers?: typeof JSON_TYPE } = {}) {
    const r = await call(agentApp, "POST", opts.path ?? `/v2.6/agents/${UUID}`, body, opts.headers);
    assert.equal(r.status, 400, r.text);
    assert.deepEqual(r.json, { code: 400, status: registrarStatus.invalidData, results: {} });
    assert.match(r.error ?? "", field);
    assert.deepEqual(svc.store.listIds(), []);
    return r;
  }

  test("aik_tpm: truncated base64", async () => {
    const agent = await softAgent();
    await refused(agent.body({ aik_tpm: b64(agent.akTpm).slice(0, -2) }), /^aik_tpm: not base64/);
  });

  test("aik_tpm: a TPM2B_PUBLIC with trailing bytes, after it or inside its size", async () => {
    const agent = await softAgent();
    const after = new Uint8Array([...agent.akTpm, 0, 0]);
    await refused(agent.body({ aik_tpm: b64(after) }), /^aik_tpm: .*2 trailing bytes/);
    const inside = new Uint8Array([...agent.akTpm, 0]);
    inside[1]! += 1;
    await refused(agent.body({ aik_tpm: b64(inside) }), /^aik_tpm: /);
  });

  test("aik_tpm: not a restricted signing key", async () => {
    const base = softKey("ecc").pub;
    const unrestricted = { ...base, objectAttributes: base.objectAttributes & ~(1 << TPMA_OBJECT.bit.restricted) };
    const r = await refused(
      (await softAgent({ akPublic: unrestricted })).body(),
      /^aik_tpm: not a restricted signing key/,
    );
    assert.match(r.error!, /restricted is clear/);
    const decrypting = { ...base, objectAttributes: base.objectAttributes | (1 << TPMA_OBJECT.bit.decrypt) };
    await refused((await softAgent({ akPublic: decrypting })).body(), /^aik_tpm: .*decrypt is set/);
    const movable = { ...base, objectAttributes: base.objectAttributes & ~(1 << TPMA_OBJECT.bit.fixedTPM) };
    await refused((await softAgent({ akPublic: movable })).body(), /fixedTPM is clear/);
  });

  test("an empty JSON object: aik_tpm is required", async () => {
    await refused({}, /^aik_tpm: is required/);
  });

  test("ek_tpm missing, or not the key of ekcert", async () => {
    const agent = await softAgent();
    await refused(agent.body({ ek_tpm: undefined }), /^ek_tpm: is required/);
    const other = await softAgent();
    await refused(
      agent.body({ ek_tpm: b64(other.ekTpm) }),
      /^ek_tpm: must contain the same public key found in ekcert/,
    );
  });

  test("ekcert: not a certificate; or from a CA outside the trust store, naming its issuer", async () => {
    const agent = await softAgent();
    await refused(agent.body({ ekcert: "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----" }), /^ekcert: /);
    const stranger = await softAgent({ ca: await createCa("CN=Stranger TPM CA,O=Nobody") });
    await refused(stranger.body(), /^ekcert: issued by 'CN=Stranger TPM CA, O=Nobody'/);
  });

  test("a uuid with path characters", async () => {
    const agent = await softAgent();
    for (const id of ["a%2Fb", "a%20b", "-%0a", ".x", "x".repeat(81)]) {
      await refused(agent.body(), /^agent_id: /, { path: `/v2.6/agents/${id}` });
    }
    // ".." (also as %2E%2E) is a dot segment that URL parsing resolves before routing: no such route.
    for (const id of ["..", "%2E%2E"]) {
      assert.equal((await call(agentApp, "POST", `/v2.6/agents/${id}`, agent.body())).status, 404);
    }
    assert.deepEqual(svc.store.listIds(), []);
  });

  test("an oversized body", async () => {
    const agent = await softAgent();
    const r = await call(agentApp, "POST", `/v2.6/agents/${UUID}`, agent.body({ pad: "x".repeat(MAX_BODY_BYTES) }));
    assert.equal(r.status, 400);
    assert.match(r.error ?? "", /larger than/);
    assert.deepEqual(svc.store.listIds(), []);
  });

  test("a JSON content type with a non-JSON or empty body: bare 400 (upstream's Malformed Request Parameter)", async () => {
    for (const body of ["{not json", ""]) {
      const r = await call(agentApp, "POST", `/v2.6/agents/${UUID}`, body);
      assert.equal(r.status, 400);
      assert.equal(r.text, "");
    }
    // The same on a route without a body (keylime.md §0.5).
    assert.equal((await call(agentApp, "GET", "/version", undefined, JSON_TYPE)).status, 400);
    assert.deepEqual(svc.store.listIds(), []);
  });

  test("POST /agents without agent_id: bare 400 (upstream's action dispatch error)", async () => {
    const r = await call(agentApp, "POST", "/v2.6/agents", (await softAgent()).body());
    assert.equal(r.status, 400);
    assert.equal(r.text, "");
  });
});

/** A root TPM CA and an intermediate CA it issued, as a manufacturer's chain is. */
async function rootAndIntermediate() {
  const root = await createCa("CN=Root TPM CA");
  const keys = await newKeyPair();
  const cert = await issueCertificate(root, { subject: "CN=Intermediate TPM CA", publicKey: keys.publicKey, ca: true });
  return { root, intermediate: { cert, ...keys } };
}

describe("EK certificate chains", () => {
  test("an intermediate the agent sends links its EK certificate to a root in the store", async () => {
    const { root, intermediate } = await rootAndIntermediate();
    await setup();
    svc.ekTrust = EkTrustStore.fromPem(root.cert.toString("pem"));
    const chained = await softAgent({ ca: intermediate, chain: [intermediate.cert.toString("pem")] });
    await registerAndActivate(chained);
    assert.equal(svc.store.get(UUID)!.ek_trust, "trusted");
    // Only the EK certificate is kept, as upstream keeps the first certificate.
    const shown = await call(tenantApp, "GET", `/v2.6/agents/${UUID}`);
    assert.equal(
      shown.json.results.ekcert,
      chained.ekcert!.split("-----END CERTIFICATE-----")[0]!.replace(/-----[A-Z ]+-----|\s/g, ""),
    );
    // Without the intermediate, the EK certificate's issuer is named.
    const alone = await softAgent({ ca: intermediate });
    const r = await call(agentApp, "POST", "/v2.6/agents/alone", alone.body());
    assert.equal(r.status, 400);
    assert.match(r.error!, /^ekcert: issued by 'CN=Intermediate TPM CA'/);
  });
});

/** The PEM chain with the first certificate's last signature byte flipped (it still parses). */
function forgedLeaf(pem: string): string {
  const [leaf, ...rest] = fromPem(pem, "CERTIFICATE");
  const der = leaf!.slice();
  der[der.length - 1]! ^= 0x01;
  return [der, ...rest].map((d) => toPem("CERTIFICATE", d)).join("");
}

describe("EK certificate signatures are checked per certificate", () => {
  test("after a good certificate from the same CA, one whose own signature is wrong is refused", async () => {
    await setup();
    await registerAndActivate(await softAgent());
    const forged = await softAgent();
    const r = await call(agentApp, "POST", "/v2.6/agents/forged", forged.body({ ekcert: forgedLeaf(forged.ekcert!) }));
    assert.equal(r.status, 400);
    assert.match(r.error!, /^ekcert: issued by 'CN=keylime-ts test TPM CA'/);
    assert.equal(svc.store.get("forged"), undefined);
  });

  test("after a good chain through an intermediate, a leaf from it with a wrong signature is refused", async () => {
    const { root, intermediate } = await rootAndIntermediate();
    await setup();
    svc.ekTrust = EkTrustStore.fromPem(root.cert.toString("pem"));
    const chain = { ca: intermediate, chain: [intermediate.cert.toString("pem")] };
    await registerAndActivate(await softAgent(chain));
    const forged = await softAgent(chain);
    const r = await call(agentApp, "POST", "/v2.6/agents/forged", forged.body({ ekcert: forgedLeaf(forged.ekcert!) }));
    assert.equal(r.status, 400);
    assert.match(r.error!, /^ekcert: issued by 'CN=Intermediate TPM CA'/);
  });
});

describe("EK certificate trust options", () => {
  test("--allow-untrusted-ek stores the EK certificate flagged untrusted", async () => {
    await setup(true);
    const stranger = await softAgent({ ca: await createCa("CN=Stranger TPM CA") });
    await registerAndActivate(stranger);
    assert.equal(svc.store.get(UUID)!.ek_trust, "untrusted");
    assert.ok(logs.some((l) => l.includes("CN=Stranger TPM CA") && l.includes("untrusted")));
  });

  test("no EK certificate: registered as upstream does, flagged absent", async () => {
    await setup();
    await registerAndActivate(await softAgent({ ca: null }));
    const rec = svc.store.get(UUID)!;
    assert.equal(rec.ek_trust, "absent");
    assert.equal(rec.ekcert, null);
    const shown = await call(tenantApp, "GET", `/v2.6/agents/${UUID}`);
    assert.equal(shown.json.results.ekcert, undefined);
  });
});

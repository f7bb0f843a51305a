/**
 * The registrar's side of the NK certify extension (spec/nk-certify.md): the certify nonce, the checks of
 * step 5 in order, each broken exactly (400 naming it, no record left), the binding stored in SQLite and
 * shown to tenants, require_nk_certify, and the classic flow unchanged. The agent is a TPM agent on the
 * simulator: its AK certifies the NK loaded with TPM2_LoadExternal.
 */
import { after, before, beforeEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import { generateKeyPairSync, type KeyObject } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createRegistrarApp } from "../../src/registrar/app.ts";
import { EkTrustStore } from "../../src/registrar/ek_trust.ts";
import { DEFAULT_CERTIFY_NONCE_TTL, type RegistrarService } from "../../src/registrar/registration.ts";
import { openSqliteStore } from "../../src/registrar/store.ts";
import { createCa, issueCertificate } from "../../src/registrar/tls.ts";
import { verifyNkCertification } from "../../src/protocol/nk_certify.ts";
import { REGISTRAR_ERROR_HEADER, registrarStatus } from "../../src/protocol/registrar_api.ts";
import { TPM_RH } from "../../src/tpm/constants.ts";
import { certifySoftwareKey } from "../../src/tpm/certify.ts";
import { encode } from "../../src/tpm/marshal.ts";
import { createPrimary, flush } from "../../src/tpm/objects.ts";
import { TPM2B_PUBLIC, TPMT_SIGNATURE } from "../../src/tpm/structures.ts";
import { akTemplate } from "../../src/tpm/templates.ts";
import { fromBase64, toBase64 } from "../../src/util/encoding.ts";
import { startTestTpm, type TestTpm } from "../helpers/agent_tpm.ts";
import { softEkCa, type TestAgent, tpmAgent } from "../helpers/registrar_agents.ts";

const UUID = "0a1b2c3d-0000-4000-8000-00000000aa01";
const JSON_TYPE = { "Content-Type": "application/json" };
const spkiPem = (k: KeyObject) => k.export({ format: "pem", type: "spki" }).toString();

let t: TestTpm;
let agent: TestAgent;
let dir: string;
let svc: RegistrarService;
let clock: number;
let agentApp: ReturnType<typeof createRegistrarApp>;
let tenantApp: ReturnType<typeof createRegistrarApp>;
/** The agent's mTLS key pair and its certificate. */
let mtls: { keys: { publicKey: KeyObject; privateKey: KeyObject }; pem: string };

before(async () => {
  t = await startTestTpm("sim");
  agent = await tpmAgent(t.tpm, "rsa");
  dir = mkdtempSync(join(tmpdir(), "registrar-nk-"));
  const keys = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const ca = await createCa("CN=agent test CA");
  const cert = await issueCertificate(ca, {
    subject: `CN=${UUID}`,
    publicKey: new Uint8Array(keys.publicKey.export({ format: "der", type: "spki" })),
  });
  mtls = { keys, pem: cert.toString("pem") };
});

after(async () => {
  svc?.store.close();
  await agent.close();
  await t.stop();
  rmSync(dir, { recursive: true, force: true });
});

let storeN = 0;
async function setup(nkCertify: RegistrarService["nkCertify"] = {}) {
  svc?.store.close();
  clock = Date.parse("2026-12-01T12:00:00Z");
  svc = {
    store: await openSqliteStore(join(dir, `r${storeN++}.sqlite`)),
    ekTrust: EkTrustStore.fromPem((await softEkCa()).cert.toString("pem")),
    allowUntrustedEk: true,
    log: () => {},
    nkCertify,
    now: () => clock,
  };
  agentApp = createRegistrarApp(svc, { tls: false });
  tenantApp = createRegistrarApp(svc, { tls: true });
}

async function call(app: typeof agentApp, method: string, path: string, body?: unknown) {
  const res = await app.request(path, {
    method,
    ...(body === undefined ? {} : { headers: JSON_TYPE, body: JSON.stringify(body) }),
  });
  const text = await res.text();
  return {
    status: res.status,
    json: text ? JSON.parse(text) : undefined,
    error: res.headers.get(REGISTRAR_ERROR_HEADER),
  };
}

interface Registered {
  blob: Uint8Array;
  nonce: Uint8Array | undefined;
  authTag: string;
}

async function register(extra: Record<string, unknown>): Promise<Registered> {
  const r = await call(agentApp, "POST", `/v2.6/agents/${UUID}`, agent.body(extra));
  assert.equal(r.status, 200, JSON.stringify(r));
  const blob = fromBase64(r.json.results.blob);
  const nonce = r.json.results.certify_nonce === undefined ? undefined : fromBase64(r.json.results.certify_nonce);
  return { blob, nonce, authTag: await agent.answer(blob, UUID) };
}

const withMtls = { nk_certify: 1, mtls_cert: () => mtls.pem };
const registerMtls = () => register({ nk_certify: withMtls.nk_certify, mtls_cert: withMtls.mtls_cert() });
const activate = (body: Record<string, unknown>) => call(agentApp, "PUT", `/v2.6/agents/${UUID}/activate`, body);

/** 400 naming `check`, and nothing left of the agent. */
function refusedAs(r: Awaited<ReturnType<typeof call>>, check: string, detail?: RegExp) {
  assert.equal(r.status, 400, JSON.stringify(r));
  assert.match(r.json.status, new RegExp(`^NK certification failed \\(${check}\\)`));
  assert.match(r.json.status, /deleted from the database/);
  if (detail) assert.match(r.json.status, detail);
  assert.deepEqual(r.json.results, {});
  assert.equal(svc.store.get(UUID), undefined, "the pending record is deleted");
}

describe("registrar: NK certification at activation", () => {
  beforeEach(() => setup());

  test("mTLS on: the nonce is 32 fresh bytes; the certified mTLS key activates; the tenant sees the binding", async () => {
    const reg = await registerMtls();
    assert.equal(reg.nonce?.length, 32);
    assert.notDeepEqual((await registerMtls()).nonce, reg.nonce, "each registration draws a new nonce");
    const again = await registerMtls();
    const nk = await agent.certifyNk!(mtls.keys.privateKey, again.nonce!);
    const r = await activate({ auth_tag: again.authTag, ...nk });
    assert.equal(r.status, 200, JSON.stringify(r));
    const shown = (await call(tenantApp, "GET", `/v2.6/agents/${UUID}`)).json.results;
    assert.equal(shown.nk_tpm, nk.nk_tpm);
    assert.equal(shown.nk_attest, nk.nk_attest);
    assert.equal(shown.nk_sign, nk.nk_sign);
    assert.equal(shown.certify_nonce, toBase64(again.nonce!));
    assert.equal(shown.nk_verified_at, new Date(clock).toISOString());
    // A tenant checks the stored binding again with the same module.
    const v = verifyNkCertification({
      nkTpm: fromBase64(shown.nk_tpm),
      nkAttest: fromBase64(shown.nk_attest),
      nkSign: fromBase64(shown.nk_sign),
      akTpm: fromBase64(shown.aik_tpm),
      nonce: fromBase64(shown.certify_nonce),
      expectedKey: shown.mtls_cert,
    });
    assert.ok(v.nkKey.equals(mtls.keys.publicKey));
  });

  for (const kind of ["rsa", "ec"] as const) {
    test(`mTLS off: an ${kind.toUpperCase()} transport_key, certified, activates and is shown`, async () => {
      const keys = kind === "rsa"
        ? generateKeyPairSync("rsa", { modulusLength: 2048 })
        : generateKeyPairSync("ec", { namedCurve: "P-256" });
      const reg = await register({ nk_certify: 1, mtls_cert: "disabled", transport_key: spkiPem(keys.publicKey) });
      const nk = await agent.certifyNk!(keys.privateKey, reg.nonce!, kind === "rsa" ? "decrypt" : "sign");
      assert.equal((await activate({ auth_tag: reg.authTag, ...nk })).status, 200);
      const shown = (await call(tenantApp, "GET", `/v2.6/agents/${UUID}`)).json.results;
      assert.equal(shown.transport_key, spkiPem(keys.publicKey));
      assert.equal(shown.nk_tpm, nk.nk_tpm);
    });
  }

  test("check 1 (auth_tag) runs first: a wrong tag with a good certification deletes the record", async () => {
    const reg = await registerMtls();
    const nk = await agent.certifyNk!(mtls.keys.privateKey, reg.nonce!);
    const r = await activate({ auth_tag: "0".repeat(96), ...nk });
    assert.equal(r.status, 400);
    assert.match(r.json.status, /^Auth tag '0+' for agent .* does not match/);
    assert.equal(svc.store.get(UUID), undefined);
  });

  test("check 2 (nonce): a replayed activation, its nonce used", async () => {
    const reg = await registerMtls();
    const body = { auth_tag: reg.authTag, ...await agent.certifyNk!(mtls.keys.privateKey, reg.nonce!) };
    assert.equal((await activate(body)).status, 200);
    refusedAs(await activate(body), "nonce", /already used/);
  });

  test("check 2 (nonce): expired after certify_nonce_ttl", async () => {
    await setup({ nonceTtl: 60 });
    const reg = await registerMtls();
    const nk = await agent.certifyNk!(mtls.keys.privateKey, reg.nonce!);
    clock += 61_000;
    refusedAs(await activate({ auth_tag: reg.authTag, ...nk }), "nonce", /expired/);
  });

  test(`check 2 (nonce): valid up to the default ${DEFAULT_CERTIFY_NONCE_TTL} s, expired after`, async () => {
    const reg = await registerMtls();
    const nk = await agent.certifyNk!(mtls.keys.privateKey, reg.nonce!);
    clock += DEFAULT_CERTIFY_NONCE_TTL * 1000 + 1;
    refusedAs(await activate({ auth_tag: reg.authTag, ...nk }), "nonce", /expired/);
    const again = await registerMtls();
    const nk2 = await agent.certifyNk!(mtls.keys.privateKey, again.nonce!);
    clock += DEFAULT_CERTIFY_NONCE_TTL * 1000;
    assert.equal((await activate({ auth_tag: again.authTag, ...nk2 })).status, 200);
  });

  test("check 2 (nonce): a certification after a classic registration (no nonce issued)", async () => {
    const reg = await register({ mtls_cert: mtls.pem });
    assert.equal(reg.nonce, undefined);
    const nk = await agent.certifyNk!(mtls.keys.privateKey, new Uint8Array(32));
    refusedAs(await activate({ auth_tag: reg.authTag, ...nk }), "nonce", /no certify nonce/);
  });

  test("check 3 (attest): certified over another nonce; or no certification sent", async () => {
    const reg = await registerMtls();
    const nk = await agent.certifyNk!(mtls.keys.privateKey, new Uint8Array(32).fill(1));
    refusedAs(await activate({ auth_tag: reg.authTag, ...nk }), "attest", /extraData/);
    const again = await registerMtls();
    refusedAs(await activate({ auth_tag: again.authTag }), "attest", /required/);
  });

  test("check 4 (name): the attestation of another key with the NK's nk_tpm", async () => {
    const reg = await registerMtls();
    const mine = await agent.certifyNk!(mtls.keys.privateKey, reg.nonce!);
    const other = await agent.certifyNk!(generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey, reg.nonce!);
    refusedAs(await activate({ auth_tag: reg.authTag, ...other, nk_tpm: mine.nk_tpm }), "name");
  });

  test("check 5 (signature): certified by another AK of the same TPM", async () => {
    const reg = await registerMtls();
    const otherAk = await createPrimary(t.tpm, TPM_RH.OWNER, akTemplate());
    try {
      const c = await certifySoftwareKey(t.tpm, mtls.keys.privateKey, otherAk, reg.nonce!);
      const nk = {
        nk_tpm: toBase64(encode(TPM2B_PUBLIC, c.public)),
        nk_attest: toBase64(c.attest),
        nk_sign: toBase64(encode(TPMT_SIGNATURE, c.signature)),
      };
      refusedAs(await activate({ auth_tag: reg.authTag, ...nk }), "signature", /does not verify/);
    } finally {
      await flush(t.tpm, otherAk.handle);
    }
  });

  test("check 6 (key): a certified NK that is not the mTLS certificate's key, nor the transport_key", async () => {
    const reg = await registerMtls();
    const nk = await agent.certifyNk!(generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey, reg.nonce!);
    refusedAs(await activate({ auth_tag: reg.authTag, ...nk }), "key");
    const transport = generateKeyPairSync("rsa", { modulusLength: 2048 });
    const off = await register({ nk_certify: 1, mtls_cert: "disabled", transport_key: spkiPem(transport.publicKey) });
    const wrong = await agent.certifyNk!(mtls.keys.privateKey, off.nonce!);
    refusedAs(await activate({ auth_tag: off.authTag, ...wrong }), "key");
  });
});

describe("registrar: registration with and without nk_certify", () => {
  beforeEach(() => setup());

  test("a classic registration gets no nonce and activates with auth_tag alone", async () => {
    const reg = await register({});
    assert.equal(reg.nonce, undefined);
    assert.equal((await activate({ auth_tag: reg.authTag })).status, 200);
    const shown = (await call(tenantApp, "GET", `/v2.6/agents/${UUID}`)).json.results;
    assert.equal(shown.nk_tpm, undefined);
    assert.equal(shown.certify_nonce, undefined);
  });

  test("require_nk_certify refuses a classic registration, naming nk_certify, and stores nothing", async () => {
    await setup({ require: true });
    const r = await call(agentApp, "POST", `/v2.6/agents/${UUID}`, agent.body());
    assert.equal(r.status, 400);
    assert.equal(r.json.status, registrarStatus.invalidData);
    assert.match(r.error!, /^nk_certify: is required/);
    assert.equal(svc.store.get(UUID), undefined);
    assert.ok((await registerMtls()).nonce, "with nk_certify it registers");
  });

  test("nk_certify with mTLS off needs an RSA-2048 or EC P-256 transport_key", async () => {
    const post = (extra: Record<string, unknown>) => call(agentApp, "POST", `/v2.6/agents/${UUID}`, agent.body(extra));
    let r = await post({ nk_certify: 1, mtls_cert: "disabled" });
    assert.equal(r.status, 400);
    assert.match(r.error!, /^transport_key: is required/);
    r = await post({ nk_certify: 1, mtls_cert: "disabled", transport_key: "junk" });
    assert.match(r.error!, /^transport_key: not a PEM public key/);
    const small = generateKeyPairSync("rsa", { modulusLength: 1024 }).publicKey;
    r = await post({ nk_certify: 1, mtls_cert: "disabled", transport_key: spkiPem(small) });
    assert.match(r.error!, /^transport_key: must be an RSA-2048 or EC P-256/);
    r = await post({ nk_certify: 1, mtls_cert: undefined });
    assert.match(r.error!, /^mtls_cert: is required with nk_certify/);
    assert.equal(svc.store.get(UUID), undefined);
  });
});

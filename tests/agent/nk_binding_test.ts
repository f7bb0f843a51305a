/**
 * The agent's identity proofs by nk_binding (spec/nk-certify.md, "Identity proof"), through app.request over
 * the simulator: quotes/identity?binding=certify verifies with the caller's nonce through nk_certify.ts and
 * leaves no object loaded; with nk_binding = certify PCR 16 is never reset nor extended and the classic
 * identity quote answers 400; with pcr16 the certification answers 400; both gives both.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createAgentApp } from "../../src/agent/app.ts";
import { agentRoutePath, agentRoutes, agentStatus, type NkBindingMode } from "../../src/protocol/agent_api.ts";
import { identityNonceBytes, NkCertifyError, verifyNkCertification } from "../../src/protocol/nk_certify.ts";
import { TPM_ALG, TPM_HT } from "../../src/tpm/constants.ts";
import { getHandles } from "../../src/tpm/capabilities.ts";
import { pcrExtend, pcrRead, pcrSelection } from "../../src/tpm/pcrs.ts";
import type { Tpm } from "../../src/tpm/client.ts";
import { type AgentAppFixture, agentAppFixture } from "../helpers/agent_app.ts";
import { startedSim } from "../helpers/sim.ts";
import { ALL_HANDLERS } from "../../simulator/handlers/all.ts";

const certifyPath = (nonce: string, version = "2.6" as const) =>
  agentRoutePath(agentRoutes.identityCertify, version, { nonce, binding: "certify" });
const quotePath = (nonce: string) => agentRoutePath(agentRoutes.identityQuote, "2.6", { nonce });

async function get(app: ReturnType<typeof createAgentApp>, path: string) {
  const res = await app.request(path);
  return { status: res.status, json: await res.json() };
}

async function pcr16(tpm: Tpm): Promise<Uint8Array> {
  const r = await pcrRead(tpm, [pcrSelection(TPM_ALG.SHA256, [16])]);
  return r.values.get(TPM_ALG.SHA256)!.get(16)!;
}

/** A fixture on its own simulator whose PCR 16 was extended with a marker before the agent started. */
async function withBinding(binding: NkBindingMode) {
  const sim = await startedSim(ALL_HANDLERS);
  await pcrExtend(sim.tpm, 16, [{ hashAlg: TPM_ALG.SHA256, digest: new Uint8Array(32).fill(0xab) }]);
  const marked = await pcr16(sim.tpm);
  const fx = await agentAppFixture({ tpm: sim.tpm, nkBinding: binding });
  return { fx, app: createAgentApp(fx.deps), marked, stop: () => sim.engine.close() };
}

describe("nk_binding = both (the default)", () => {
  let fx: AgentAppFixture;
  let app: ReturnType<typeof createAgentApp>;
  let stop: () => Promise<void>;
  before(async () => ({ fx, app, stop } = await withBinding("both")));
  after(() => stop());

  test("binding=certify: a fresh certification by the AK over the caller's nonce, checked by nk_certify.ts", async () => {
    const a = await get(app, certifyPath("callerNonce42"));
    assert.equal(a.status, 200, JSON.stringify(a.json));
    const r = agentRoutes.identityCertify.results.parse(a.json.results);
    assert.deepEqual(Object.keys(a.json.results).sort(), [
      "enc_alg",
      "hash_alg",
      "nk_attest",
      "nk_sign",
      "nk_tpm",
      "pubkey",
      "sign_alg",
    ]);
    assert.equal(r.hash_alg, "sha256");
    assert.equal(r.sign_alg, "rsassa");
    assert.equal(r.enc_alg, "rsa2048");
    assert.equal(r.pubkey, fx.nkPem);
    const input = {
      nkTpm: r.nk_tpm,
      nkAttest: r.nk_attest,
      nkSign: r.nk_sign,
      akTpm: fx.ak.public,
      nonce: identityNonceBytes("callerNonce42"),
      expectedKey: r.pubkey,
    };
    assert.ok(verifyNkCertification(input).nkKey);
    // The answer is for this nonce only.
    assert.throws(
      () => verifyNkCertification({ ...input, nonce: identityNonceBytes("otherNonce") }),
      (e: unknown) => e instanceof NkCertifyError && e.check === "attest",
    );
    const again = agentRoutes.identityCertify.results.parse(
      (await get(app, certifyPath("callerNonce42"))).json.results,
    );
    assert.notDeepEqual(again.nk_attest, r.nk_attest, "each request is a new certification");
    // Before 2.5 enc_alg is unqualified, as for quotes.
    assert.equal((await get(app, certifyPath("n1", "2.1" as "2.6"))).json.results.enc_alg, "rsa");
  });

  test("the NK is loaded for the certification only: the same transient objects before and after", async () => {
    const before = await getHandles(fx.tpm, (TPM_HT.TRANSIENT << 24) >>> 0);
    assert.equal((await get(app, certifyPath("abc"))).status, 200);
    assert.deepEqual(await getHandles(fx.tpm, (TPM_HT.TRANSIENT << 24) >>> 0), before);
  });

  test("the classic identity quote still answers, binding=pcr16 too; another binding is a 400 naming it", async () => {
    assert.equal((await get(app, quotePath("abc"))).status, 200);
    assert.equal((await get(app, quotePath("abc") + "&binding=pcr16")).status, 200);
    const bad = await get(app, quotePath("abc") + "&binding=tpm");
    assert.equal(bad.status, 400);
    assert.match(bad.json.status, /^binding: /);
    const noNonce = await get(app, "/v2.6/quotes/identity?binding=certify");
    assert.equal(noNonce.status, 400);
    assert.match(noNonce.json.status, /^nonce: is required/);
  });
});

describe("nk_binding = certify", () => {
  let fx: AgentAppFixture;
  let app: ReturnType<typeof createAgentApp>;
  let marked: Uint8Array;
  let stop: () => Promise<void>;
  before(async () => ({ fx, app, marked, stop } = await withBinding("certify")));
  after(() => stop());

  test("PCR 16 is never reset nor extended; the classic identity quote answers 400", async () => {
    const q = await get(app, quotePath("abc"));
    assert.equal(q.status, 400);
    assert.equal(q.json.status, agentStatus.identityBindingIs("certify"));
    assert.equal(q.json.status, "identity binding is certify");
    assert.deepEqual(q.json.results, {});
    assert.equal((await get(app, certifyPath("abc"))).status, 200);
    const integrity = agentRoutePath(agentRoutes.integrityQuote, "2.6", { nonce: "n", mask: 0x1, partial: false });
    assert.equal((await get(app, integrity)).status, 200, "integrity quotes are served");
    assert.deepEqual(await pcr16(fx.tpm), marked, "PCR 16 holds what it held before the agent");
  });
});

describe("nk_binding = pcr16", () => {
  let app: ReturnType<typeof createAgentApp>;
  let stop: () => Promise<void>;
  before(async () => ({ app, stop } = await withBinding("pcr16")));
  after(() => stop());

  test("binding=certify answers 400; the classic identity quote answers", async () => {
    const c = await get(app, certifyPath("abc"));
    assert.equal(c.status, 400);
    assert.equal(c.json.status, "identity binding is pcr16");
    assert.equal((await get(app, quotePath("abc"))).status, 200);
  });
});

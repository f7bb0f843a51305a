/**
 * The agent's app through app.request over the simulator in process: every route in every version, the
 * envelope, validation, the scope rules, keys and revocations handed on after the answer, the error funnel.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { createAgentApp } from "../../src/agent/app.ts";
import {
  agentRoutePath,
  agentRoutes,
  agentStatus,
  resourceScopeAnswers,
  versionScopeAnswers,
} from "../../src/protocol/agent_api.ts";
import { AGENT_SUPPORTED_VERSIONS, type ApiVersion } from "../../src/protocol/api_version.ts";
import { importNkPublicKey, tenantKeyRequests, verifyHmac } from "../../src/protocol/payload.ts";
import { verifyQuote } from "../../src/protocol/quote.ts";
import { TPM_ALG } from "../../src/tpm/constants.ts";
import { PcrsUnstableError } from "../../src/tpm/errors.ts";
import { flush } from "../../src/tpm/objects.ts";
import { toBase64 } from "../../src/util/encoding.ts";
import { type AgentAppFixture, agentAppFixture, TEST_UUID } from "../helpers/agent_app.ts";

interface Answer {
  status: number;
  json: { code: number; status: string; results: Record<string, unknown> };
  text: string;
  headers: Headers;
}

type App = ReturnType<typeof createAgentApp>;

async function call(app: App, path: string, init?: RequestInit): Promise<Answer> {
  const res = await app.request(path, init);
  const text = await res.text();
  return { status: res.status, json: JSON.parse(text), text, headers: res.headers };
}

const post = (body: unknown): RequestInit => ({
  method: "POST",
  headers: { "Content-Type": "application/json" },
  body: typeof body === "string" ? body : JSON.stringify(body),
});

/** PCR 16 after reset and one extend with H(pem). */
function expectedPcr16(pem: string): Buffer {
  const h = createHash("sha256").update(pem).digest();
  return createHash("sha256").update(Buffer.concat([Buffer.alloc(32), h])).digest();
}

let fx: AgentAppFixture;
let app: App;
before(async () => {
  fx = await agentAppFixture();
  app = createAgentApp(fx.deps);
});
after(() => fx.stop());

describe("/version", () => {
  test("lists the enabled versions, the newest as supported_version", async () => {
    const a = await call(app, "/version");
    assert.equal(a.status, 200);
    assert.deepEqual(a.json, {
      code: 200,
      status: "Success",
      results: { supported_version: "2.6", supported_versions: [...AGENT_SUPPORTED_VERSIONS] },
    });
    const some = createAgentApp({ ...fx.deps, versions: ["2.2", "2.1"] });
    assert.deepEqual((await call(some, "/version")).json.results, {
      supported_version: "2.2",
      supported_versions: ["2.1", "2.2"],
    });
  });
});

describe("quotes/identity", () => {
  for (const version of AGENT_SUPPORTED_VERSIONS) {
    test(`v${version}: a quote of PCR 16 holding the NK, with the NK`, async () => {
      const nonce = `n${version.replace(".", "")}abcdefghijklmnop`;
      const a = await call(app, agentRoutePath(agentRoutes.identityQuote, version, { nonce }));
      assert.equal(a.status, 200, a.text);
      const r = a.json.results;
      assert.equal(r.hash_alg, "sha256");
      assert.equal(r.sign_alg, "rsassa");
      assert.equal(r.enc_alg, version >= "2.5" ? "rsa2048" : "rsa");
      assert.equal(r.pubkey, fx.nkPem);
      assert.ok(!a.text.includes("null"));
      assert.deepEqual(Object.keys(r).sort(), ["enc_alg", "hash_alg", "pubkey", "quote", "sign_alg"]);
      const v = verifyQuote({ quote: r.quote as string, nonce, hashAlg: TPM_ALG.SHA256, akPublic: fx.ak.public });
      assert.deepEqual([...v.pcrs.keys()], [16]);
      assert.deepEqual(Buffer.from(v.pcrs.get(16)!), expectedPcr16(fx.nkPem));
    });
  }

  test("the nonce is required, 1 to 64 alphanumerics", async () => {
    for (const q of ["", "?nonce=", "?nonce=abc-def", `?nonce=${"a".repeat(65)}`, "?nonce=ab%20c"]) {
      const a = await call(app, `/v2.2/quotes/identity${q}`);
      assert.equal(a.status, 400, q);
      assert.match(a.json.status, /^nonce: /, q);
      assert.deepEqual(a.json.results, {});
    }
    assert.equal((await call(app, `/v2.2/quotes/identity?nonce=${"a".repeat(64)}`)).status, 200);
  });
});

async function* oneChunk(text: string) {
  yield new TextEncoder().encode(text);
}

describe("quotes/integrity", () => {
  const measurements = {
    ima: (entry: number) => Promise.resolve({ entry, chunks: () => oneChunk("line2\n") }),
    measuredBoot: () => Promise.resolve(new Uint8Array([1, 2, 3])),
  };

  test("covers the mask and PCR 16; pubkey only with partial=0", async () => {
    const nonce = "integrity1";
    const path = (partial: boolean) =>
      agentRoutePath(agentRoutes.integrityQuote, "2.1", { nonce, mask: 0x400, partial });
    const full = await call(app, path(false));
    assert.equal(full.status, 200, full.text);
    assert.equal(full.json.results.pubkey, fx.nkPem);
    const v = verifyQuote({
      quote: full.json.results.quote as string,
      nonce,
      hashAlg: TPM_ALG.SHA256,
      akPublic: fx.ak.public,
    });
    assert.deepEqual([...v.pcrs.keys()], [10, 16]);
    const partial = await call(app, path(true));
    assert.equal(partial.status, 200);
    assert.equal(partial.json.results.pubkey, undefined);
    // No measurement source: no list fields at all.
    assert.deepEqual(Object.keys(partial.json.results).sort(), ["enc_alg", "hash_alg", "quote", "sign_alg"]);
  });

  test("the IMA list from ima_ml_entry; the UEFI log only when PCR 0 is in the mask", async () => {
    const m = createAgentApp({ ...fx.deps, quotes: { ...fx.deps.quotes, measurements } });
    const withBoot = await call(m, "/v2.2/quotes/integrity?nonce=abc&mask=0x401&partial=1&ima_ml_entry=7");
    assert.equal(withBoot.status, 200, withBoot.text);
    assert.equal(withBoot.json.results.ima_measurement_list, "line2\n");
    assert.equal(withBoot.json.results.ima_measurement_list_entry, 7);
    assert.equal(withBoot.json.results.mb_measurement_list, toBase64(new Uint8Array([1, 2, 3])));
    const noBoot = await call(m, "/v2.2/quotes/integrity?nonce=abc&mask=0x400&partial=1&ima_ml_entry=x");
    assert.equal(noBoot.json.results.mb_measurement_list, undefined);
    assert.equal(noBoot.json.results.ima_measurement_list_entry, 0);
  });

  test("mask, partial and nonce are checked", async () => {
    const bad = [
      ["nonce=abc&mask=0x400", /^partial: /],
      ["nonce=abc&mask=0x400&partial=2", /^partial: /],
      ["nonce=abc&mask=0x1g&partial=1", /^mask: /],
      ["nonce=abc&mask=0x100000000&partial=1", /^mask: /],
      ["nonce=abc&mask=-1&partial=1", /^mask: /],
      ["mask=0x400&partial=1", /^nonce: /],
      ["nonce=a.b&mask=0x400&partial=1", /^nonce: /],
    ] as const;
    for (const [q, re] of bad) {
      const a = await call(app, `/v2.3/quotes/integrity?${q}`);
      assert.equal(a.status, 400, q);
      assert.match(a.json.status, re, q);
    }
  });
});

describe("keys", () => {
  test("pubkey answers the NK", async () => {
    const a = await call(app, "/v2.1/keys/pubkey");
    assert.deepEqual(a.json, { code: 200, status: "Success", results: { pubkey: fx.nkPem } });
  });

  test("U then V derive K and run the payload; keys/verify answers its HMAC; a wrong auth_tag derives nothing", async () => {
    const bk = await fx.newKeys();
    const keys = createAgentApp({ ...fx.deps, keys: { ...fx.deps.keys, keys: bk } });
    const verify = "/v2.2/keys/verify?challenge=abcdefghij0123456789";
    const early = await call(keys, verify);
    assert.equal(early.status, 400);
    assert.equal(early.json.status, agentStatus.bootstrapKeyNotAvailable);
    assert.equal((await call(keys, "/v2.2/keys/verify")).json.status, agentStatus.noChallenge);

    const nk = await importNkPublicKey(fx.nkPem);
    const n = fx.stored.length;
    const wrong = await tenantKeyRequests(nk, "another-uuid", { payload: new TextEncoder().encode("no") });
    const wu = await call(keys, "/v2.2/keys/ukey", post(agentRoutes.ukey.body.toJson(wrong.ukey)));
    assert.equal(wu.status, 200, wu.text);
    assert.equal((await call(keys, "/v2.2/keys/vkey", post(agentRoutes.vkey.body.toJson(wrong.vkey)))).status, 200);
    await bk.idle();
    assert.equal(fx.stored.length, n);
    assert.equal((await call(keys, verify)).status, 400);

    const good = await tenantKeyRequests(nk, TEST_UUID, { payload: new TextEncoder().encode("hello") });
    assert.equal((await call(keys, "/v2.2/keys/vkey", post(agentRoutes.vkey.body.toJson(good.vkey)))).status, 200);
    assert.equal((await call(keys, "/v2.2/keys/ukey", post(agentRoutes.ukey.body.toJson(good.ukey)))).status, 200);
    const a = await call(keys, verify);
    assert.equal(a.status, 200);
    assert.equal(a.json.results.hmac, verifyHmac(good.key.k, "abcdefghij0123456789"));
    await bk.idle();
    assert.equal(fx.stored.length, n + 1);
    assert.equal(readFileSync(join(fx.stored.at(-1)!.unzipped, "decrypted_payload"), "utf8"), "hello");
  });

  test("bodies are checked: JSON, fields, decryption", async () => {
    const nk = await importNkPublicKey(fx.nkPem);
    const good = await tenantKeyRequests(nk, TEST_UUID);
    const ukey = agentRoutes.ukey.body.toJson(good.ukey) as Record<string, string>;
    const cases: [string, unknown, RegExp][] = [
      ["/v2.2/keys/ukey", "{not json", /not JSON/],
      ["/v2.2/keys/ukey", { encrypted_key: ukey.encrypted_key }, /^auth_tag: is required/],
      ["/v2.2/keys/ukey", { ...ukey, auth_tag: "ab" }, /auth_tag is 1 bytes/],
      ["/v2.2/keys/ukey", { ...ukey, encrypted_key: "AAAA" }, /does not decrypt/],
      ["/v2.2/keys/ukey", { ...ukey, payload: "***" }, /^payload: /],
      ["/v2.2/keys/vkey", { encrypted_key: 5 }, /^encrypted_key: /],
    ];
    for (const [path, body, re] of cases) {
      const a = await call(app, path, post(body));
      assert.equal(a.status, 400, JSON.stringify(body));
      assert.match(a.json.status, re);
    }
  });
});

describe("agent/info", () => {
  test("from 2.2: uuid, algorithms and the AK handle; 2.1 does not have it", async () => {
    for (const version of ["2.2", "2.5"] as ApiVersion[]) {
      const a = await call(app, `/v${version}/agent/info`);
      assert.deepEqual(a.json.results, {
        agent_uuid: TEST_UUID,
        tpm_hash_alg: "sha256",
        tpm_enc_alg: version === "2.5" ? "rsa2048" : "rsa",
        tpm_sign_alg: "rsassa",
        ak_handle: fx.ak.handle,
      });
    }
    const again = await call(app, "/v2.2/agent/info");
    assert.equal(again.json.results.ak_handle, fx.ak.handle, "the same handle on every call");
    const old = await call(app, "/v2.1/agent/info");
    assert.equal(old.status, 400);
    assert.equal(old.json.status, versionScopeAnswers.get);
  });
});

describe("notifications/revocation", () => {
  test("a well-formed body is handed on; a malformed one is 400", async () => {
    const n = fx.revocations.length;
    const ok = await call(app, "/v2.2/notifications/revocation", post({ msg: "{}", signature: "AAAA" }));
    assert.equal(ok.status, 200);
    assert.equal(fx.revocations.length, n + 1);
    assert.equal(fx.revocations.at(-1)!.msg, "{}");
    const bad = await call(app, "/v2.2/notifications/revocation", post({ msg: "{}" }));
    assert.equal(bad.status, 400);
    assert.match(bad.json.status, /^signature: is required/);
    assert.equal(fx.revocations.length, n + 1);
  });
});

describe("scope rules", () => {
  test("inside /vX.Y, outside the resource scopes: unknown GET and POST 400, other methods 405 with Allow", async () => {
    const g = await call(app, "/v2.2/nothing/here");
    assert.deepEqual([g.status, g.json.status], [400, versionScopeAnswers.get]);
    const p = await call(app, "/v2.2/nothing", post({}));
    assert.deepEqual([p.status, p.json.status], [400, versionScopeAnswers.post]);
    const d = await call(app, "/v2.2/nothing", { method: "DELETE" });
    assert.deepEqual([d.status, d.json.status, d.headers.get("allow")], [405, "Method is not supported", "GET, POST"]);
  });

  test("each resource scope answers as rust-keylime's default handler of that scope", async () => {
    const cases: [string, RequestInit | undefined, number, string, string | null][] = [
      [
        "/v2.2/quotes/nothing",
        undefined,
        400,
        "URI not supported, only /identity and /integrity are supported for GET in /quotes/ interface",
        null,
      ],
      ["/v2.2/quotes/identity", post({}), 405, "Method is not supported in /quotes/ interface", "GET"],
      [
        "/v2.5/keys/nothing",
        undefined,
        400,
        "URI not supported, only /pubkey and /verify are supported for GET in /keys interface",
        null,
      ],
      [
        "/v2.5/keys/pubkey",
        post({}),
        400,
        "URI not supported, only /ukey and /vkey are supported for POST in /keys interface",
        null,
      ],
      ["/v2.2/keys/pubkey", { method: "DELETE" }, 405, "Method is not supported in /keys interface", "GET, POST"],
      [
        "/v2.2/notifications/nothing",
        post({}),
        400,
        "URI not supported, only /revocation is supported for POST in /notifications/ interface",
        null,
      ],
      [
        "/v2.2/notifications/revocation",
        undefined,
        405,
        "Method is not supported in /notifications/ interface",
        "POST",
      ],
      [
        "/v2.2/agent/nothing",
        undefined,
        400,
        "URI not supported, only /info is supported for GET in /agent interface",
        null,
      ],
      ["/v2.2/agent/info", post({}), 405, "Method is not supported in /agent interface", "GET"],
      // 2.1 has no /agent scope: the version scope answers.
      ["/v2.1/agent/info", post({}), 400, versionScopeAnswers.post!, null],
    ];
    for (const [path, init, status, text, allow] of cases) {
      const a = await call(app, path, init);
      assert.deepEqual(
        [a.status, a.json.code, a.json.status, a.headers.get("allow")],
        [status, status, text, allow],
        `${init?.method ?? "GET"} ${path}`,
      );
    }
    assert.equal(resourceScopeAnswers.quotes!.allow, "GET");
  });

  test("outside /version and every /vX.Y: rust-keylime's app default, naming the newest version", async () => {
    const newest = (await call(app, "/version")).json.results.supported_version;
    const g = await call(app, "/nothing");
    assert.deepEqual([g.status, g.json.status], [400, `Not Implemented: Use /version or /v${newest} interfaces`]);
    const p = await call(app, "/", post({}));
    assert.deepEqual([p.status, p.json.status], [400, `Not Implemented: Use /v${newest} interface`]);
    const d = await call(app, "/version", { method: "PUT" });
    assert.deepEqual([d.status, d.json.status, d.headers.get("allow")], [405, "Method is not supported", "GET, POST"]);
  });

  test("a version not enabled: 400 API version not supported", async () => {
    const only = createAgentApp({ ...fx.deps, versions: ["2.1"] });
    for (const v of ["v500.440", "v2.2", "v3.0"]) {
      const a = await call(only, `/${v}/quotes/identity?nonce=abc`);
      assert.equal(a.status, 400);
      assert.equal(a.json.status, `API version not supported: ${v}`);
    }
    assert.equal((await call(only, "/v2.1/keys/pubkey")).status, 200);
  });

  test("a version without its minor (/v2/...): outside every scope, as upstream's /v{major}.{minor} route", async () => {
    const newest = (await call(app, "/version")).json.results.supported_version;
    for (const path of ["/v2/quotes/identity?nonce=abc", "/v2", "/v3/keys/pubkey"]) {
      const g = await call(app, path);
      assert.deepEqual(
        [g.status, g.json.status],
        [400, `Not Implemented: Use /version or /v${newest} interfaces`],
        path,
      );
    }
    const p = await call(app, "/v2/keys/ukey", post({}));
    assert.deepEqual([p.status, p.json.status], [400, `Not Implemented: Use /v${newest} interface`]);
  });
});

describe("repeated query parameters", () => {
  test("a declared parameter given twice: 400 duplicate field, as serde_urlencoded decodes upstream", async () => {
    const cases = [
      "/v2.2/quotes/identity?nonce=a&nonce=b",
      "/v2.2/quotes/identity?nonce=a&nonce=a",
      "/v2.2/quotes/integrity?nonce=abc&mask=0x400&partial=1&partial=0",
      "/v2.2/quotes/integrity?nonce=abc&mask=0x400&partial=1&ima_ml_entry=1&ima_ml_entry=2",
      "/v2.2/keys/verify?challenge=abc&challenge=def",
    ];
    for (const path of cases) {
      const a = await call(app, path);
      assert.equal(a.status, 400, path);
      assert.match(a.json.status, /^(nonce|partial|ima_ml_entry|challenge): duplicate field$/, path);
    }
  });

  test("an undeclared parameter is ignored, repeated or not", async () => {
    const a = await call(app, "/v2.2/quotes/identity?nonce=abc&x=1&x=2");
    assert.equal(a.status, 200, a.text);
  });
});

describe("TPM work", () => {
  test("/version and keys/verify answer while a quote runs", async () => {
    let quoted = false;
    const quoting = Promise.resolve(app.request("/v2.2/quotes/identity?nonce=concurrent")).then((r) => {
      quoted = true;
      return r;
    });
    assert.equal((await app.request("/version")).status, 200);
    assert.equal((await app.request("/v2.2/keys/verify?challenge=abc")).status, 400);
    assert.equal(quoted, false, "the quote finished before /version and keys/verify answered");
    assert.equal((await quoting).status, 200);
  });

  test("PCRs that keep changing: 503; a TPM failure: 500 without its details", async () => {
    const unstable = createAgentApp({
      ...fx.deps,
      quotes: {
        ...fx.deps.quotes,
        quoter: {
          algorithms: fx.quoter.algorithms,
          quote: () => Promise.reject(new PcrsUnstableError("PCRs changed 5 times")),
          certifyNk: () => Promise.reject(new PcrsUnstableError("not reached")),
        },
      },
    });
    assert.equal((await call(unstable, "/v2.2/quotes/identity?nonce=abc")).status, 503);

    // A quoter whose AK is gone from the TPM: the TPM answers TPM_RC_HANDLE.
    const fresh = await agentAppFixture();
    after(() => fresh.stop());
    await flush(fresh.tpm, fresh.ak.handle);
    const broken = createAgentApp(fresh.deps);
    const a = await call(broken, "/v2.2/quotes/identity?nonce=abc");
    assert.equal(a.status, 500);
    assert.equal(a.json.status, "Unable to retrieve quote");
    assert.ok(fresh.lines.some((l) => l.startsWith("ERROR ") && l.includes("TPM_RC_")), fresh.lines.join("\n"));
  });

  test("one debug line per request", async () => {
    const n = fx.lines.length;
    await app.request("/version");
    assert.equal(fx.lines.length, n + 1);
    assert.match(fx.lines.at(-1)!, /^DEBUG GET \/version 200 /);
  });
});

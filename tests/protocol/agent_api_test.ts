/**
 * The agent API declarations: per-version routes, query validation as rust-keylime applies it, the bodies
 * and results shapes, the fixed status texts and the per-version enc_alg name.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  agentRoutePath,
  agentRoutes,
  agentStatus,
  encAlgName,
  IdentityQuery,
  IntegrityQuery,
  outsideScopeAnswers,
  parseQuery,
  QuoteResults,
  resourceScopeAnswers,
  RevocationBody,
  routeInVersion,
  routesOf,
  scopeOf,
  UKeyBody,
  VerifyQuery,
  versionScopeAnswers,
} from "../../src/protocol/agent_api.ts";
import { AGENT_SUPPORTED_VERSIONS } from "../../src/protocol/api_version.ts";
import { ProtocolInputError } from "../../src/protocol/schema.ts";

const q = (s: string) => new URLSearchParams(s);
const fieldError = (field: string) => (e: unknown) => e instanceof ProtocolInputError && e.field === field;

describe("routes per version", () => {
  test("agent/info from 2.2, the rest from 2.1", () => {
    assert.ok(!routeInVersion(agentRoutes.info, "2.1"));
    assert.ok(routeInVersion(agentRoutes.info, "2.2"));
    assert.deepEqual(routesOf("2.1").map((r) => r.name).sort(), [
      "identityCertify",
      "identityQuote",
      "integrityQuote",
      "pubkey",
      "revocation",
      "ukey",
      "verify",
      "vkey",
    ]);
    for (const v of AGENT_SUPPORTED_VERSIONS.slice(1)) assert.equal(routesOf(v).length, 9, v);
  });

  test("quotes/identity?binding=certify is its own route, chosen by the binding parameter", () => {
    assert.equal(
      agentRoutePath(agentRoutes.identityCertify, "2.6", { nonce: "abc", binding: "certify" }),
      "/v2.6/quotes/identity?nonce=abc&binding=certify",
    );
    assert.deepEqual(agentRoutes.identityCertify.selectedBy, { param: "binding", value: "certify" });
    assert.equal(agentRoutes.identityCertify.path, agentRoutes.identityQuote.path);
    assert.throws(() => IdentityQuery.parse({ nonce: "a", binding: "tpm" }), fieldError("binding"));
    assert.deepEqual(IdentityQuery.parse({ nonce: "a", binding: "pcr16" }), { nonce: "a", binding: "pcr16" });
  });

  test("paths: versioned with the query encoded from the shape; unversioned /version", () => {
    assert.equal(agentRoutePath(agentRoutes.version, undefined), "/version");
    assert.equal(
      agentRoutePath(agentRoutes.integrityQuote, "2.6", { nonce: "abc123", mask: 0x408400, partial: true }),
      "/v2.6/quotes/integrity?nonce=abc123&mask=0x408400&partial=1",
    );
    assert.equal(
      agentRoutePath(agentRoutes.integrityQuote, "2.1", {
        nonce: "n",
        mask: 0,
        partial: false,
        ima_ml_entry: 17,
      }),
      "/v2.1/quotes/integrity?nonce=n&mask=0x0&partial=0&ima_ml_entry=17",
    );
    assert.equal(agentRoutePath(agentRoutes.verify, "2.2", { challenge: "ab12" }), "/v2.2/keys/verify?challenge=ab12");
    assert.throws(() => agentRoutePath(agentRoutes.info, "2.1"), /needs API 2.2/);
    assert.throws(() => agentRoutePath(agentRoutes.pubkey, undefined), /needs an API version/);
  });
});

describe("query validation", () => {
  test("nonce: 1 to 64 characters from [A-Za-z0-9]", () => {
    assert.deepEqual(parseQuery(IdentityQuery, q("nonce=AbC019")), { nonce: "AbC019" });
    assert.equal(parseQuery(IdentityQuery, q(`nonce=${"a".repeat(64)}`)).nonce.length, 64);
    for (const bad of [`nonce=${"a".repeat(65)}`, "nonce=ab-c", "nonce=ab%20c", "nonce=%C3%A9", "nonce=", ""]) {
      assert.throws(() => parseQuery(IdentityQuery, q(bad)), fieldError("nonce"), bad);
    }
  });

  test("mask: alphanumeric hex u32, leading 0x stripped", () => {
    const mask = (m: string) => parseQuery(IntegrityQuery, q(`nonce=n&partial=0&mask=${m}`)).mask;
    assert.equal(mask("0x400"), 0x400);
    assert.equal(mask("408400"), 0x408400);
    assert.equal(mask("0xffffffff"), 0xffffffff);
    assert.equal(mask("0x0x10"), 0x10);
    assert.equal(mask("000000000001"), 1);
    for (const bad of ["0x1ffffffff", "0xg", "0x", "-1", "0x%2B1", ""]) {
      assert.throws(() => mask(bad), fieldError("mask"), bad);
    }
  });

  test("partial is required and must be 0 or 1", () => {
    assert.equal(parseQuery(IntegrityQuery, q("nonce=n&mask=0x1&partial=0")).partial, false);
    assert.equal(parseQuery(IntegrityQuery, q("nonce=n&mask=0x1&partial=1")).partial, true);
    for (const bad of ["", "&partial=", "&partial=2", "&partial=true", "&partial=01"]) {
      assert.throws(() => parseQuery(IntegrityQuery, q(`nonce=n&mask=0x1${bad}`)), fieldError("partial"), bad);
    }
  });

  test("ima_ml_entry: unsigned entry number; anything else is 0, as upstream's unwrap_or(0)", () => {
    const entry = (e: string) => parseQuery(IntegrityQuery, q(`nonce=n&mask=0x1&partial=1${e}`)).ima_ml_entry;
    assert.equal(entry(""), undefined);
    assert.equal(entry("&ima_ml_entry=42"), 42);
    assert.equal(entry("&ima_ml_entry=%2B7"), 7);
    assert.equal(entry("&ima_ml_entry=+7"), 0); // "+" is a space in a query string
    assert.equal(entry("&ima_ml_entry=-1"), 0);
    assert.equal(entry("&ima_ml_entry=abc"), 0);
    assert.equal(entry("&ima_ml_entry=99999999999999999999"), 0);
  });

  test("a declared parameter given twice is refused; undeclared ones are ignored", () => {
    assert.throws(() => parseQuery(IdentityQuery, q("nonce=first&nonce=second")), fieldError("nonce"));
    assert.equal(parseQuery(IdentityQuery, q("nonce=first&other=1&other=2")).nonce, "first");
  });

  test("challenge: alphanumeric, required", () => {
    assert.equal(parseQuery(VerifyQuery, q("challenge=Abc123")).challenge, "Abc123");
    assert.throws(() => parseQuery(VerifyQuery, q("challenge=a_b")), fieldError("challenge"));
    assert.throws(() => parseQuery(VerifyQuery, q("")), fieldError("challenge"));
  });
});

describe("bodies and results", () => {
  test("keys/ukey: auth_tag hex, encrypted_key and optional payload base64", () => {
    const body = UKeyBody.parse({ auth_tag: "ab".repeat(48), encrypted_key: "AAEC", payload: "AwQ=" });
    assert.deepEqual(body.encrypted_key, Uint8Array.of(0, 1, 2));
    assert.deepEqual(body.payload, Uint8Array.of(3, 4));
    assert.equal(UKeyBody.parse({ auth_tag: "ab", encrypted_key: "AAEC" }).payload, undefined);
    assert.throws(() => UKeyBody.parse({ auth_tag: "xyz", encrypted_key: "AAEC" }), fieldError("auth_tag"));
    assert.throws(() => UKeyBody.parse({ auth_tag: "ab", encrypted_key: "!!" }), fieldError("encrypted_key"));
  });

  test("revocation body", () => {
    const b = RevocationBody.parse({ msg: '{"type":"revocation"}', signature: "AAAA" });
    assert.equal(b.msg, '{"type":"revocation"}');
    assert.throws(() => RevocationBody.parse({ msg: "x" }), fieldError("signature"));
  });

  test("quote results: optional fields omitted, an empty IMA tail allowed", () => {
    const r = QuoteResults.parse({
      quote: "rAA==:AA==:AA==",
      hash_alg: "sha256",
      enc_alg: "rsa",
      sign_alg: "rsassa",
      ima_measurement_list: "",
      ima_measurement_list_entry: 3,
    });
    assert.equal(r.ima_measurement_list, "");
    assert.equal(r.pubkey, undefined);
    assert.deepEqual(Object.keys(QuoteResults.toJson(r)).sort(), [
      "enc_alg",
      "hash_alg",
      "ima_measurement_list",
      "ima_measurement_list_entry",
      "quote",
      "sign_alg",
    ]);
    assert.throws(() => QuoteResults.parse({ ...r, quote: "xAA" }), fieldError("quote"));
  });
});

test("status texts as rust-keylime writes them", () => {
  assert.equal(agentStatus.versionNotSupported("v500.440"), "API version not supported: v500.440");
  assert.equal(versionScopeAnswers.get, "Not Implemented: Use /agent, /keys, or /quotes interfaces");
  assert.equal(versionScopeAnswers.post, "Not Implemented: Use /keys or /notifications interfaces");
  assert.equal(versionScopeAnswers.other, "Method is not supported");
  assert.equal(outsideScopeAnswers("2.5").get, "Not Implemented: Use /version or /v2.5 interfaces");
  assert.equal(outsideScopeAnswers("2.5").post, "Not Implemented: Use /v2.5 interface");
  assert.equal(agentStatus.bootstrapKeyNotAvailable, "Bootstrap key not yet available.");
});

test("every versioned route's scope has its answers", () => {
  for (const r of Object.values(agentRoutes).filter((r) => r.versioned)) {
    assert.ok(resourceScopeAnswers[scopeOf(r.path)], r.path);
  }
  assert.equal(scopeOf("/quotes/identity"), "quotes");
  assert.equal(scopeOf(""), "");
});

test("enc_alg: rsa/ecc before 2.5, key-size qualified from 2.5", () => {
  assert.equal(encAlgName("rsa", 2048, "2.4"), "rsa");
  assert.equal(encAlgName("ecc", 256, "2.1"), "ecc");
  assert.equal(encAlgName("rsa", 2048, "2.5"), "rsa2048");
  assert.equal(encAlgName("ecc", 256, "2.6"), "ecc256");
  assert.equal(encAlgName("ecc", 384, "2.6"), "ecc384");
});

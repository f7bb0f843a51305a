/** The registrar's routes declared once: paths, body and results shapes, the envelope. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { encode } from "../../src/tpm/marshal.ts";
import { TPM2B_PUBLIC } from "../../src/tpm/structures.ts";
import { envelope, envelopeText, parseEnvelope } from "../../src/protocol/envelope.ts";
import {
  RegisterBody,
  RegisterResults,
  registrarRoutes,
  routePath,
  ShowResults,
} from "../../src/protocol/registrar_api.ts";
import { ProtocolInputError } from "../../src/protocol/schema.ts";
import { softKey } from "../helpers/soft_key.ts";
import { toBase64 } from "../../src/util/encoding.ts";

const b64 = (b: Uint8Array) => toBase64(b);
const akBytes = encode(TPM2B_PUBLIC, softKey("ecc").pub);

function reasons(f: () => unknown): string[] {
  try {
    f();
  } catch (e) {
    assert.ok(e instanceof ProtocolInputError, String(e));
    return e.issues.map((i) => `${i.path}: ${i.reason}`);
  }
  assert.fail("expected a ProtocolInputError");
}

test("paths: versioned routes under /vX.Y, /version without prefix, ids checked", () => {
  assert.equal(routePath(registrarRoutes.register, "2.6", { agent_id: "d432fbb3-d2f1" }), "/v2.6/agents/d432fbb3-d2f1");
  assert.equal(routePath(registrarRoutes.activatePut, "2.1", { agent_id: "a" }), "/v2.1/agents/a/activate");
  assert.equal(routePath(registrarRoutes.version, undefined), "/version");
  assert.throws(() => routePath(registrarRoutes.show, "2.6", { agent_id: "../x" }), /agent_id/);
  assert.throws(() => routePath(registrarRoutes.show, "2.6", { agent_id: "a/b" }), /agent_id/);
  assert.throws(() => routePath(registrarRoutes.list, undefined), /API version/);
});

test("register body: the AK is decoded as a TPM2B_PUBLIC, the exact bytes kept", () => {
  const body = RegisterBody.parse({ aik_tpm: b64(akBytes), ip: "127.0.0.1", port: 9002, mtls_cert: "disabled" });
  assert.deepEqual(body.aik_tpm.bytes, akBytes);
  assert.equal(body.aik_tpm.public.nameAlg, 0x000b);
  assert.deepEqual(RegisterBody.toJson(body), {
    aik_tpm: b64(akBytes),
    ip: "127.0.0.1",
    port: 9002,
    mtls_cert: "disabled",
  });
});

test("register body: bad fields are named", () => {
  const trailing = new Uint8Array([...akBytes, 0]);
  const [msg] = reasons(() => RegisterBody.parse({ aik_tpm: b64(trailing) }));
  assert.match(msg!, /^aik_tpm: .*1 trailing byte/);
  assert.deepEqual(reasons(() => RegisterBody.parse({ aik_tpm: b64(akBytes).slice(0, -3) })), [
    "aik_tpm: not base64 (or hex)",
  ]);
  assert.deepEqual(reasons(() => RegisterBody.parse({})), ["aik_tpm: is required"]);
  assert.match(reasons(() => RegisterBody.parse({ aik_tpm: b64(akBytes), agent_id: "a/b" }))[0]!, /^agent_id: not/);
  assert.deepEqual(reasons(() => RegisterBody.parse({ aik_tpm: b64(akBytes), ip: "2001:db8::1234:5678" })), [
    "ip: longer than 15 characters",
  ]);
});

test("envelope as upstream writes it; received envelopes checked against the route", () => {
  assert.deepEqual(envelope(200, "Success", { blob: "AA==" }), {
    code: 200,
    status: "Success",
    results: { blob: "AA==" },
  });
  assert.deepEqual(envelope(404), { code: 404, status: "Not Found", results: {} });
  assert.equal(
    envelopeText(envelope(200, "Success")),
    '{\n    "code": 200,\n    "status": "Success",\n    "results": {}\n}',
  );
  const ok = parseEnvelope({ code: 200, status: "Success", results: { blob: "AQID" } }, RegisterResults);
  assert.ok(ok.ok);
  assert.deepEqual(ok.results.blob, new Uint8Array([1, 2, 3]));
  assert.deepEqual(parseEnvelope({ code: 403, status: "no", results: {} }, RegisterResults), {
    ok: false,
    code: 403,
    status: "no",
  });
  assert.deepEqual(reasons(() => parseEnvelope({ code: 200, status: "Success", results: {} }, ShowResults)), [
    "results.agent_id: is required",
    "results.aik_tpm: is required",
    "results.regcount: is required",
  ]);
});

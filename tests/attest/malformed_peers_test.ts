/**
 * attest against peers that answer badly, over real sockets: a registrar (TLS with client certificates, as
 * the reference registrar's TLS directory sets it up) and an agent (plain HTTP, mtls_cert "disabled") whose
 * answers are scripted per test. Each malformed answer fails its check naming the field or what was wrong;
 * nothing crashes and the later checks are skipped.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { AddressInfo } from "node:net";
import { attestAgent } from "../../src/attest/run.ts";
import type { AttestReport } from "../../src/attest/report.ts";
import { readTenantTls, type TenantTls } from "../../src/attest/tls_dir.ts";
import { EkTrustStore } from "../../src/registrar/ek_trust.ts";
import { ensureTlsDir } from "../../src/registrar/tls.ts";

type Handler = (path: string) => { status: number; body: string };
const envelope = (results: unknown) => JSON.stringify({ code: 200, status: "Success", results });

describe("attest against malformed registrar and agent answers", () => {
  let registrar: Server;
  let agent: Server;
  let tls: TenantTls;
  let onRegistrar: Handler;
  let onAgent: Handler;
  const serve = (h: () => Handler) => (req: IncomingMessage, res: ServerResponse) => {
    const { status, body } = h()(req.url ?? "");
    res.writeHead(status, { "Content-Type": "application/json" }).end(body);
  };
  const listen = (s: Server) =>
    new Promise<number>((ok) => s.listen(0, "127.0.0.1", () => ok((s.address() as AddressInfo).port)));
  let agentPort: number;
  let registrarPort: number;
  const record = (extra: Record<string, unknown> = {}) => ({
    agent_id: "a1",
    aik_tpm: "AAA=",
    mtls_cert: "disabled",
    ip: "127.0.0.1",
    port: agentPort,
    regcount: 1,
    ...extra,
  });
  const attest = async (): Promise<AttestReport> =>
    (await attestAgent({
      registrar: `127.0.0.1:${registrarPort}`,
      tls,
      uuid: "a1",
      ekTrust: new EkTrustStore([]),
      state: {},
    })).report;
  const check = (r: AttestReport, id: string) => r.checks.find((c) => c.id === id)!;

  before(async () => {
    const dir = mkdtempSync(join(tmpdir(), "attest-malformed-"));
    const material = await ensureTlsDir(dir, ["127.0.0.1"]);
    tls = await readTenantTls(dir);
    registrar = createHttpsServer(
      { key: material.key, cert: material.cert, ca: material.ca, requestCert: true, rejectUnauthorized: true },
      serve(() => onRegistrar),
    );
    agent = createHttpServer(serve(() => onAgent));
    registrarPort = await listen(registrar);
    agentPort = await listen(agent);
  });

  after(async () => {
    registrar.closeAllConnections();
    agent.closeAllConnections();
    await Promise.all([registrar, agent].map((s) => new Promise((ok) => s.close(ok))));
  });

  const registrarAnswers = (show: { status: number; body: string }): Handler => (path) =>
    path === "/version"
      ? { status: 200, body: envelope({ current_version: "2.6", supported_versions: ["2.6"] }) }
      : show;

  test("a registrar answer that is not JSON", async () => {
    onRegistrar = registrarAnswers({ status: 200, body: "<html>" });
    const r = await attest();
    assert.equal(r.ok, false);
    assert.match(
      check(r, "registrar").detail,
      /the registrar at https:\/\/127\.0\.0\.1:\d+: HTTP 200: the answer is not JSON: "<html>"/,
    );
    assert.ok(r.checks.filter((c) => c.id !== "registrar").every((c) => c.status === "skip"));
  });

  test("a registrar record with a malformed field names it", async () => {
    onRegistrar = registrarAnswers({ status: 200, body: envelope(record({ aik_tpm: "!!not base64" })) });
    assert.match(check(await attest(), "registrar").detail, /malformed answer: results\.aik_tpm: not base64/);
  });

  test("an unknown or inactive agent", async () => {
    onRegistrar = registrarAnswers({
      status: 404,
      body: JSON.stringify({ code: 404, status: "Not Found", results: {} }),
    });
    assert.match(check(await attest(), "registrar").detail, /has no active agent a1/);
  });

  test("an agent whose quote answer is malformed; the EK check fails on its own", async () => {
    onRegistrar = registrarAnswers({ status: 200, body: envelope(record()) });
    onAgent = (path) =>
      path === "/version"
        ? { status: 200, body: envelope({ supported_version: "2.6", supported_versions: ["2.1", "2.6"] }) }
        : {
          status: 200,
          body: envelope({ quote: "not a quote", hash_alg: "sha256", enc_alg: "rsa", sign_alg: "rsassa" }),
        };
    const r = await attest();
    assert.equal(check(r, "registrar").status, "pass");
    assert.match(check(r, "ek-certificate").detail, /the registrar has no EK certificate/);
    assert.match(check(r, "agent-tls").detail, /plain HTTP \(mtls_cert disabled\); API 2\.6/);
    assert.match(
      check(r, "nk-binding").detail,
      /the agent sent a malformed answer: results\.quote: not r<b64>:<b64>:<b64>/,
    );
    assert.match(check(r, "integrity-quote").detail, /results\.quote/);
    assert.equal(check(r, "quote-signature").status, "skip");
  });

  test("an agent that refuses", async () => {
    onRegistrar = registrarAnswers({ status: 200, body: envelope(record()) });
    onAgent = () => ({
      status: 400,
      body: JSON.stringify({ code: 400, status: "API version not supported: v9", results: {} }),
    });
    assert.match(check(await attest(), "agent-tls").detail, /the agent answered 400 "API version not supported: v9"/);
  });
});

/**
 * The agent's server over real sockets: mTLS with client certificates from trusted_client_ca only (no
 * certificate, another CA and an expired certificate never reach a handler), TLS 1.2 at least, plain HTTP
 * when mTLS is off, requests in flight finished on close; the trusted_client_ca list and the
 * insecure-payload rule.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { webcrypto } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type RunningAgentServer, startAgentServer } from "../../src/agent/server.ts";
import {
  agentTlsOptions,
  checkPayloadTransport,
  INSECURE_PAYLOAD_MESSAGE,
  loadTrustedClientCas,
  trustedClientCaPaths,
} from "../../src/agent/tls.ts";
import { createCa, issueCertificate, type Issuer, newKeyPair, privateKeyPem } from "../../src/registrar/tls.ts";
import { x509lib } from "../../src/tpm/x509.ts";
import { agentClient, type AgentClientTls } from "../helpers/agent_client.ts";

interface Cert {
  cert: string;
  key: string;
}

async function clientOf(ca: Issuer, days = 30): Promise<Cert> {
  const pair = await newKeyPair();
  const cert = await issueCertificate(ca, {
    subject: "CN=verifier",
    publicKey: pair.publicKey,
    clientAuth: true,
    days,
  });
  return { cert: cert.toString("pem"), key: await privateKeyPem(pair.privateKey) };
}

/** The agent's certificate as the agent makes it: self-signed, no CA flag (state.ts). */
async function selfSigned(): Promise<Cert> {
  const keys = await newKeyPair();
  x509lib.cryptoProvider.set(webcrypto as unknown as Crypto);
  const cert = await x509lib.X509CertificateGenerator.createSelfSigned({
    serialNumber: "01",
    name: "CN=d432fbb3-d2f1-4a97-9ef7-75bd81c00000",
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + 86_400_000),
    signingAlgorithm: { name: "ECDSA", hash: "SHA-256" },
    keys,
    extensions: [new x509lib.SubjectAlternativeNameExtension([{ type: "ip", value: "127.0.0.1" }])],
  });
  return { cert: cert.toString("pem"), key: await privateKeyPem(keys.privateKey) };
}

let trusted: Issuer;
let agentCert: Cert;
let server: RunningAgentServer;
let reached = 0;
let release: (() => void) | undefined;

/** Counts requests that reach the app; /slow waits until released. */
async function fetch(req: Request): Promise<Response> {
  reached++;
  if (new URL(req.url).pathname === "/slow") await new Promise<void>((ok) => (release = ok));
  return new Response(JSON.stringify({ code: 200, status: "Success", results: {} }), {
    headers: { "Content-Type": "application/json" },
  });
}

before(async () => {
  trusted = await createCa("CN=keylime CA");
  agentCert = await selfSigned();
  server = await startAgentServer(fetch, {
    ip: "127.0.0.1",
    port: 0,
    tls: agentTlsOptions({ ...agentCert, clientCas: [trusted.cert.toString("pem")] }),
  });
});
after(() => server.close(100));

function tlsFor(client?: Cert, extra: Partial<AgentClientTls> = {}): AgentClientTls {
  return { agentCert: agentCert.cert, ...(client ? { clientCert: client.cert, clientKey: client.key } : {}), ...extra };
}

async function refused(tls: AgentClientTls): Promise<void> {
  const before = reached;
  const c = agentClient(server.url, tls);
  try {
    await assert.rejects(c.request("/version"));
  } finally {
    c.close();
  }
  assert.equal(reached, before, "a refused client reached a handler");
}

describe("mTLS", () => {
  test("a client certificate from trusted_client_ca is served", async () => {
    const c = agentClient(server.url, tlsFor(await clientOf(trusted)));
    const before = reached;
    assert.equal((await c.request("/version")).status, 200);
    assert.equal(reached, before + 1);
    c.close();
  });

  test("no client certificate: refused", async () => {
    await refused(tlsFor());
  });

  test("a certificate from another CA: refused", async () => {
    await refused(tlsFor(await clientOf(await createCa("CN=other CA"))));
  });

  test("an expired certificate from the trusted CA: refused", async () => {
    await refused(tlsFor(await clientOf(trusted, -0.5)));
  });

  test("TLS older than 1.2: refused", async () => {
    await refused(tlsFor(await clientOf(trusted), { maxVersion: "TLSv1.1" }));
  });

  test("several trusted CAs: each one's clients are served", async () => {
    const second = await createCa("CN=second CA");
    const s = await startAgentServer(fetch, {
      ip: "127.0.0.1",
      port: 0,
      tls: agentTlsOptions({ ...agentCert, clientCas: [trusted.cert.toString("pem"), second.cert.toString("pem")] }),
    });
    for (const ca of [trusted, second]) {
      const c = agentClient(s.url, tlsFor(await clientOf(ca)));
      assert.equal((await c.request("/version")).status, 200);
      c.close();
    }
    await s.close(100);
  });
});

describe("plain HTTP and shutdown", () => {
  test("mTLS off serves HTTP", async () => {
    const s = await startAgentServer(fetch, { ip: "127.0.0.1", port: 0 });
    assert.ok(s.url.startsWith("http://"));
    const c = agentClient(s.url);
    assert.equal((await c.request("/version")).status, 200);
    c.close();
    await s.close(100);
  });

  test("close() lets a request in flight finish and stops accepting", async () => {
    const s = await startAgentServer(fetch, { ip: "127.0.0.1", port: 0 });
    const c = agentClient(s.url);
    const slow = c.request("/slow");
    while (!release) await new Promise((ok) => setTimeout(ok, 5));
    const closed = s.close(5_000);
    const late = agentClient(s.url);
    await assert.rejects(late.request("/version"));
    release();
    assert.equal((await slow).status, 200);
    await closed;
    c.close();
    late.close();
  });
});

describe("configuration", () => {
  test("trusted_client_ca: default, lists, relative and absolute paths", () => {
    assert.deepEqual(trustedClientCaPaths("default", "/var/lib/keylime"), ["/var/lib/keylime/cv_ca/cacert.crt"]);
    assert.deepEqual(trustedClientCaPaths("", "/k"), ["/k/cv_ca/cacert.crt"]);
    assert.deepEqual(trustedClientCaPaths('["a.crt", "/etc/b.crt"]', "/k"), ["/k/a.crt", "/etc/b.crt"]);
    assert.deepEqual(trustedClientCaPaths("a.crt, default", "/k"), ["/k/a.crt", "/k/cv_ca/cacert.crt"]);
  });

  test("a missing or empty CA file is named", async () => {
    const dir = mkdtempSync(join(tmpdir(), "agent-ca-"));
    await assert.rejects(loadTrustedClientCas([join(dir, "none.crt")]), /trusted_client_ca: cannot read .*none\.crt/);
    writeFileSync(join(dir, "empty.crt"), "");
    await assert.rejects(loadTrustedClientCas([join(dir, "empty.crt")]), /holds no PEM certificate/);
  });

  test("mTLS off with a payload script needs enable_insecure_payload", () => {
    const c = { enable_agent_mtls: false, payload_script: "autorun.sh", enable_insecure_payload: false };
    assert.throws(() => checkPayloadTransport(c), { message: INSECURE_PAYLOAD_MESSAGE });
    assert.match(INSECURE_PAYLOAD_MESSAGE, /enable_insecure_payload' has to be set to 'True'$/);
    checkPayloadTransport({ ...c, enable_insecure_payload: true });
    checkPayloadTransport({ ...c, payload_script: "" });
    checkPayloadTransport({ ...c, enable_agent_mtls: true });
  });
});

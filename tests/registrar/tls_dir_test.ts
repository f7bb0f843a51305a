/**
 * The registrar's generated TLS directory keeps its CA key (ca-private.pem, 0600), and
 * `keylime-ts registrar client-cert` issues more client certificates from it that the registrar's tenant
 * port accepts; bad names, existing files and a directory without the CA key are refused with the reason.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, statSync, unlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { createPrivateKey, X509Certificate } from "node:crypto";
import { loadRegistrarConfig } from "../../src/registrar/config.ts";
import { type RunningRegistrar, startRegistrar } from "../../src/registrar/server.ts";
import { clientFiles, issueClientCert, TLS_FILES, TlsDirError } from "../../src/registrar/tls.ts";
import { tenantRequest } from "../helpers/registrar_http.ts";

const MAIN = fileURLToPath(new URL("../../src/main.ts", import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "keylime-ts-tls-dir-"));
let reg: RunningRegistrar;
before(async () => {
  const config = await loadRegistrarConfig(undefined, {
    port: 0,
    tls_port: 0,
    database: join(dir, "registrar.sqlite"),
    tpm_ca_dir: [],
  });
  reg = await startRegistrar(config, { log: () => {} });
});
after(async () => {
  await reg?.close();
  rmSync(dir, { recursive: true, force: true });
});

const mode = (p: string) => statSync(p).mode & 0o777;

test("the generated directory keeps the CA key, 0600, matching cacert.crt", () => {
  const caKey = join(reg.tlsDir, TLS_FILES.caKey);
  assert.equal(mode(caKey), 0o600);
  assert.equal(mode(join(reg.tlsDir, TLS_FILES.key)), 0o600);
  assert.equal(mode(join(reg.tlsDir, TLS_FILES.clientKey)), 0o600);
  const ca = new X509Certificate(readFileSync(join(reg.tlsDir, TLS_FILES.ca)));
  assert.ok(ca.checkPrivateKey(createPrivateKey(readFileSync(caKey, "utf8"))), "ca-private.pem is cacert.crt's key");
});

test("client-cert issues a certificate the tenant port accepts", async () => {
  const run = await promisify(execFile)(process.execPath, [
    "run",
    "--allow-all",
    MAIN,
    "registrar",
    "client-cert",
    "--tls-dir",
    reg.tlsDir,
    "--name",
    "verifier-2",
  ]);
  const files = clientFiles("verifier-2");
  assert.deepEqual(run.stdout.trim().split("\n"), [join(reg.tlsDir, files.cert), join(reg.tlsDir, files.key)]);
  assert.equal(mode(join(reg.tlsDir, files.key)), 0o600);
  const cert = readFileSync(join(reg.tlsDir, files.cert), "utf8");
  const key = readFileSync(join(reg.tlsDir, files.key), "utf8");
  const x = new X509Certificate(cert);
  assert.equal(x.subject, "CN=verifier-2");
  assert.ok(x.verify(new X509Certificate(readFileSync(join(reg.tlsDir, TLS_FILES.ca))).publicKey));
  const res = await tenantRequest(reg.tlsPort, reg.tlsDir, "/v2.6/agents/", { cert, key });
  assert.equal(res.status, 200);
});

test("bad names, existing files and a directory without the CA key are refused", async () => {
  for (const name of ["", "../x", "a b", "ca", "server", "x".repeat(65)]) {
    await assert.rejects(issueClientCert(reg.tlsDir, name), /client certificate name/, name);
  }
  await issueClientCert(reg.tlsDir, "once");
  await assert.rejects(issueClientCert(reg.tlsDir, "once"), /once-cert\.crt exists/);
  await assert.rejects(issueClientCert(reg.tlsDir, "client"), /client-cert\.crt exists/);
  const empty = mkdtempSync(join(dir, "empty-"));
  await assert.rejects(issueClientCert(empty, "x"), (e) => e instanceof TlsDirError && /cacert\.crt/.test(e.message));
  unlinkSync(join(reg.tlsDir, TLS_FILES.caKey));
  await assert.rejects(issueClientCert(reg.tlsDir, "late"), /ca-private\.pem.*keep the CA key/);
});

/**
 * dist/keylime-ts (make binary) with nothing else: `env -i PATH=/usr/bin:/bin` from a temp directory. Every
 * subcommand: --version, demo, tpm info on the embedded simulator, the registrar (node:sqlite, the embedded
 * TPM CA store), `agent register` on swtpm, and the same executable linked as keylime_agent being the agent.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { agentClient } from "../helpers/agent_client.ts";
import { freePort } from "../helpers/free_port.ts";
import { buildBinary, REGISTRAR_READY, runClean, startClean, type Started, writeAgentConf } from "../helpers/binary.ts";
import { tenantCert, tenantRequest } from "../helpers/registrar_http.ts";
import { startSwtpm, swtpmSkipReason } from "../helpers/swtpm.ts";
import { ROOT } from "../helpers/agent_process.ts";
import { MSG } from "../../src/agent/messages.ts";
import { VERSION } from "../../src/main.ts";

const home = mkdtempSync(join(tmpdir(), "keylime-ts-binary-"));
let exe = "";
before(async () => void (exe = await buildBinary("x64")));
after(() => rmSync(home, { recursive: true, force: true }));

test("--version prints the version", async () => {
  const r = await runClean(exe, ["--version"], { home });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.trim(), VERSION);
});

test("demo runs to its verdict", async () => {
  const r = await runClean(exe, ["demo"], { home });
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const last = r.stdout.trim().split("\n").at(-1) ?? "";
  assert.match(last, /pass|ok|verified|trusted/i, r.stdout);
  assert.doesNotMatch(last, /fail/i, r.stdout);
});

test("tpm info on the embedded simulator", async () => {
  const r = await runClean(exe, ["tpm", "info", "--tpm", `sim:${join(home, "sim")}`], { home });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^manufacturer: +KTSM$/m);
  assert.match(r.stdout, /^PCR bank sha256 +0,1,2/m);
});

test("registrar from the executable; agent register on swtpm; keylime_agent is the agent", {
  skip: swtpmSkipReason(),
}, async () => {
  const swtpm = await startSwtpm({ transport: "tcp" });
  const dir = join(home, "flow");
  mkdirSync(dir);
  const running: Started[] = [];
  try {
    // The EK's CA (swtpm_localca) beside the embedded store: the EK certificate must verify.
    mkdirSync(join(dir, "ek-ca"));
    writeFileSync(join(dir, "ek-ca", "swtpm-localca.pem"), swtpm.caCertPem!);
    const { started: registrar, match } = await startClean(exe, [
      "registrar",
      ...["--port", "0", "--tls-port", "0", "--db", join(dir, "registrar.sqlite"), "--tpm-ca-dir", join(dir, "ek-ca")],
    ], { home, ready: REGISTRAR_READY });
    running.push(registrar);
    const [registrarPort, tlsPort, trusted] = [Number(match[1]), Number(match[2]), Number(match[3])];
    const embedded = readdirSync(join(ROOT, "data", "tpm-ca")).filter((n) => n.endsWith(".pem"))
      .map((n) => readFileSync(join(ROOT, "data", "tpm-ca", n), "utf8").split("BEGIN CERTIFICATE").length - 1)
      .reduce((a, b) => a + b, 0);
    assert.equal(trusted, embedded + 2, "the embedded data/tpm-ca/ and swtpm_localca's two certificates");

    const uuid = "b1a7e0e1-0000-4000-8000-000000000001";
    const agentDir = join(dir, "agent");
    const conf = writeAgentConf(agentDir, { uuid, registrarPort, port: await freePort() });
    cpSync(join(dir, "tls", "cacert.crt"), join(agentDir, "cv_ca", "cacert.crt"));
    const env = { KEYLIME_AGENT_CONFIG: conf, TCTI: swtpm.uri };
    const registered = await runClean(exe, ["agent", "register"], { home, env });
    assert.equal(registered.code, 0, registered.stderr);
    assert.match(registered.stdout, new RegExp(`agent ${uuid} is active`));
    const record = await tenantRequest(tlsPort, join(dir, "tls"), `/v2.1/agents/${uuid}`, tenantCert(join(dir, "tls")));
    assert.equal(record.status, 200, JSON.stringify(record.json)); // the tenant view shows active agents only
    assert.equal((record.json as { results: { regcount: number } }).results.regcount, 1);

    // The same file under the name keylime_agent: the agent service, no arguments. Its certificate removed, it
    // makes a new one in a process of its own (`agent mtls-cert`, the executable run again) and registers it.
    mkdirSync(join(dir, "bin"));
    symlinkSync(exe, join(dir, "bin", "keylime_agent"));
    rmSync(join(agentDir, "server-cert.crt"));
    const { started: agent, match: listening } = await startClean(join(dir, "bin", "keylime_agent"), [], {
      home,
      env,
      ready: /Listening on (https:\/\/127\.0\.0\.1:\d+)/,
    });
    running.push(agent);
    assert.match(agent.output(), new RegExp(MSG.mtlsCreated(join(agentDir, "server-cert.crt"))));
    const again = await tenantRequest(tlsPort, join(dir, "tls"), `/v2.1/agents/${uuid}`, tenantCert(join(dir, "tls")));
    const mtlsCert = (again.json as { results: { mtls_cert: string } }).results.mtls_cert;
    assert.equal(mtlsCert.trim(), readFileSync(join(agentDir, "server-cert.crt"), "utf8").trim());
    // As the verifier: mTLS with a client certificate of the agent's trusted_client_ca.
    const tenant = tenantCert(join(dir, "tls"));
    const client = agentClient(listening[1]!, {
      agentCert: mtlsCert,
      clientCert: tenant.cert!,
      clientKey: tenant.key!,
    });
    try {
      assert.equal((await client.request("/version")).status, 200);
      // Served by fetch_listener with fetch_subset.ts's classes (Node): a quote, a refused body, an unknown version.
      const quote = await client.request("/v2.2/quotes/identity?nonce=binary0123");
      assert.equal(quote.status, 200, JSON.stringify(quote.json));
      assert.match(String(quote.json.results.quote), /^r/);
      const refused = await client.request("/v2.2/keys/ukey", { method: "POST", body: "not json" });
      assert.equal(refused.status, 400, JSON.stringify(refused.json));
      assert.equal((await client.request("/v9.9/agent/info")).json.status, "API version not supported: v9.9");
    } finally {
      client.close();
    }
    await agent.stop(); // (Deno's child_process reports the signal sent, not the exit status)
    assert.match(agent.output(), new RegExp(`${MSG.shuttingDown("SIGTERM")}[^]*${MSG.stopped}`));

    // SIGTERM while it starts the server, before it listens: the handlers are already in place.
    const { started: starting } = await startClean(join(dir, "bin", "keylime_agent"), [], {
      home,
      env,
      ready: new RegExp(MSG.startingServer([])),
    });
    running.push(starting);
    await starting.stop();
    assert.match(starting.output(), new RegExp(`${MSG.shuttingDown("SIGTERM")}[^]*${MSG.stopped}`));
  } finally {
    for (const p of running.reverse()) await p.stop();
    await swtpm.stop();
  }
});

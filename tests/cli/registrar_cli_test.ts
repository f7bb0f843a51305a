/**
 * `keylime-ts registrar` as a process: --help, the listening line with the actual ports (port 0), a
 * [registrar] config file, and a restart (SIGTERM, start again on the same --db) that keeps every record.
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { type ChildProcessWithoutNullStreams, execFile, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { softAgent, softEkCa } from "../helpers/registrar_agents.ts";
import { enroll, tenantCert, tenantRequest } from "../helpers/registrar_http.ts";
import { toBase64 } from "../../src/util/encoding.ts";

const MAIN = fileURLToPath(new URL("../../src/main.ts", import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "keylime-ts-registrar-cli-"));
after(() => rmSync(dir, { recursive: true, force: true }));

interface Started {
  child: ChildProcessWithoutNullStreams;
  port: number;
  tlsPort: number;
  output: () => string;
}

/** Start the registrar; resolves at its listening line, with the ports it names. */
function startProcess(args: string[]): Promise<Started> {
  const child = spawn(process.execPath, ["run", "--allow-all", MAIN, "registrar", ...args]);
  let out = "";
  return new Promise((resolve, reject) => {
    const onData = (d: Buffer) => {
      out += d;
      const m = /listening on http:\/\/[^:]+:(\d+) \(agents\) and https:\/\/[^:]+:(\d+)/.exec(out);
      if (m) resolve({ child, port: Number(m[1]), tlsPort: Number(m[2]), output: () => out });
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    child.once("exit", (code) => reject(new Error(`registrar exited with ${code}: ${out}`)));
  });
}

/** SIGTERM, then wait for the exit. (Deno's child_process reports the signal sent, not the exit status.) */
async function stop(s: Started): Promise<void> {
  const exited = new Promise((r) => s.child.once("exit", r));
  s.child.kill("SIGTERM");
  await exited;
}

test("--help lists the options", async () => {
  const stdout = await new Promise<string>((resolve, reject) =>
    execFile(
      process.execPath,
      ["run", "--allow-all", MAIN, "registrar", "--help"],
      (err, out) => err ? reject(err) : resolve(out),
    )
  );
  for (
    const opt of [
      "--port",
      "--tls-port",
      "--db",
      "--tls-dir",
      "--tpm-ca-dir",
      "--allow-untrusted-ek",
      "--require-nk-certify",
      "--certify-nonce-ttl",
      "--config",
    ]
  ) {
    assert.ok(stdout.includes(opt), opt);
  }
});

test("a registrar process on free ports; a restart keeps every record", async () => {
  const caDir = join(dir, "tpm-ca");
  mkdirSync(caDir);
  writeFileSync(join(caDir, "test-ca.pem"), (await softEkCa()).cert.toString("pem"));
  const db = join(dir, "registrar.sqlite");
  const tlsDir = join(dir, "tls");
  const args = ["--port", "0", "--tls-port", "0", "--db", db, "--tls-dir", tlsDir, "--tpm-ca-dir", caDir];
  let s = await startProcess(args);
  const agents = await Promise.all([softAgent(), softAgent(), softAgent()]);
  try {
    for (const [i, a] of agents.entries()) assert.equal((await enroll(s.port, a, `agent-${i}`)).status, 200);
    assert.equal(statSync(join(tlsDir, "server-private.pem")).mode & 0o777, 0o600);
    assert.equal(statSync(join(tlsDir, "client-private.pem")).mode & 0o777, 0o600);
  } finally {
    await stop(s);
  }
  assert.match(s.output(), /stopped; every record is in the database/);
  s = await startProcess(args);
  try {
    const list = await tenantRequest(s.tlsPort, tlsDir, "/v2.6/agents", tenantCert(tlsDir));
    assert.deepEqual(list.json.results.uuids, ["agent-0", "agent-1", "agent-2"]);
    const shown = await tenantRequest(s.tlsPort, tlsDir, "/v2.6/agents/agent-1", tenantCert(tlsDir));
    assert.equal(shown.json.results.aik_tpm, toBase64(agents[1]!.akTpm));
  } finally {
    await stop(s);
  }
});

test("a [registrar] config file, overridden by options", async () => {
  const conf = join(dir, "registrar.conf");
  writeFileSync(conf, `[registrar]\nport = 1\nallow_untrusted_ek = true\ndatabase = "${join(dir, "conf.sqlite")}"\n`);
  const s = await startProcess(["--config", conf, "--port", "0", "--tls-port", "0", "--tls-dir", join(dir, "tls2")]);
  try {
    assert.match(s.output(), /untrusted EKs allowed/);
    assert.match(s.output(), /conf\.sqlite/);
    // An EK certificate from a CA nobody trusts is stored (flagged untrusted).
    assert.equal((await enroll(s.port, await softAgent(), "untrusted")).status, 200);
  } finally {
    await stop(s);
  }
});

test("--require-nk-certify: a classic registration is refused, naming nk_certify", async () => {
  const conf = join(dir, "registrar-nk.conf");
  writeFileSync(
    conf,
    `[registrar]
allow_untrusted_ek = true
database = "${join(dir, "nk.sqlite")}"
`,
  );
  const s = await startProcess([
    "--config",
    conf,
    "--port",
    "0",
    "--tls-port",
    "0",
    "--tls-dir",
    join(dir, "tls3"),
    "--require-nk-certify",
    "--certify-nonce-ttl",
    "60",
  ]);
  try {
    assert.match(s.output(), /NK certification required/);
    const r = await enroll(s.port, await softAgent(), "classic");
    assert.equal(r.status, 400);
    assert.match(r.error!, /^nk_certify: is required/);
  } finally {
    await stop(s);
  }
});

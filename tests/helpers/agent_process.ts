/**
 * Test and bench helper: `keylime_agent` (a link to scripts/keylime-ts) as a process with an /etc-style
 * configuration file (KEYLIME_AGENT_CONFIG), swtpm as its TPM and the reference registrar in process on free
 * ports, plus what a verifier or tenant holds: a client certificate from the agent's trusted_client_ca and,
 * from the registrar, the agent's mTLS certificate and AK.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { connect } from "node:net";
import { join, resolve } from "node:path";
import { loadRegistrarConfig } from "../../src/registrar/config.ts";
import { type RunningRegistrar, startRegistrar } from "../../src/registrar/server.ts";
import { createCa, issueCertificate, newKeyPair, privateKeyPem } from "../../src/registrar/tls.ts";
import { fromBase64 } from "../../src/util/encoding.ts";
import { type AgentClient, agentClient, type AgentClientTls } from "./agent_client.ts";
import { freePort } from "./free_port.ts";
import { tenantCert, tenantRequest } from "./registrar_http.ts";
import { startSwtpm, type SwtpmInstance } from "./swtpm.ts";

export const ROOT = resolve(import.meta.dirname!, "../..");

export interface AgentProcess {
  dir: string;
  uuid: string;
  port: number;
  pid: number;
  swtpm: SwtpmInstance;
  registrar: RunningRegistrar;
  /** stdout and stderr so far. */
  log(): string;
  /** The exit code, or the signal's name. */
  exit: Promise<number | string | null>;
  /** The registrar's aik_tpm. */
  aikTpm: Uint8Array;
  /** The registrar's record of the agent, as a tenant reads it (GET /agents/{uuid}). */
  registered: Record<string, unknown>;
  /** What a verifier holds to reach the agent over mTLS (undefined with mtls false). */
  tls: AgentClientTls | undefined;
  /** A new client as the verifier is (its own keep-alive connections): mTLS, or plain HTTP with mtls false. */
  client(): AgentClient;
  stop(): Promise<void>;
}

/** Wait until `check` holds, polling; fails naming `what` after `ms`. */
export async function until(what: string, check: () => boolean | Promise<boolean>, ms = 60_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((ok) => setTimeout(ok, 50));
  }
}

/** The reference registrar on free loopback ports with its SQLite file in `dir`, any EK accepted. */
export async function startTestRegistrar(dir: string): Promise<RunningRegistrar> {
  return await startRegistrar(
    await loadRegistrarConfig(undefined, {
      ip: "127.0.0.1",
      port: 0,
      tls_port: 0,
      database: join(dir, "registrar.sqlite"),
      allow_untrusted_ek: true,
    }),
    { log: () => {} },
  );
}

/** Does something accept TCP connections on the loopback port? */
function accepts(port: number): Promise<boolean> {
  return new Promise((ok) => {
    const s = connect(port, "127.0.0.1");
    s.once("connect", () => {
      s.destroy();
      ok(true);
    });
    s.once("error", () => ok(false));
  });
}

export async function startAgentProcess(o: {
  uuid: string;
  /** More `key = value` lines for [agent]. */
  conf?: string[];
  /** The text of an IMA list file the agent serves (ima_ml_path); none by default. */
  imaList?: string;
  env?: Record<string, string>;
  /** Trust the registrar's TLS CA for client certificates (a tenant with one --tls-dir reaches both). */
  registrarClientCa?: boolean;
  /** The executable linked as keylime_agent (default scripts/keylime-ts: from source under Deno). */
  exe?: string;
  /** false: enable_agent_mtls = false, and the client speaks plain HTTP. */
  mtls?: boolean;
}): Promise<AgentProcess> {
  const mtls = o.mtls ?? true;
  const dir = mkdtempSync(join(tmpdir(), "agent-process-"));
  const swtpm = await startSwtpm({ transport: "tcp" });
  const registrar = await startTestRegistrar(dir);
  // The verifier's and tenant's CA (the agent's trusted_client_ca), and a client certificate it issued.
  const ca = await createCa("CN=keylime CA");
  const keylimeDir = join(dir, "var");
  mkdirSync(join(keylimeDir, "cv_ca"), { recursive: true });
  writeFileSync(join(keylimeDir, "cv_ca", "cacert.crt"), ca.cert.toString("pem"));
  const pair = await newKeyPair();
  const clientCert = await issueCertificate(ca, {
    subject: "CN=verifier",
    publicKey: pair.publicKey,
    clientAuth: true,
  });
  const clientKey = await privateKeyPem(pair.privateKey);

  if (o.imaList !== undefined) writeFileSync(join(dir, "ima"), o.imaList);
  const port = await freePort();
  const etc = join(dir, "etc");
  mkdirSync(etc);
  writeFileSync(
    join(etc, "agent.conf"),
    [
      "[agent]",
      `uuid = "${o.uuid}"`,
      `ip = "127.0.0.1"`,
      `port = ${port}`,
      `contact_port = ${port}`,
      `registrar_ip = "127.0.0.1"`,
      `registrar_port = ${registrar.port}`,
      `keylime_dir = "${keylimeDir}"`,
      `trusted_client_ca = "${o.registrarClientCa ? join(registrar.tlsDir, "cacert.crt") : "default"}"`,
      `ima_ml_path = "${join(dir, "ima")}"`,
      `measuredboot_ml_path = "${join(dir, "no-mb")}"`,
      ...(mtls ? [] : ["enable_agent_mtls = false"]),
      ...(o.conf ?? []),
      "",
    ].join("\n"),
  );
  mkdirSync(join(dir, "bin"));
  symlinkSync(o.exe ?? join(ROOT, "scripts", "keylime-ts"), join(dir, "bin", "keylime_agent"));
  const agent: ChildProcess = spawn(join(dir, "bin", "keylime_agent"), [], {
    env: { ...process.env, KEYLIME_AGENT_CONFIG: join(etc, "agent.conf"), TCTI: swtpm.uri, ...o.env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let log = "";
  agent.stdout!.on("data", (d) => (log += d));
  agent.stderr!.on("data", (d) => (log += d));
  const exit = new Promise<number | string | null>((ok) => agent.once("exit", (code, signal) => ok(code ?? signal)));
  const stop = async () => {
    if (agent.exitCode === null && agent.signalCode === null) agent.kill("SIGKILL");
    await registrar.close();
    await swtpm.stop();
  };
  try {
    await until("the agent to listen", async () => agent.exitCode !== null || await accepts(port), 120_000);
    if (agent.exitCode !== null) throw new Error(`keylime_agent exited with ${agent.exitCode}:\n${log}`);
    const record = await tenantRequest(
      registrar.tlsPort,
      registrar.tlsDir,
      `/v2.1/agents/${o.uuid}`,
      tenantCert(registrar.tlsDir),
    );
    if (record.status !== 200) throw new Error(`the registrar does not have the agent: ${JSON.stringify(record.json)}`);
    const results = (record.json as { results: { mtls_cert: string; aik_tpm: string } }).results;
    const url = `${mtls ? "https" : "http"}://127.0.0.1:${port}`;
    const tls = mtls ? { agentCert: results.mtls_cert, clientCert: clientCert.toString("pem"), clientKey } : undefined;
    return {
      dir,
      uuid: o.uuid,
      port,
      pid: agent.pid!,
      swtpm,
      registrar,
      log: () => log,
      exit,
      aikTpm: fromBase64(results.aik_tpm),
      registered: results,
      tls,
      client: () => agentClient(url, tls),
      stop,
    };
  } catch (e) {
    await stop();
    throw e;
  }
}

/**
 * The demo's machine and services in one process and one directory: the embedded simulator (manufactured
 * there, with its EK CA as the trust store's extra directory), the reference registrar on free loopback
 * ports with its generated TLS directory, and the agent service with mTLS on the simulator, with an IMA list
 * whose entries the "kernel" (this module) extended into PCR 10. The agent's log is kept, not printed.
 */
import { rm, writeFile } from "node:fs/promises";
import { mkdirSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { caCertificatePem, openSimulator, simulatorTransport } from "../../simulator/index.ts";
import { agentPaths, loadAgentConfig } from "../agent/config.ts";
import { type RunningAgent, startAgentService } from "../agent/service.ts";
import { imaExtendDigest, imaNgLine, parseImaLine } from "../protocol/ima_replay.ts";
import type { RunningRegistrar } from "../registrar/server.ts";
import { Tpm } from "../tpm/client.ts";
import { Shutdown, Startup } from "../tpm/commands.ts";
import { TPM_ALG, TPM_SU } from "../tpm/constants.ts";
import { hash } from "../tpm/crypto.ts";
import { pcrExtend } from "../tpm/pcrs.ts";
import { stderrServiceLog } from "./agent_log.ts";

export const DEMO_UUID = "d432fbb3-d2f1-4a97-9ef7-75bd81c00000";
/** The UEFI event log the agent serves, in the demo directory. */
export const UEFI_LOG_FILE = "binary_bios_measurements";

/** What the demo's "kernel" measured: file paths and contents. */
const MEASURED: readonly [string, string][] = [
  ["boot_aggregate", "firmware and boot loader"],
  ["/usr/bin/keylime-ts", "the agent's executable"],
  ["/etc/keylime/agent.conf", "its configuration"],
];

export type Machine = Awaited<ReturnType<typeof startMachine>>;

export interface DemoAgent {
  /** Its configuration file (KEYLIME_AGENT_CONFIG for running it by hand). */
  readonly conf: string;
  /** Lines it logged. */
  readonly log: string[];
  /** Stop it, replace its NK (and mTLS key and certificate), start it again: it registers again. */
  swapNk(): Promise<void>;
  close(): Promise<void>;
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((ok) => s.listen(0, "127.0.0.1", ok));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((ok) => s.close(() => ok()));
  return port;
}

/** The simulator, manufactured in `dir/tpm` and powered on; its CA written to `dir/tpm-ca`. */
export async function startMachine(dir: string) {
  const tpmDir = join(dir, "tpm");
  const sim = await openSimulator({ stateDir: tpmDir });
  const tpm = new Tpm(simulatorTransport(sim.engine));
  await tpm.execute(Startup, { startupType: TPM_SU.CLEAR });
  const tpmCaDir = join(dir, "tpm-ca");
  mkdirSync(tpmCaDir, { recursive: true });
  await writeFile(join(tpmCaDir, "simulator-ca.pem"), caCertificatePem(sim.engine.persistent));
  // The kernel's IMA: each file measured into PCR 10 and listed.
  const lines = MEASURED.map(([path, content]) =>
    imaNgLine(path, hash(TPM_ALG.SHA256, new TextEncoder().encode(content)))
  );
  for (const [i, line] of lines.entries()) {
    await pcrExtend(tpm, 10, [{
      hashAlg: TPM_ALG.SHA256,
      digest: imaExtendDigest(parseImaLine(line, i), TPM_ALG.SHA256),
    }]);
  }
  await writeFile(join(dir, "ima"), lines.join("\n") + "\n");
  return { sim, tpm, tpmDir, tpmCaDir };
}

export async function startRegistrarIn(dir: string, tpmCaDir: string): Promise<RunningRegistrar> {
  // Lazily: node:sqlite exists only in newer runtimes (DESIGN.md, Runtime and packaging).
  const { loadRegistrarConfig } = await import("../registrar/config.ts");
  const { startRegistrar } = await import("../registrar/server.ts");
  const config = await loadRegistrarConfig(undefined, {
    ip: "127.0.0.1",
    port: 0,
    tls_port: 0,
    database: join(dir, "registrar.sqlite"),
    tls_dir: join(dir, "tls"),
    tpm_ca_dir: [tpmCaDir],
  });
  return await startRegistrar(config, { log: () => {} });
}

function agentConfText(dir: string, port: number, registrar: RunningRegistrar): string {
  return [
    "[agent]",
    `uuid = "${DEMO_UUID}"`,
    `ip = "127.0.0.1"`,
    `port = ${port}`,
    `contact_ip = "127.0.0.1"`,
    `contact_port = ${port}`,
    `registrar_ip = "127.0.0.1"`,
    `registrar_port = ${registrar.port}`,
    `keylime_dir = "${join(dir, "agent")}"`,
    `trusted_client_ca = "${join(registrar.tlsDir, "cacert.crt")}"`,
    `ima_ml_path = "${join(dir, "ima")}"`,
    // The demo's machine has no firmware log; a test may put one there before the agent starts.
    `measuredboot_ml_path = "${join(dir, UEFI_LOG_FILE)}"`,
    "",
  ].join("\n");
}

/** Extend a PCR of the machine as software on it would. */
export async function extendPcr(machine: Machine, pcr: number, what: string): Promise<void> {
  const digest = hash(TPM_ALG.SHA256, new TextEncoder().encode(what));
  await pcrExtend(machine.tpm, pcr, [{ hashAlg: TPM_ALG.SHA256, digest }]);
}

/** The agent service on the machine's TPM with mTLS, registered with the registrar. */
export async function startDemoAgent(dir: string, machine: Machine, registrar: RunningRegistrar): Promise<DemoAgent> {
  const conf = join(dir, "agent.conf");
  await writeFile(conf, agentConfText(dir, await freePort(), registrar));
  const lines: string[] = [];
  const log = stderrServiceLog("info", (s) => lines.push(s));
  const { config } = loadAgentConfig({ file: conf, env: {}, warn: (m) => log.warn(m) });
  const start = () => startAgentService(machine.tpm, { config, log, mountSecureDir: false });
  let agent: RunningAgent = await start();
  return {
    conf,
    log: lines,
    async swapNk() {
      await agent.close();
      const paths = agentPaths(config);
      await Promise.all([paths.payloadKey, paths.serverKey, paths.serverCert].map((f) => rm(f, { force: true })));
      agent = await start();
    },
    close: () => agent.close(),
  };
}

/** An orderly power-off (TPM2_Shutdown(STATE)): the next power-on resumes with the PCRs and a safe clock. */
export async function stopMachine(machine: Machine): Promise<void> {
  await machine.tpm.execute(Shutdown, { shutdownType: TPM_SU.STATE }).catch(() => {});
  await machine.tpm.close().catch(() => {});
  await machine.sim.engine.close();
}

/**
 * `keylime-ts agent run`, and the same executable run as `keylime_agent`: load the configuration, open the
 * TPM, register, serve in the foreground until SIGTERM or SIGINT, then stop accepting, finish what is in
 * flight, flush what was loaded in the TPM and exit 0 (within 10 s).
 */
import type { Command } from "commander";
import { loadAgentConfig } from "../agent/config.ts";
import { MSG } from "../agent/messages.ts";
import { certificateInChildProcess } from "../agent/mtls_cert_process.ts";
import { type ServiceLog, startAgentService } from "../agent/service.ts";
import { CONFIG_ROOT_ENV } from "./agent.ts";
import { stderrServiceLog } from "./agent_log.ts";
import { openTpm } from "./select_tpm.ts";
import { installFetchSubset } from "../util/fetch_subset.ts";
import { collectStartupGarbage } from "../util/v8_memory.ts";

/** Without a resource manager: ms without a request before the TPM connection is released (default 200). */
export const TPM_IDLE_ENV = "KEYLIME_TS_TPM_IDLE_MS";
/** SIGTERM to exit: the whole shutdown stays under this. */
const SHUTDOWN_MS = 10_000;

export interface RunOptions {
  config?: string;
  tpm?: string;
}

/** Run the agent until a signal; resolves when it has shut down. */
export async function runAgent(o: RunOptions = {}): Promise<void> {
  // This process serves and never fetches: Node's own fetch classes would cost it about 5 MiB, and the
  // runtime's Response is written through a stream (fetch_subset.ts).
  installFetchSubset();
  const log = stderrServiceLog();
  const { config } = loadAgentConfig({
    ...(o.config ? { file: o.config } : {}),
    ...(process.env[CONFIG_ROOT_ENV] ? { root: process.env[CONFIG_ROOT_ENV] } : {}),
    warn: (m) => log.warn(m),
  });
  const shutdown = onSignals(log);
  const opened = await openTpm(o.tpm ? { tpm: o.tpm } : {});
  let agent;
  try {
    const idle = process.env[TPM_IDLE_ENV];
    if (idle !== undefined && !/^[0-9]{1,7}$/.test(idle)) {
      throw new Error(`${TPM_IDLE_ENV}=${JSON.stringify(idle)} is not a number of milliseconds`);
    }
    agent = await startAgentService(opened.tpm, {
      config,
      log,
      ...(idle ? { tpmIdleMs: Number(idle) } : {}),
      makeCertificate: certificateInChildProcess,
    });
  } catch (e) {
    await opened.close().catch(() => {});
    throw e;
  }
  collectStartupGarbage();
  // A signal while starting (before or just after "Listening on") is handled here once the service is up.
  await shutdown;
  await agent.close(SHUTDOWN_MS - 2_000)
    .then(() => opened.close())
    .catch((e) => log.error(String(e)));
  log.info(MSG.stopped);
  // Whatever a library left open (a keep-alive socket, a timer), the service has stopped.
  process.exit(0);
}

/**
 * SIGTERM/SIGINT handlers, installed before the TPM is opened or the server listens: resolves on the first
 * signal and from then on bounds the shutdown by SHUTDOWN_MS. A second signal changes nothing.
 */
function onSignals(log: ServiceLog): Promise<string> {
  return new Promise((resolve) => {
    let received = false;
    const on = (signal: string) => () => {
      if (received) return;
      received = true;
      log.info(MSG.shuttingDown(signal));
      setTimeout(() => {
        log.error(MSG.shutdownTimeout(SHUTDOWN_MS));
        process.exit(1);
      }, SHUTDOWN_MS).unref();
      resolve(signal);
    };
    process.on("SIGTERM", on("SIGTERM"));
    process.on("SIGINT", on("SIGINT"));
  });
}

export function agentRunCommand(agent: Command): void {
  agent.command("run", { isDefault: true })
    .description("register, then serve the agent API in the foreground until SIGTERM/SIGINT (what keylime_agent runs)")
    .option(
      "--config <file>",
      "read this file instead of /usr/etc/keylime and /etc/keylime (like KEYLIME_AGENT_CONFIG)",
    )
    .option("--tpm <uri>", "TPM to use (default: TCTI, then /dev/tpmrm0, /dev/tpm0, the embedded simulator)")
    .action((o: RunOptions) => runAgent(o));
}

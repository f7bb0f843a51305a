/**
 * Which TPM the CLI and the agent talk to: an explicit --tpm, else the TCTI / TPM2TOOLS_TCTI
 * environment variable, else /dev/tpmrm0, else /dev/tpm0, else the embedded simulator with its state
 * under the data directory, announced as INSECURE on every start.
 */
import { accessSync, constants } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { Tpm } from "../tpm/client.ts";
import { Shutdown, Startup } from "../tpm/commands.ts";
import { TPM_RC, TPM_SU } from "../tpm/constants.ts";
import { TpmResponseError } from "../tpm/errors.ts";
import { openTransport, tpmUriFromEnv } from "../tpm/transport/uri.ts";
import { warn } from "./output.ts";

export interface TpmSelection {
  /** The --tpm option, if given: a TCTI string, or `sim` / `sim:DIR` for the embedded simulator. */
  readonly tpm?: string;
  /** Response timeout in ms. */
  readonly timeoutMs?: number;
}

const DEVICES = ["/dev/tpmrm0", "/dev/tpm0"];

/** Where the embedded simulator keeps its state unless told otherwise. */
export function defaultSimulatorDir(env = process.env): string {
  if (env.KEYLIME_TS_DATA) return join(env.KEYLIME_TS_DATA, "simulator");
  const base = env.XDG_DATA_HOME || join(homedir(), ".local", "share");
  return join(base, "keylime-ts", "simulator");
}

function usable(path: string): boolean {
  try {
    accessSync(path, constants.R_OK | constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

/** The TPM to use, and where the choice came from (for messages). */
export function chooseTpmUri(sel: TpmSelection, env = process.env): { uri: string; source: string } {
  if (sel.tpm) return { uri: sel.tpm, source: "--tpm" };
  const fromEnv = tpmUriFromEnv(env);
  if (fromEnv) return { uri: fromEnv, source: env.TCTI?.trim() ? "TCTI" : "TPM2TOOLS_TCTI" };
  const device = DEVICES.find(usable);
  if (device) return { uri: `device:${device}`, source: "default device" };
  return { uri: `sim:${defaultSimulatorDir(env)}`, source: "no TPM found" };
}

/** An open TPM and what must happen when the caller is done with it. */
export interface OpenedTpm {
  readonly tpm: Tpm;
  close(): Promise<void>;
}

/**
 * The embedded simulator as a TPM that stays "on" between commands: each process resumes the TPM
 * the previous one shut down (Startup(STATE) after Shutdown(STATE)), so PCRs persist like on a running machine.
 */
async function openEmbedded(dir: string): Promise<OpenedTpm> {
  // Loaded only when chosen: an agent on a real TPM or swtpm does not carry the simulator.
  const { openSimulator, simulatorTransport } = await import("../../simulator/index.ts");
  const { engine } = await openSimulator({ stateDir: dir });
  warn(`INSECURE: software TPM (keylime-ts embedded simulator, state in ${dir}); it proves nothing about this machine`);
  const tpm = new Tpm(simulatorTransport(engine));
  try {
    await tpm.execute(Startup, { startupType: TPM_SU.STATE });
  } catch (e) {
    if (!(e instanceof TpmResponseError && e.is(TPM_RC.VALUE))) throw e;
    await tpm.execute(Startup, { startupType: TPM_SU.CLEAR });
  }
  return {
    tpm,
    async close() {
      await tpm.execute(Shutdown, { shutdownType: TPM_SU.STATE }).catch(() => {});
      await tpm.close();
      await engine.close();
    },
  };
}

export function openTpm(sel: TpmSelection): Promise<OpenedTpm> {
  const { uri } = chooseTpmUri(sel);
  if (uri === "sim" || uri.startsWith("sim:")) {
    return openEmbedded(uri.length > 4 ? uri.slice(4) : defaultSimulatorDir());
  }
  const transport = openTransport(uri, { warn, ...(sel.timeoutMs ? { timeoutMs: sel.timeoutMs } : {}) });
  const tpm = new Tpm(transport);
  return Promise.resolve({ tpm, close: () => tpm.close() });
}

/** Open the TPM, run `fn`, and always close the connection. */
export async function withTpm<T>(sel: TpmSelection, fn: (tpm: Tpm) => Promise<T>): Promise<T> {
  const opened = await openTpm(sel);
  try {
    return await fn(opened.tpm);
  } finally {
    await opened.close();
  }
}

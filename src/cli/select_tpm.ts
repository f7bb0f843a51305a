/**
 * Which TPM the CLI and the agent talk to: an explicit --tpm, else the TCTI / TPM2TOOLS_TCTI
 * environment variable, else /dev/tpmrm0, else /dev/tpm0.
 */
import { accessSync, constants } from "node:fs";
import { Tpm } from "../tpm/client.ts";
import { TransportError } from "../tpm/errors.ts";
import { openTransport, tpmUriFromEnv } from "../tpm/transport/uri.ts";
import { warn } from "./output.ts";

export interface TpmSelection {
  /** The --tpm option, if given. */
  readonly tpm?: string;
  /** Response timeout in ms. */
  readonly timeoutMs?: number;
}

const DEVICES = ["/dev/tpmrm0", "/dev/tpm0"];

function usable(path: string): boolean {
  try {
    accessSync(path, constants.R_OK | constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

/** The TPM URI to use, and where the choice came from (for messages). */
export function chooseTpmUri(sel: TpmSelection, env = process.env): { uri: string; source: string } {
  if (sel.tpm) return { uri: sel.tpm, source: "--tpm" };
  const fromEnv = tpmUriFromEnv(env);
  if (fromEnv) return { uri: fromEnv, source: env.TCTI?.trim() ? "TCTI" : "TPM2TOOLS_TCTI" };
  const device = DEVICES.find(usable);
  if (device) return { uri: `device:${device}`, source: "default device" };
  throw new TransportError(
    `No TPM found: neither ${
      DEVICES.join(" nor ")
    } is usable. Pass --tpm (e.g. --tpm swtpm:host=127.0.0.1,port=2321) ` +
      `or set TCTI.`,
  );
}

export function openTpm(sel: TpmSelection): Tpm {
  const { uri } = chooseTpmUri(sel);
  const transport = openTransport(uri, { warn, ...(sel.timeoutMs ? { timeoutMs: sel.timeoutMs } : {}) });
  return new Tpm(transport);
}

/** Open the TPM, run `fn`, and always close the connection. */
export async function withTpm<T>(sel: TpmSelection, fn: (tpm: Tpm) => Promise<T>): Promise<T> {
  const tpm = openTpm(sel);
  try {
    return await fn(tpm);
  } finally {
    await tpm.close();
  }
}

/**
 * The embedded simulator's front door: open (or manufacture) a simulated TPM backed by a state file,
 * and hand out a Transport to it. src/main.ts and src/cli/ wire it in; src/ itself never imports it.
 */
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { ALL_HANDLERS } from "./handlers/all.ts";
import { InProcessTransport } from "./in_process.ts";
import { caCertificatePem, manufacture } from "./manufacture.ts";
import { SimTpm } from "./sim_tpm.ts";
import { readState, writeState } from "./state_file.ts";
import type { Persistent } from "./state.ts";

export const STATE_FILE = "tpm-state.json";

export interface OpenSimulatorOptions {
  /** Directory of the state file; without one the TPM lives in memory only. */
  stateDir?: string;
  /** A reproducible TPM: seeds, EKs and the CA key derive from this (only when manufacturing). */
  seed?: Uint8Array;
  /** Transient object slots (default 16). */
  objectSlots?: number;
}

export interface OpenedSimulator {
  readonly engine: SimTpm;
  /** True when this call manufactured a new TPM. */
  readonly manufactured: boolean;
  readonly statePath: string | undefined;
}

/** Open the simulator in `stateDir`, manufacturing a TPM on first use. Powered and ready for TPM2_Startup. */
export async function openSimulator(options: OpenSimulatorOptions = {}): Promise<OpenedSimulator> {
  const statePath = options.stateDir ? join(options.stateDir, STATE_FILE) : undefined;
  let persistent: Persistent | null = null;
  if (statePath) {
    await mkdir(options.stateDir!, { recursive: true, mode: 0o700 });
    persistent = await readState(statePath);
  }
  const manufactured = persistent === null;
  persistent ??= await manufacture(options.seed ? { seed: options.seed } : {});
  const engine = new SimTpm(persistent, ALL_HANDLERS, {
    ...(options.objectSlots ? { objectSlots: options.objectSlots } : {}),
    ...(statePath ? { store: (p: Persistent) => writeState(statePath, p) } : {}),
  });
  if (manufactured) await engine.save();
  return { engine, manufactured, statePath };
}

/** A client-side Transport straight into the engine. */
export function simulatorTransport(engine: SimTpm): InProcessTransport {
  return new InProcessTransport(engine);
}

export { caCertificatePem };

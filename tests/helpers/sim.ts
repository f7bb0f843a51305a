/** Test helper: an embedded simulator behind our client, in process. */
import { Tpm } from "../../src/tpm/client.ts";
import { Startup } from "../../src/tpm/commands.ts";
import { TPM_SU } from "../../src/tpm/constants.ts";
import { TpmResponseError } from "../../src/tpm/errors.ts";
import type { Transport } from "../../src/tpm/transport/transport.ts";
import { type Handler, SimTpm, type SimTpmOptions } from "../../simulator/sim_tpm.ts";
import { freshPersistent } from "../../simulator/state.ts";
import { randomBytes } from "node:crypto";

/** Bytes to the engine and back, nothing else: what InProcessTransport does, for tests of the engine. */
export class EngineTransport implements Transport {
  readonly uri = "sim:test";
  readonly resourceManaged = false;
  constructor(readonly engine: SimTpm) {}
  send(command: Uint8Array): Promise<Uint8Array> {
    return this.engine.execute(command.slice());
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** A fresh simulated TPM (not started) with the given handlers, and a client for it. */
export function simWith(handlers: ReadonlyMap<number, Handler>, options: SimTpmOptions = {}) {
  const engine = new SimTpm(freshPersistent((n) => new Uint8Array(randomBytes(n))), handlers, options);
  return { engine, tpm: new Tpm(new EngineTransport(engine)) };
}

/** simWith, started with TPM2_Startup(CLEAR). */
export async function startedSim(handlers: ReadonlyMap<number, Handler>, options: SimTpmOptions = {}) {
  const sim = simWith(handlers, options);
  await sim.tpm.execute(Startup, { startupType: TPM_SU.CLEAR });
  return sim;
}

/** The response code a command that must fail answers with. */
export async function rcOf(p: Promise<unknown>): Promise<number> {
  try {
    await p;
  } catch (e) {
    if (e instanceof TpmResponseError) return e.rc;
    throw e;
  }
  throw new Error("the command succeeded, but a TPM error was expected");
}

/** Test helper: an embedded simulator behind our client, in process. */
import { Tpm } from "../../src/tpm/client.ts";
import { Startup } from "../../src/tpm/commands.ts";
import { TPM_SU } from "../../src/tpm/constants.ts";
import { TpmResponseError } from "../../src/tpm/errors.ts";
import type { Transport } from "../../src/tpm/transport/transport.ts";
import { type Handler, SimTpm, type SimTpmOptions } from "../../simulator/sim_tpm.ts";
import { freshPersistent } from "../../simulator/state.ts";
import { ALL_HANDLERS } from "../../simulator/handlers/all.ts";
import { startListening } from "../../simulator/listen_uri.ts";
import { openTransport } from "../../src/tpm/transport/uri.ts";
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

/** The two ways a client reaches the simulator: its engine in process, or its swtpm socket server. */
export const SIM_WIRES = ["in process", "over its swtpm socket"] as const;
export type SimWire = (typeof SIM_WIRES)[number];

/** A started simulator with every handler, reached over `wire`; stop() closes what it opened. */
export async function startedSimOver(wire: SimWire, options: SimTpmOptions = {}) {
  const { engine, tpm: local } = await startedSim(ALL_HANDLERS, options);
  if (wire === "in process") return { engine, tpm: local, stop: () => engine.close() };
  const server = await startListening(engine, "swtpm:host=127.0.0.1,port=0");
  const tpm = new Tpm(openTransport(server.uri));
  return {
    engine,
    tpm,
    async stop() {
      await tpm.close();
      await server.close();
      await engine.close();
    },
  };
}

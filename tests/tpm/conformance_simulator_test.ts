/** The conformance suite against the embedded simulator: in process, and over its swtpm socket server. */
import { openSimulator, simulatorTransport } from "../../simulator/index.ts";
import { startListening } from "../../simulator/listen_uri.ts";
import { Tpm } from "../../src/tpm/client.ts";
import { Startup } from "../../src/tpm/commands.ts";
import { TPM_SU } from "../../src/tpm/constants.ts";
import { openTransport } from "../../src/tpm/transport/uri.ts";
import { type Backend, conformanceSuite, type Exceptions } from "./conformance.ts";

/** Where the simulator legitimately differs from swtpm in this suite: nothing, today. */
const SIMULATOR_EXCEPTIONS: Exceptions = {};

async function simulatorBackend(wire: "in-process" | "socket"): Promise<Backend> {
  const { engine } = await openSimulator();
  const local = new Tpm(simulatorTransport(engine));
  await local.execute(Startup, { startupType: TPM_SU.CLEAR });
  if (wire === "in-process") {
    return { tpm: local, hasRsaEkCert: true, stop: () => engine.close() };
  }
  const server = await startListening(engine, "swtpm:host=127.0.0.1,port=0");
  const tpm = new Tpm(openTransport(server.uri));
  return {
    tpm,
    hasRsaEkCert: true,
    async stop() {
      await tpm.close();
      await server.close();
      await engine.close();
    },
  };
}

conformanceSuite("simulator in process", () => simulatorBackend("in-process"), SIMULATOR_EXCEPTIONS);
conformanceSuite("simulator over its swtpm socket", () => simulatorBackend("socket"), SIMULATOR_EXCEPTIONS);

/**
 * Test helper: a started TPM for the agent tests, either swtpm (on free ports, EK certificates
 * provisioned unless asked not to) or the embedded simulator in process.
 */
import { openSimulator, simulatorTransport } from "../../simulator/index.ts";
import { Tpm } from "../../src/tpm/client.ts";
import { Startup } from "../../src/tpm/commands.ts";
import { TPM_SU } from "../../src/tpm/constants.ts";
import { openTransport } from "../../src/tpm/transport/uri.ts";
import { startSwtpm, type SwtpmInstance } from "./swtpm.ts";

export type TestTpmKind = "swtpm" | "sim";

export interface TestTpm {
  readonly tpm: Tpm;
  /** The swtpm instance (for tpm2-tools), when kind is swtpm. */
  readonly swtpm?: SwtpmInstance;
  stop(): Promise<void>;
}

export async function startTestTpm(kind: TestTpmKind, options: { provision?: boolean } = {}): Promise<TestTpm> {
  if (kind === "swtpm") {
    const swtpm = await startSwtpm({ transport: "tcp", provision: options.provision ?? true });
    const tpm = new Tpm(openTransport(swtpm.uri));
    return {
      tpm,
      swtpm,
      async stop() {
        await tpm.close().catch(() => {});
        await swtpm.stop();
      },
    };
  }
  const { engine } = await openSimulator();
  const tpm = new Tpm(simulatorTransport(engine));
  await tpm.execute(Startup, { startupType: TPM_SU.CLEAR });
  return {
    tpm,
    async stop() {
      await tpm.close();
      await engine.close();
    },
  };
}

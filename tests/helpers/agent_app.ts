/**
 * Test helper: the agent's app deps over a real TPM (the simulator in process unless a Tpm is given): an
 * EK and AK made in the TPM, an NK in software, PCR 16 bound to the NK, and recorders for what runs after
 * an answer (derived keys, revocations) and for the log.
 */
import { generateKeyPairSync } from "node:crypto";
import type { AgentAppDeps, AppLog } from "../../src/agent/app.ts";
import { keptAk, Quoter } from "../../src/agent/quoter.ts";
import type { MeasurementSource } from "../../src/agent/routes/quotes.ts";
import type { RevocationBody } from "../../src/protocol/agent_api.ts";
import { AGENT_SUPPORTED_VERSIONS, type ApiVersion } from "../../src/protocol/api_version.ts";
import { type DerivedKey, importNkPrivateKey, KeyPairing } from "../../src/protocol/payload.ts";
import { createAk, loadAk } from "../../src/tpm/ak.ts";
import type { Tpm } from "../../src/tpm/client.ts";
import { TPM_ALG } from "../../src/tpm/constants.ts";
import { createEk } from "../../src/tpm/ek.ts";
import type { LoadedKey } from "../../src/tpm/objects.ts";
import { ALL_HANDLERS } from "../../simulator/handlers/all.ts";
import { startedSim } from "./sim.ts";

export const TEST_UUID = "d432fbb3-d2f1-4a97-9ef7-75bd81c00000";

export interface AgentAppFixture {
  deps: AgentAppDeps;
  tpm: Tpm;
  ak: LoadedKey;
  quoter: Quoter;
  nkPem: string;
  derived: DerivedKey[];
  revocations: RevocationBody[];
  lines: string[];
  stop(): Promise<void>;
}

export function recordingAppLog(lines: string[]): AppLog {
  return {
    debug: (m) => lines.push(`DEBUG ${m}`),
    warn: (m) => lines.push(`WARN ${m}`),
    error: (m) => lines.push(`ERROR ${m}`),
  };
}

export async function agentAppFixture(
  o: { versions?: readonly ApiVersion[]; measurements?: MeasurementSource; tpm?: Tpm } = {},
): Promise<AgentAppFixture> {
  const sim = o.tpm ? undefined : await startedSim(ALL_HANDLERS);
  const tpm = o.tpm ?? sim!.tpm;
  const ek = await createEk(tpm, "rsa");
  const ak = await loadAk(tpm, ek, await createAk(tpm, ek, {}));
  const nk = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const nkPem = nk.publicKey.export({ format: "pem", type: "spki" }).toString();
  const quoter = new Quoter(keptAk(tpm, ak), TPM_ALG.SHA256);
  await quoter.bindNk(nkPem);
  const derived: DerivedKey[] = [];
  const revocations: RevocationBody[] = [];
  const lines: string[] = [];
  const deps: AgentAppDeps = {
    versions: o.versions ?? AGENT_SUPPORTED_VERSIONS,
    quotes: { quoter, nkPem, ...(o.measurements ? { measurements: o.measurements } : {}) },
    keys: {
      nk: await importNkPrivateKey(nk.privateKey),
      nkPem,
      pairing: new KeyPairing(TEST_UUID),
      onKey: (d) => derived.push(d),
    },
    info: { uuid: TEST_UUID, algorithms: quoter.algorithms, akHandle: () => ak.handle },
    notifications: { onRevocation: (b) => revocations.push(b) },
    log: recordingAppLog(lines),
  };
  return {
    deps,
    tpm,
    ak,
    quoter,
    nkPem,
    derived,
    revocations,
    lines,
    stop: async () => {
      await sim?.engine.close();
    },
  };
}

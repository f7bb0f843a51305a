/**
 * Test helper: the agent's app deps over a real TPM (the simulator in process unless a Tpm is given): an
 * EK and AK made in the TPM, an NK in software, PCR 16 bound to the NK (unless nkBinding is certify), the
 * bootstrap key service with a temporary secure directory, and recorders for stored payloads, revocations
 * and the log.
 */
import { generateKeyPairSync, type KeyObject } from "node:crypto";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { AgentAppDeps, AppLog } from "../../src/agent/app.ts";
import { BootstrapKeys } from "../../src/agent/keys.ts";
import type { StoredPayload } from "../../src/agent/payload_store.ts";
import { keptAk, Quoter } from "../../src/agent/quoter.ts";
import type { MeasurementSource } from "../../src/agent/routes/quotes.ts";
import { defaultStoreOptions } from "./payload_delivery.ts";
import { recordingLog } from "./agent_log.ts";
import type { NkBindingMode, RevocationBody } from "../../src/protocol/agent_api.ts";
import { AGENT_SUPPORTED_VERSIONS, type ApiVersion } from "../../src/protocol/api_version.ts";
import { importNkPrivateKey } from "../../src/protocol/payload.ts";
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
  /** A fresh bootstrap key service for the same NK (payloads stored into `stored`), in secureDir when given. */
  newKeys(secureDir?: string): Promise<BootstrapKeys>;
  stored: StoredPayload[];
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

async function bootstrapKeys(
  nk: KeyObject,
  onStored: (p: StoredPayload) => void,
  secureDir = mkdtempSync(join(tmpdir(), "agent-secure-")),
): Promise<BootstrapKeys> {
  return new BootstrapKeys({
    uuid: TEST_UUID,
    nk: await importNkPrivateKey(nk),
    runPayloads: true,
    store: defaultStoreOptions(secureDir, recordingLog()),
    log: recordingLog(),
    onPayloadStored: onStored,
  });
}

export async function agentAppFixture(
  o: { versions?: readonly ApiVersion[]; measurements?: MeasurementSource; tpm?: Tpm; nkBinding?: NkBindingMode } = {},
): Promise<AgentAppFixture> {
  const sim = o.tpm ? undefined : await startedSim(ALL_HANDLERS);
  const tpm = o.tpm ?? sim!.tpm;
  const ek = await createEk(tpm, "rsa");
  const ak = await loadAk(tpm, ek, await createAk(tpm, ek, {}));
  const nk = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const nkPem = nk.publicKey.export({ format: "pem", type: "spki" }).toString();
  const quoter = new Quoter(keptAk(tpm, ak), TPM_ALG.SHA256);
  const binding = o.nkBinding ?? "both";
  if (binding !== "certify") await quoter.bindNk(nkPem);
  const stored: StoredPayload[] = [];
  const revocations: RevocationBody[] = [];
  const lines: string[] = [];
  const newKeys = (secureDir?: string) => bootstrapKeys(nk.privateKey, (p) => stored.push(p), secureDir);
  const deps: AgentAppDeps = {
    versions: o.versions ?? AGENT_SUPPORTED_VERSIONS,
    quotes: {
      quoter,
      nkPem,
      // As an agent without mTLS: the NK is the RSA transport key.
      identity: { binding, nk: { privateKey: nk.privateKey, pem: nkPem, use: "decrypt" } },
      ...(o.measurements ? { measurements: o.measurements } : {}),
    },
    keys: { keys: await newKeys(), nkPem },
    info: { uuid: TEST_UUID, algorithms: quoter.algorithms, akHandle: () => ak.handle },
    notifications: {
      revocations: {
        submit: (b) => {
          revocations.push(b);
          return Promise.resolve(undefined);
        },
      },
    },
    log: recordingAppLog(lines),
  };
  return {
    deps,
    tpm,
    ak,
    quoter,
    nkPem,
    newKeys,
    stored,
    revocations,
    lines,
    stop: async () => {
      await sim?.engine.close();
    },
  };
}

/**
 * What the simulated TPM remembers. `Persistent` survives power cycles and goes to the state file;
 * `Volatile` is lost at _TPM_Init unless TPM2_Shutdown(STATE) saved the part the spec keeps.
 */
import { randomBytes } from "node:crypto";
import type { JsonWebKey } from "node:crypto";
import { TPM_ALG } from "../src/tpm/constants.ts";
import type { TPMS_NV_PUBLIC, TPMT_PUBLIC, TPMT_SYM_DEF } from "../src/tpm/structures.ts";
import type { SimObject } from "./object.ts";

/** PCR banks the simulator implements and allocates. */
export const PCR_BANKS = [TPM_ALG.SHA1, TPM_ALG.SHA256, TPM_ALG.SHA384] as const;
export const PCR_COUNT = 24;

export interface HierarchyState {
  /** The primary seed: primaries are derived from it (deterministic EKs need a stable EPS). */
  seed: Uint8Array;
  authValue: Uint8Array;
  /** Secret used for tickets and obfuscation in this hierarchy. */
  proof: Uint8Array;
}

export interface NvIndex {
  public: TPMS_NV_PUBLIC;
  authValue: Uint8Array;
  data: Uint8Array;
}

/** A persistent object as saved: SimObject minus what can be recomputed. */
export type SavedObject = Omit<SimObject, "name" | "qualifiedName"> & { qualifiedName: Uint8Array };

export interface Persistent {
  version: 1;
  endorsement: HierarchyState;
  owner: HierarchyState;
  platform: HierarchyState;
  lockoutAuth: Uint8Array;
  nv: Map<number, NvIndex>;
  persistent: Map<number, SavedObject>;
  /** RSA primary keys, generated once per (seed, template) and kept (keygen is slow). */
  rsaPrimaries: Map<string, JsonWebKey>;
  /** Clock in ms as of the last save; advances while powered. */
  clock: bigint;
  resetCount: number;
  restartCount: number;
  /** Whether the last power loss was preceded by TPM2_Shutdown, and of which kind. */
  shutdown: "none" | "clear" | "state";
  /** PCRs saved by TPM2_Shutdown(STATE), restored by TPM2_Startup(STATE). */
  savedPcrs: Map<number, Uint8Array[]> | null;
  /** The NULL hierarchy saved by TPM2_Shutdown(STATE): it changes only at TPM Reset. */
  savedNull?: HierarchyState | null;
  /** Key for context blobs (ContextSave/ContextLoad). */
  contextKey: Uint8Array;
  failedTries: number;
  maxTries: number;
  /** The stand-in vendor CA that signed the EK certificates (absent in a bare TPM). */
  manufacturer?: { caCert: Uint8Array; caKey: JsonWebKey };
}

export interface PolicyState {
  digest: Uint8Array;
  commandCode: number | null;
  authValueNeeded: boolean;
  passwordNeeded: boolean;
}

export interface SimSession {
  readonly handle: number;
  readonly kind: "hmac" | "policy" | "trial";
  readonly authHash: number;
  readonly symmetric: TPMT_SYM_DEF;
  readonly sessionKey: Uint8Array;
  /** The bound-entity value (Name with the authValue XORed in, auth.ts boundEntity), if bound. */
  readonly boundEntity: Uint8Array | null;
  nonceTPM: Uint8Array;
  policy: PolicyState;
}

export interface Volatile {
  started: boolean;
  pcrs: Map<number, Uint8Array[]>;
  pcrUpdateCounter: number;
  objects: Map<number, SimObject>;
  sessions: Map<number, SimSession>;
  /** The NULL hierarchy's seed and proof change at every TPM Reset. */
  nullHierarchy: HierarchyState;
  /** Whether the clock is known not to have gone back since the last orderly shutdown. */
  safe: boolean;
  contextSequence: bigint;
}

const digestSize = (alg: number) => (alg === TPM_ALG.SHA1 ? 20 : alg === TPM_ALG.SHA256 ? 32 : 48);

function hierarchy(random: (n: number) => Uint8Array): HierarchyState {
  return { seed: random(64), authValue: new Uint8Array(0), proof: random(32) };
}

/** A factory-fresh TPM's persistent state. `random` is seeded for reproducible TPMs (--seed). */
export function freshPersistent(random: (n: number) => Uint8Array): Persistent {
  return {
    version: 1,
    endorsement: hierarchy(random),
    owner: hierarchy(random),
    platform: hierarchy(random),
    lockoutAuth: new Uint8Array(0),
    nv: new Map(),
    persistent: new Map(),
    rsaPrimaries: new Map(),
    clock: 0n,
    resetCount: 0,
    restartCount: 0,
    shutdown: "clear",
    savedPcrs: null,
    contextKey: random(32),
    failedTries: 0,
    maxTries: 32,
  };
}

/** PCR values after TPM Reset (PC Client: 0-16 and 23 zero, 17-22 all ones). */
export function resetPcrs(): Map<number, Uint8Array[]> {
  return new Map(
    PCR_BANKS.map((alg) => [
      alg as number,
      Array.from({ length: PCR_COUNT }, (_, i) => new Uint8Array(digestSize(alg)).fill(i >= 17 && i <= 22 ? 0xff : 0)),
    ]),
  );
}

/** A new NULL hierarchy, as every TPM Reset makes (Part 1 §14.4). */
export function freshNullHierarchy(): HierarchyState {
  return hierarchy((n) => new Uint8Array(randomBytes(n)));
}

export function freshVolatile(): Volatile {
  return {
    started: false,
    pcrs: resetPcrs(),
    pcrUpdateCounter: 0,
    objects: new Map(),
    sessions: new Map(),
    nullHierarchy: hierarchy((n) => new Uint8Array(randomBytes(n))),
    safe: true,
    contextSequence: 0n,
  };
}

export type { TPMT_PUBLIC };

/**
 * The part of a command that may run before the command's turn: work that depends only on the
 * command's own bytes and on secrets that commands do not change mid-flight. Today that is RSA key
 * generation for CreatePrimary and Create (rsa_prefetch.ts). Everything else about the command,
 * including every check, still happens in turn; a prepared key nobody takes is just dropped.
 */
import { COMMANDS } from "../src/tpm/commands.ts";
import { TPM_ALG, TPM_RH } from "../src/tpm/constants.ts";
import { decodeCommandFrame } from "../src/tpm/frame.ts";
import { decode } from "../src/tpm/marshal.ts";
import { publicRsa, TPMA_SESSION, type TPMS_SENSITIVE_CREATE, type TPMT_PUBLIC } from "../src/tpm/structures.ts";
import type { SimTpm } from "./sim_tpm.ts";

const RSA_BITS: readonly number[] = [1024, 2048, 3072, 4096];

/** Start preparing `command`; undefined when there is nothing to prepare (or it does not parse). */
export function prepareCommand(tpm: SimTpm, command: Uint8Array): Promise<void> | undefined {
  try {
    const frame = decodeCommandFrame(command, (code) => COMMANDS.get(code)?.handles.length);
    const def = COMMANDS.get(frame.code);
    if (def?.name !== "CreatePrimary" && def?.name !== "Create") return undefined;
    const args = decode(def.params, frame.parameters) as { inSensitive: TPMS_SENSITIVE_CREATE; inPublic: TPMT_PUBLIC };
    if (args.inPublic.type !== TPM_ALG.RSA || !RSA_BITS.includes(publicRsa(args.inPublic).keyBits)) return undefined;
    if (def.name === "Create") return tpm.rsaPrefetch.random(publicRsa(args.inPublic).keyBits);
    // A session that decrypts the first parameter hides inSensitive, on which the key depends.
    if (frame.auths.some((a) => TPMA_SESSION.has(a.sessionAttributes, "decrypt"))) return undefined;
    const seed = hierarchySeed(tpm, frame.handles[0]!);
    if (!seed) return undefined;
    return tpm.rsaPrefetch.primary(
      args.inPublic,
      seed,
      args.inSensitive.data,
      (id) => tpm.persistent.rsaPrimaries.has(id),
    );
  } catch {
    return undefined; // the command itself will answer what is wrong with it
  }
}

function hierarchySeed(tpm: SimTpm, handle: number): Uint8Array | undefined {
  switch (handle) {
    case TPM_RH.OWNER:
      return tpm.persistent.owner.seed;
    case TPM_RH.ENDORSEMENT:
      return tpm.persistent.endorsement.seed;
    case TPM_RH.PLATFORM:
      return tpm.persistent.platform.seed;
    case TPM_RH.NULL:
      return tpm.volatile.nullHierarchy.seed;
  }
  return undefined;
}

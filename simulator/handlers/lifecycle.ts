/**
 * Start-up and shut-down (Part 1 §12; Part 3 §9-§10): TPM Reset, Restart and Resume, with the
 * counters and PCRs each keeps or clears, and the clock's `safe` flag.
 */
import type { CommandArgs, ResponseArgs } from "../../src/tpm/command.ts";
import { SelfTest, Shutdown, Startup } from "../../src/tpm/commands.ts";
import { TPM_RC, TPM_SU } from "../../src/tpm/constants.ts";
import { rcParam } from "../rc.ts";
import type { SimTpm } from "../sim_tpm.ts";
import { freshNullHierarchy, resetPcrs } from "../state.ts";
import { nvStartup } from "./nv.ts";
import { handle } from "./index.ts";

function copyPcrs(p: Map<number, Uint8Array[]>): Map<number, Uint8Array[]> {
  return new Map([...p].map(([alg, values]) => [alg, values.map((v) => v.slice())]));
}

async function startup(
  tpm: SimTpm,
  { startupType }: CommandArgs<typeof Startup>,
): Promise<ResponseArgs<typeof Startup>> {
  const p = tpm.persistent;
  if (startupType === TPM_SU.STATE) {
    // TPM Resume: only after TPM2_Shutdown(STATE).
    if (p.shutdown !== "state" || !p.savedPcrs) throw rcParam(TPM_RC.VALUE, 1);
    tpm.volatile.pcrs = copyPcrs(p.savedPcrs);
    if (p.savedNull) tpm.volatile.nullHierarchy = p.savedNull;
    p.restartCount++;
  } else if (startupType === TPM_SU.CLEAR) {
    tpm.volatile.pcrs = resetPcrs();
    const reset = p.shutdown !== "state";
    if (reset) {
      p.resetCount++; // TPM Reset: and a new NULL hierarchy
      p.restartCount = 0;
      tpm.volatile.nullHierarchy = freshNullHierarchy();
    } else {
      p.restartCount++; // TPM Restart
      if (p.savedNull) tpm.volatile.nullHierarchy = p.savedNull;
    }
    nvStartup(p, reset);
    p.platform.authValue = new Uint8Array(0);
  } else {
    throw rcParam(TPM_RC.VALUE, 1);
  }
  p.savedPcrs = null;
  p.savedNull = null;
  p.shutdown = "none";
  tpm.volatile.started = true;
  await tpm.save();
  return {};
}

async function shutdown(
  tpm: SimTpm,
  { shutdownType }: CommandArgs<typeof Shutdown>,
): Promise<ResponseArgs<typeof Shutdown>> {
  const p = tpm.persistent;
  if (shutdownType === TPM_SU.STATE) {
    p.shutdown = "state";
    p.savedPcrs = copyPcrs(tpm.volatile.pcrs);
    p.savedNull = tpm.volatile.nullHierarchy;
  } else if (shutdownType === TPM_SU.CLEAR) {
    p.shutdown = "clear";
    p.savedPcrs = null;
  } else {
    throw rcParam(TPM_RC.VALUE, 1);
  }
  await tpm.save();
  return {};
}

export const lifecycle = [handle(Startup, startup), handle(Shutdown, shutdown), handle(SelfTest, () => ({}))];

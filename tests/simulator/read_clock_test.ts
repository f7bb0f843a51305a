/**
 * TPM2_ReadClock (Part 3 §29.1): `time` counts milliseconds from _TPM_Init, apart from Clock, which
 * TPM2_Clear sets back to zero. Once `time` was reckoned from the first ReadClock's Clock: the first
 * read said 0 (a TSS test wants more), and after Clear the difference went negative (TPM_RC_FAILURE).
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { Clear, ReadClock } from "../../src/tpm/commands.ts";
import { TPM_RH } from "../../src/tpm/constants.ts";
import { SIM_WIRES, startedSimOver } from "../helpers/sim.ts";

for (const wire of SIM_WIRES) {
  describe(`ReadClock, the simulator ${wire}`, () => {
    test("the first read after Startup already reports time since _TPM_Init", async () => {
      const sim = await startedSimOver(wire);
      try {
        const { currentTime } = await sim.tpm.execute(ReadClock, {});
        assert.ok(currentTime.time > 0n, `time ${currentTime.time}`);
      } finally {
        await sim.stop();
      }
    });

    test("after TPM2_Clear: the counters start over, time goes on", async () => {
      const sim = await startedSimOver(wire);
      try {
        const before = (await sim.tpm.execute(ReadClock, {})).currentTime;
        // Let Clock pass zero, so that Clear sets it back.
        await new Promise((r) => setTimeout(r, 5));
        await sim.tpm.execute(Clear, { authHandle: TPM_RH.LOCKOUT });
        const after = (await sim.tpm.execute(ReadClock, {})).currentTime;
        assert.ok(after.time >= before.time, `time ${before.time} then ${after.time}`);
        assert.equal(after.clockInfo.resetCount, 0);
        assert.equal(after.clockInfo.restartCount, 0);
      } finally {
        await sim.stop();
      }
    });
  });
}

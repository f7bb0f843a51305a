/**
 * TPM2_Startup and TPM2_Shutdown through the client across swtpm power cycles (CMD_INIT on the
 * control channel): an orderly Shutdown(STATE) + Startup(STATE) resumes with PCRs kept, while
 * Startup(CLEAR) resets them (Part 1 §12.2, Part 3 §9.3-9.4).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { Tpm } from "../../src/tpm/client.ts";
import { GetRandom, Shutdown, Startup } from "../../src/tpm/commands.ts";
import { TPM_ALG, TPM_RC, TPM_SU } from "../../src/tpm/constants.ts";
import { TpmResponseError } from "../../src/tpm/errors.ts";
import { pcrExtend, pcrRead, pcrSelection } from "../../src/tpm/pcrs.ts";
import { SwtpmTransport } from "../../src/tpm/transport/swtpm.ts";
import { startSwtpm, swtpmSkipReason } from "../helpers/swtpm.ts";

test(
  "Startup/Shutdown across power cycles: STATE resumes PCRs, CLEAR resets them",
  { skip: swtpmSkipReason() },
  async () => {
    const s = await startSwtpm({ transport: "tcp", flags: "" });
    const transport = new SwtpmTransport({ host: "127.0.0.1", port: s.port! });
    const tpm = new Tpm(transport);
    const pcr10 = async () =>
      (await pcrRead(tpm, [pcrSelection(TPM_ALG.SHA256, [10])])).values.get(TPM_ALG.SHA256)!.get(10)!;
    try {
      await transport.control.init();
      await assert.rejects(tpm.execute(GetRandom, { bytesRequested: 8 }), (e) => {
        assert.ok(e instanceof TpmResponseError && e.is(TPM_RC.INITIALIZE), String(e));
        assert.match(e.message, /TPM2_Startup/);
        return true;
      });
      await tpm.execute(Startup, { startupType: TPM_SU.CLEAR });
      await pcrExtend(tpm, 10, [{ hashAlg: TPM_ALG.SHA256, digest: new Uint8Array(32).fill(7) }]);
      const extended = await pcr10();
      assert.notDeepEqual(extended, new Uint8Array(32));

      await tpm.execute(Shutdown, { shutdownType: TPM_SU.STATE });
      await transport.control.init(); // power cycle
      await tpm.execute(Startup, { startupType: TPM_SU.STATE });
      assert.deepEqual(await pcr10(), extended, "TPM Resume keeps PCR 10");

      await tpm.execute(Shutdown, { shutdownType: TPM_SU.CLEAR });
      await transport.control.init();
      await tpm.execute(Startup, { startupType: TPM_SU.CLEAR });
      assert.deepEqual(await pcr10(), new Uint8Array(32), "TPM Reset clears PCR 10");
    } finally {
      await tpm.close();
      await s.stop();
    }
  },
);

/**
 * How a command handler says no: throw TpmRc with the response code, already carrying its
 * parameter, handle or session number when there is one (Part 2 §6.6.3).
 */
import { RC_MODIFIER } from "../src/tpm/constants.ts";

export class TpmRc extends Error {
  constructor(readonly rc: number, message = `TPM_RC 0x${rc.toString(16)}`) {
    super(message);
    this.name = "TpmRc";
  }
}

/** A format-1 code about parameter n (1-based). */
export const rcParam = (base: number, n: number) => new TpmRc(base | RC_MODIFIER.parameter(n));
/** A format-1 code about handle n (1-based). */
export const rcHandle = (base: number, n: number) => new TpmRc(base | RC_MODIFIER.handle(n));
/** A format-1 code about session n (1-based). */
export const rcSession = (base: number, n: number) => new TpmRc(base | RC_MODIFIER.session(n));
/** A format-0 code or warning. */
export const rc = (code: number) => new TpmRc(code);

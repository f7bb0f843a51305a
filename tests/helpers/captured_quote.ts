/** The captured swtpm quote of the raw vectors: the persistent AK and the TPM2_Quote it made over sha256:0,1,2,3,10. */
import { PCR_Read, ReadPublic } from "../../src/tpm/commands.ts";
import { decodeResponseFrame } from "../../src/tpm/frame.ts";
import { decode, type Infer } from "../../src/tpm/marshal.ts";
import { TPMT_SIGNATURE } from "../../src/tpm/structures.ts";
import { fromHex, rawHex } from "./vectors.ts";

/** A TPM2B_ATTEST ‖ TPMT_SIGNATURE response parameter area, split with the attest bytes kept as signed. */
export function splitAttestResponse(params: Uint8Array): { attest: Uint8Array; signature: TPMT_SIGNATURE } {
  const size = (params[0]! << 8) | params[1]!;
  return { attest: params.slice(2, 2 + size), signature: decode(TPMT_SIGNATURE, params.slice(2 + size)) };
}

/** ReadPublic of the AK that signed the captured quote (and Certify_AK_by_AK). */
export function capturedAk(): Infer<typeof ReadPublic.response> {
  const rp = decodeResponseFrame(rawHex("ReadPublic_AK_persistent.rsp.hex"), { responseHandles: 0, sessionCount: 0 });
  return decode(ReadPublic.response, rp.parameters);
}

/** The quote, fresh on each call (tests may change its bytes), with its qualifyingData and the quoted PCR values. */
export function capturedQuote(): {
  attest: Uint8Array;
  signature: TPMT_SIGNATURE;
  qualifyingData: Uint8Array;
  pcrValues: Uint8Array[];
} {
  const q = decodeResponseFrame(rawHex("Quote_AK_rsassa_sha256_pcrs_0_1_2_3_10.rsp.hex"), {
    responseHandles: 0,
    sessionCount: 1,
  });
  // PCR_Read of 0 and 10 from the same state; 1-3 were never extended and hold zeros.
  const pr = decodeResponseFrame(rawHex("PCR_Read_sha256_0_10.rsp.hex"), { responseHandles: 0, sessionCount: 0 });
  const [pcr0, pcr10] = decode(PCR_Read.response, pr.parameters).pcrValues;
  const zero = new Uint8Array(32);
  return {
    ...splitAttestResponse(q.parameters),
    qualifyingData: fromHex("0011223344556677"),
    pcrValues: [pcr0!, zero, zero, zero, pcr10!],
  };
}

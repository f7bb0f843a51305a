/**
 * Keylime's PCRBLOB, the third part of a quote string (spec/keylime.md §5): the tpm2-tools little-endian
 * PCR file. The codec lives in src/tpm/pcr_file.ts (src/tpm may not import src/protocol); this module
 * gives it the Keylime names.
 */
import { decodePcrFile, encodePcrFile, type PcrFile, PcrFileError, pcrFileValues } from "../tpm/pcr_file.ts";
import type { TPMS_PCR_SELECTION } from "../tpm/structures.ts";

export { PcrFileError as PcrBlobError };
export type { PcrFile as PcrBlob };

/** Build the PCRBLOB from one selection per bank and, per bank, the selected PCRs' values in ascending order. */
export function encodePcrBlob(
  selections: readonly TPMS_PCR_SELECTION[],
  values: readonly (readonly Uint8Array[])[],
): Uint8Array {
  return encodePcrFile(selections, values);
}

/** Parse a PCRBLOB strictly; throws PcrBlobError naming the field. */
export function decodePcrBlob(bytes: Uint8Array): PcrFile {
  return decodePcrFile(bytes);
}

/** The values of a parsed PCRBLOB by bank (hash algorithm) and PCR index. */
export function pcrBlobValues(blob: PcrFile): Map<number, Map<number, Uint8Array>> {
  return pcrFileValues(blob);
}

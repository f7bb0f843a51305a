/**
 * The project's own TPM manufacturer CA store, data/tpm-ca/ (from upstream's tpm_cert_store, see its
 * README), read from beside src/. The single-executable build (scripts/build_binary.mjs) replaces this
 * module with one that holds the same files, so the executable needs no data directory.
 */
import { fileURLToPath } from "node:url";
import { type CaFile, readCaFiles } from "./ek_trust.ts";

export function defaultTpmCaFiles(): Promise<CaFile[]> {
  return readCaFiles([fileURLToPath(new URL("../../data/tpm-ca/", import.meta.url))]);
}

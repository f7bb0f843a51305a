/**
 * The tpm2-tools file formats of a quote (tpm2-software/tpm2-tools 5.x, default formats), so our output
 * can be checked with `tpm2_checkquote -u ak.pub -m quote.msg -s quote.sig -f quote.pcrs -q <nonce>`
 * and tpm2-tools output can be checked with our verifier:
 *
 * | file       | written by                   | content                                     |
 * | ---------- | ---------------------------- | ------------------------------------------- |
 * | ak.pub     | tpm2_createak -u (tss)       | TPM2B_PUBLIC, with its 2-byte size          |
 * | quote.msg  | tpm2_quote -m                | TPMS_ATTEST (TPM2B_ATTEST contents)         |
 * | quote.sig  | tpm2_quote -s (tss)          | TPMT_SIGNATURE                              |
 * | quote.pcrs | tpm2_quote -o (serialized)   | little-endian PCR file, see pcr_file.ts     |
 */
import { mkdir, readFile, writeFile } from "node:fs/promises";
import * as path from "node:path";
import { TpmLibraryError } from "./errors.ts";
import { decode, encode } from "./marshal.ts";
import { decodePcrFile, type PcrFile } from "./pcr_file.ts";
import {
  TPM2B_PUBLIC,
  TPMS_ATTEST,
  type TPMS_ATTEST as Attest,
  type TPMT_PUBLIC,
  TPMT_SIGNATURE,
  type TPMT_SIGNATURE as Signature,
} from "./structures.ts";

/** A tpm2-tools file that does not hold what its name promises. */
export class TpmFileError extends TpmLibraryError {
  readonly code = "ERR_TPM_FILE";
  readonly file: string;
  constructor(file: string, message: string, options?: { cause?: unknown }) {
    super(`Cannot read ${file}: ${message}`, options);
    this.name = "TpmFileError";
    this.file = file;
  }
}

/** File names `tpm quote --out-dir` writes, as in the tpm2-tools documentation examples. */
export const QUOTE_FILES = {
  akPub: "ak.pub",
  message: "quote.msg",
  signature: "quote.sig",
  pcrs: "quote.pcrs",
} as const;

function parse<T>(file: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    throw new TpmFileError(file, (e as Error).message, { cause: e });
  }
}

/** ak.pub: TPM2B_PUBLIC including its size. */
export function encodePublicFile(pub: TPMT_PUBLIC): Uint8Array {
  return encode(TPM2B_PUBLIC, pub);
}
export function decodePublicFile(bytes: Uint8Array, file: string = QUOTE_FILES.akPub): TPMT_PUBLIC {
  return parse(file, () => decode(TPM2B_PUBLIC, bytes));
}

/** quote.msg: the TPMS_ATTEST bytes, unchanged (the signature covers exactly these). */
export function decodeAttestFile(bytes: Uint8Array, file: string = QUOTE_FILES.message): Attest {
  return parse(file, () => decode(TPMS_ATTEST, bytes));
}

/** quote.sig in tpm2-tools' default "tss" format: a marshalled TPMT_SIGNATURE. */
export function encodeSignatureFile(sig: Signature): Uint8Array {
  return encode(TPMT_SIGNATURE, sig);
}
export function decodeSignatureFile(bytes: Uint8Array, file: string = QUOTE_FILES.signature): Signature {
  return parse(file, () => decode(TPMT_SIGNATURE, bytes));
}

/** quote.pcrs: the little-endian PCR file. */
export function decodePcrsFile(bytes: Uint8Array, file: string = QUOTE_FILES.pcrs): PcrFile {
  return parse(file, () => decodePcrFile(bytes));
}

/** What a quote directory holds. */
export interface QuoteFiles {
  readonly akPublic: TPMT_PUBLIC;
  /** TPMS_ATTEST bytes as signed. */
  readonly attest: Uint8Array;
  readonly signature: Signature;
  /** The PCR file bytes (encodePcrFile). */
  readonly pcrs: Uint8Array;
}

/** Write ak.pub, quote.msg, quote.sig and quote.pcrs into `dir` (created if missing). */
export async function writeQuoteFiles(dir: string, files: QuoteFiles): Promise<void> {
  await mkdir(dir, { recursive: true });
  await Promise.all([
    writeFile(path.join(dir, QUOTE_FILES.akPub), encodePublicFile(files.akPublic)),
    writeFile(path.join(dir, QUOTE_FILES.message), files.attest),
    writeFile(path.join(dir, QUOTE_FILES.signature), encodeSignatureFile(files.signature)),
    writeFile(path.join(dir, QUOTE_FILES.pcrs), files.pcrs),
  ]);
}

/** The files of a quote directory, each parsed strictly (the raw bytes are kept where they are signed or sent). */
export interface ReadQuoteFiles extends QuoteFiles {
  /** ak.pub as stored: base64 of this is Keylime's `aik_tpm`. */
  readonly akPublicBytes: Uint8Array;
  readonly attestDecoded: Attest;
  readonly pcrFile: PcrFile;
}

/** Read and parse the four files of a quote directory (written by us or by tpm2-tools). */
export async function readQuoteFiles(dir: string): Promise<ReadQuoteFiles> {
  const read = async (name: string) => new Uint8Array(await readFile(path.join(dir, name)));
  const [akPublicBytes, attest, sig, pcrs] = await Promise.all([
    read(QUOTE_FILES.akPub),
    read(QUOTE_FILES.message),
    read(QUOTE_FILES.signature),
    read(QUOTE_FILES.pcrs),
  ]);
  return {
    akPublic: decodePublicFile(akPublicBytes),
    akPublicBytes,
    attest,
    attestDecoded: decodeAttestFile(attest),
    signature: decodeSignatureFile(sig),
    pcrs,
    pcrFile: decodePcrsFile(pcrs),
  };
}

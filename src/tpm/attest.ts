/**
 * Software checks of TPM2_Quote and TPM2_Certify results (Part 2 §10.12 TPMS_ATTEST, Part 3 §18).
 *
 * Order: the header (magic, type), a strict parse, the signature over the exact bytes, then the content
 * (nonce, PCR digest or certified Name, clock). The signature goes before content so that content checks
 * only ever report on data the TPM really signed.
 */
import { DIGEST_SIZE, hex, TPM_GENERATED_VALUE, TPM_ST } from "./constants.ts";
import { algName, hash } from "./crypto.ts";
import { MarshalError, TpmLibraryError } from "./errors.ts";
import { decode } from "./marshal.ts";
import { selectedPcrs } from "./pcrs.ts";
import { SignatureError, signatureHashAlg, verifySignature } from "./signature.ts";
import {
  attestCertify,
  attestQuote,
  TPMS_ATTEST,
  type TPMS_ATTEST as Attest,
  type TPMS_CLOCK_INFO,
  type TPMS_PCR_SELECTION,
  type TPMS_QUOTE_INFO,
  type TPMT_PUBLIC,
  type TPMT_SIGNATURE,
} from "./structures.ts";
import { sameBytes } from "./bytes.ts";
import { toHex } from "../util/encoding.ts";

/** Why an attestation was refused. */
export type AttestationFault =
  /** Not a well-formed TPMS_ATTEST. */
  | "parse"
  /** magic is not TPM_GENERATED_VALUE: the TPM did not produce it. */
  | "magic"
  /** Another kind of attestation (a certify where a quote was expected ...). */
  | "type"
  /** The signature does not verify with the signer (see `cause`, a SignatureError). */
  | "signature"
  /** extraData is not the expected qualifying data. */
  | "nonce"
  /** The PCR values are for another selection than the quoted one. */
  | "pcr-selection"
  /** The PCR values given do not fit the quoted selection (count or sizes). */
  | "pcr-values"
  /** The PCR values do not hash to pcrDigest. */
  | "pcr-digest"
  /** clockInfo.safe is NO: the clock may have gone back. */
  | "clock-unsafe"
  /** The certified object's Name is not the expected one. */
  | "name";

/** An attestation that failed a check; `reason` names the check. */
export class AttestationError extends TpmLibraryError {
  readonly code = "ERR_TPM_ATTESTATION";
  readonly reason: AttestationFault;
  constructor(reason: AttestationFault, message: string, options?: { cause?: unknown }) {
    super(`Attestation check failed (${reason}): ${message}`, options);
    this.name = "AttestationError";
    this.reason = reason;
  }
}

const TYPE_NAMES: Readonly<Record<number, string>> = {
  [TPM_ST.ATTEST_QUOTE]: "TPM_ST_ATTEST_QUOTE",
  [TPM_ST.ATTEST_CERTIFY]: "TPM_ST_ATTEST_CERTIFY",
};

/**
 * Check the header of TPMS_ATTEST bytes and parse them strictly (no trailing bytes).
 * `expectedType` is a TPM_ST_ATTEST_* value.
 */
export function parseAttest(bytes: Uint8Array, expectedType: number): Attest {
  if (!(bytes instanceof Uint8Array) || bytes.length < 6) {
    throw new AttestationError("parse", `TPMS_ATTEST needs at least 6 bytes, got ${bytes?.length ?? 0}`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = view.getUint32(0);
  if (magic !== TPM_GENERATED_VALUE) {
    throw new AttestationError(
      "magic",
      `magic is ${hex(magic, 8)}, not TPM_GENERATED_VALUE ${hex(TPM_GENERATED_VALUE, 8)}`,
    );
  }
  const type = view.getUint16(4);
  if (type !== expectedType) {
    throw new AttestationError(
      "type",
      `type is ${hex(type)}, expected ${TYPE_NAMES[expectedType] ?? hex(expectedType)}`,
    );
  }
  try {
    return decode(TPMS_ATTEST, bytes);
  } catch (e) {
    if (e instanceof MarshalError) throw new AttestationError("parse", e.message, { cause: e });
    throw e;
  }
}

function checkSignature(signer: TPMT_PUBLIC, attest: Uint8Array, signature: TPMT_SIGNATURE): void {
  try {
    verifySignature(signer, attest, signature);
  } catch (e) {
    if (e instanceof SignatureError) throw new AttestationError("signature", e.message, { cause: e });
    throw e;
  }
}

function checkNonce(extraData: Uint8Array, qualifyingData: Uint8Array): void {
  if (!sameBytes(extraData, qualifyingData)) {
    throw new AttestationError(
      "nonce",
      `extraData (${extraData.length} bytes) differs from the expected qualifying data (${qualifyingData.length} bytes)`,
    );
  }
}

export interface CheckQuoteInput {
  /** TPMS_ATTEST bytes as signed (the TPM2B_ATTEST contents, no size prefix). */
  readonly attest: Uint8Array;
  readonly signature: TPMT_SIGNATURE;
  /** The public area of the key that signed (the AK). */
  readonly signer: TPMT_PUBLIC;
  /** The qualifyingData given to TPM2_Quote; extraData must equal it. */
  readonly qualifyingData: Uint8Array;
  /** Values of the quoted PCRs, flat in selection order (bank by bank, PCRs ascending); checked against pcrDigest. */
  readonly pcrValues?: readonly Uint8Array[];
  /** The selection pcrValues were read for (a PCR blob's, say): it must be the quoted one. */
  readonly pcrSelection?: readonly TPMS_PCR_SELECTION[];
  /** Refuse clockInfo.safe = NO (default false). */
  readonly requireSafe?: boolean;
}

export interface QuoteAttest {
  readonly attest: Attest;
  readonly qualifiedSigner: Uint8Array;
  readonly extraData: Uint8Array;
  readonly clockInfo: TPMS_CLOCK_INFO;
  readonly firmwareVersion: bigint;
  readonly pcrSelect: TPMS_PCR_SELECTION[];
  readonly pcrDigest: Uint8Array;
  /** The signature's hash algorithm, which is also the hash of pcrDigest. */
  readonly hashAlg: number;
}

/** Check a TPM2_Quote result; returns the decoded attestation or throws AttestationError. */
export function checkQuoteAttest(input: CheckQuoteInput): QuoteAttest {
  return checkParsedQuote(parseAttest(input.attest, TPM_ST.ATTEST_QUOTE), input);
}

/**
 * The checks of checkQuoteAttest after the parse, for a caller that parsed `input.attest` with
 * parseAttest already (to check its own rules first) and must not parse it twice.
 */
export function checkParsedQuote(attest: Attest, input: CheckQuoteInput): QuoteAttest {
  checkSignature(input.signer, input.attest, input.signature);
  const hashAlg = signatureHashAlg(input.signature);
  checkNonce(attest.extraData, input.qualifyingData);
  const quote = attestQuote(attest);
  if (input.pcrSelection !== undefined) checkSelection(quote.pcrSelect, input.pcrSelection);
  if (input.pcrValues !== undefined) checkPcrDigest(quote, hashAlg, input.pcrValues);
  if (input.requireSafe === true && !attest.clockInfo.safe) {
    throw new AttestationError("clock-unsafe", "clockInfo.safe is NO: the TPM clock may have been rolled back");
  }
  return {
    attest,
    qualifiedSigner: attest.qualifiedSigner,
    extraData: attest.extraData,
    clockInfo: attest.clockInfo,
    firmwareVersion: attest.firmwareVersion,
    pcrSelect: quote.pcrSelect,
    pcrDigest: quote.pcrDigest,
    hashAlg,
  };
}

/** Same banks in the same order with the same PCRs (sizeofSelect may differ: 3 in a blob, 3 or 4 from a TPM). */
function checkSelection(quoted: readonly TPMS_PCR_SELECTION[], given: readonly TPMS_PCR_SELECTION[]): void {
  const pcrs = (sels: readonly TPMS_PCR_SELECTION[]) =>
    sels.map((s) => `${algName(s.hash)}:${selectedPcrs(s).join(",")}`).join("+") || "(none)";
  if (pcrs(quoted) !== pcrs(given)) {
    throw new AttestationError(
      "pcr-selection",
      `the PCR values are for ${pcrs(given)}, the quote selects ${pcrs(quoted)}`,
    );
  }
}

/** pcrDigest = H_hashAlg(values of every selected PCR, in selection order) (Part 3 §18.4). */
function checkPcrDigest(quote: TPMS_QUOTE_INFO, hashAlg: number, values: readonly Uint8Array[]): void {
  let next = 0;
  for (const sel of quote.pcrSelect) {
    const size = DIGEST_SIZE[sel.hash];
    for (const pcr of selectedPcrs(sel)) {
      const v = values[next++];
      if (v === undefined) {
        const total = quote.pcrSelect.reduce((n, s) => n + selectedPcrs(s).length, 0);
        throw new AttestationError("pcr-values", `${values.length} PCR values given for ${total} quoted PCRs`);
      }
      if (v.length !== size) {
        throw new AttestationError("pcr-values", `${algName(sel.hash)} PCR ${pcr} value is ${v.length} bytes`);
      }
    }
  }
  if (next !== values.length) {
    throw new AttestationError("pcr-values", `${values.length} PCR values given for ${next} quoted PCRs`);
  }
  const digest = hash(hashAlg, ...values);
  if (!sameBytes(digest, quote.pcrDigest)) {
    throw new AttestationError(
      "pcr-digest",
      `${algName(hashAlg)} of the PCR values is ${toHex(digest)}, the quote's pcrDigest is ${toHex(quote.pcrDigest)}`,
    );
  }
}

export interface CheckCertifyInput {
  /** TPMS_ATTEST bytes as signed (certifyInfo contents, no size prefix). */
  readonly attest: Uint8Array;
  readonly signature: TPMT_SIGNATURE;
  /** The public area of the certifying key (signHandle). */
  readonly signer: TPMT_PUBLIC;
  readonly qualifyingData: Uint8Array;
  /** Name of the certified object (nameAlg ‖ H(TPMT_PUBLIC)); see crypto.ts objectName. */
  readonly certifiedName: Uint8Array;
}

export interface CertifyAttest {
  readonly attest: Attest;
  readonly qualifiedSigner: Uint8Array;
  readonly extraData: Uint8Array;
  readonly clockInfo: TPMS_CLOCK_INFO;
  readonly firmwareVersion: bigint;
  readonly name: Uint8Array;
  readonly qualifiedName: Uint8Array;
  readonly hashAlg: number;
}

/** Check a TPM2_Certify result; returns the decoded attestation or throws AttestationError. */
export function checkCertifyAttest(input: CheckCertifyInput): CertifyAttest {
  const attest = parseAttest(input.attest, TPM_ST.ATTEST_CERTIFY);
  checkSignature(input.signer, input.attest, input.signature);
  const hashAlg = signatureHashAlg(input.signature);
  checkNonce(attest.extraData, input.qualifyingData);
  const info = attestCertify(attest);
  if (!sameBytes(info.name, input.certifiedName)) {
    throw new AttestationError(
      "name",
      `the certified object is ${toHex(info.name)}, expected ${toHex(input.certifiedName)}`,
    );
  }
  return {
    attest,
    qualifiedSigner: attest.qualifiedSigner,
    extraData: attest.extraData,
    clockInfo: attest.clockInfo,
    firmwareVersion: attest.firmwareVersion,
    name: info.name,
    qualifiedName: info.qualifiedName,
    hashAlg,
  };
}

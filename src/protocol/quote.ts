/**
 * The Keylime quote string and its software verification (spec/keylime.md §0.6, §5).
 *
 * ```
 * quote = "r" + toBase64(TPMS_ATTEST) + ":" + toBase64(TPMT_SIGNATURE) + ":" + toBase64(PCRBLOB)
 * ```
 * verifyQuote implements the verifier checks 2-5 of §5 (keylime/keylime: keylime/tpm/tpm_util.py
 * `checkquote`, keylime/tpm/tpm_main.py `check_quote`): signature with the AK, nonce, PCR digest,
 * selection, clock. Policy on PCR values (step 6) belongs to the caller.
 */
import { AttestationError, type AttestationFault, checkParsedQuote, parseAttest } from "../tpm/attest.ts";
import { TPM_ALG, TPM_ST } from "../tpm/constants.ts";
import { algName } from "../tpm/crypto.ts";
import { decode, encode } from "../tpm/marshal.ts";
import { type PcrFile, PcrFileError } from "../tpm/pcr_file.ts";
import { selectedPcrs } from "../tpm/pcrs.ts";
import { signatureHashAlg } from "../tpm/signature.ts";
import {
  TPM2B_PUBLIC,
  type TPMS_ATTEST,
  type TPMS_CLOCK_INFO,
  type TPMS_PCR_SELECTION,
  type TPMT_PUBLIC,
  TPMT_SIGNATURE,
} from "../tpm/structures.ts";
import { decodePcrBlob } from "./pcr_blob.ts";
import { fromBase64, toBase64 } from "../util/encoding.ts";

/** Which part of a quote string was malformed. */
export type QuotePart = "quote" | "TPMS_ATTEST" | "TPMT_SIGNATURE" | "PCRBLOB";

/** A quote string that does not have the Keylime format; `part` names where. */
export class QuoteFormatError extends Error {
  readonly code = "ERR_QUOTE_FORMAT";
  readonly part: QuotePart;
  constructor(part: QuotePart, message: string, options?: { cause?: unknown }) {
    super(`Malformed Keylime quote: ${part}: ${message}`, options);
    this.name = "QuoteFormatError";
    this.part = part;
  }
}

/** Why a quote was refused, one per check. */
export type QuoteFault =
  /** The quote string is malformed (cause: QuoteFormatError). */
  | "format"
  /** The AK public area cannot be parsed or is not an RSA or ECC key. */
  | "ak"
  /** The PCRBLOB does not parse (cause: PcrBlobError). */
  | "pcr-blob"
  /** TPMS_ATTEST: not parseable, wrong magic, not a quote. */
  | "parse"
  | "magic"
  | "type"
  /** The hash algorithm asked for is unsupported, or the signature used another one. */
  | "hash-alg"
  /** RSA AKs must sign with RSASSA, EC AKs with ECDSA. */
  | "signature-scheme"
  /** The signature does not verify with the AK. */
  | "signature"
  /** extraData is not the ASCII nonce. */
  | "nonce"
  /** The PCRBLOB's selection is not the quoted one, or the hash_alg bank is not quoted. */
  | "pcr-selection"
  /** The PCRBLOB values do not hash to pcrDigest. */
  | "pcr-digest"
  /** clockInfo.safe is NO. */
  | "clock-unsafe"
  /** Against the previous quote: resetCount went down, restartCount went down within a reset, clock did not advance. */
  | "reset-count"
  | "restart-count"
  | "clock";

/** A quote that failed verification; `reason` names the check (stable, for programs and logs). */
export class QuoteVerificationError extends Error {
  readonly code = "ERR_QUOTE_VERIFICATION";
  readonly reason: QuoteFault;
  constructor(reason: QuoteFault, message: string, options?: { cause?: unknown }) {
    super(`Quote verification failed (${reason}): ${message}`, options);
    this.name = "QuoteVerificationError";
    this.reason = reason;
  }
}

export interface QuoteParts {
  /** TPMS_ATTEST bytes as signed (the TPM2B_ATTEST contents). */
  readonly attest: Uint8Array;
  /** TPMT_SIGNATURE, decoded or marshalled. */
  readonly signature: TPMT_SIGNATURE | Uint8Array;
  /** The PCRBLOB (encodePcrBlob). */
  readonly pcrBlob: Uint8Array;
}

export interface DecodedQuote {
  readonly attest: Uint8Array;
  readonly signature: TPMT_SIGNATURE;
  readonly signatureBytes: Uint8Array;
  readonly pcrBlob: Uint8Array;
}

/** Build the quote string. */
export function encodeQuote(parts: QuoteParts): string {
  const sig = parts.signature instanceof Uint8Array ? parts.signature : encode(TPMT_SIGNATURE, parts.signature);
  return `r${toBase64(parts.attest)}:${toBase64(sig)}:${toBase64(parts.pcrBlob)}`;
}

/** Longest quote string accepted, far above a real one (3 × 4/3 × a few kB); bounds work on hostile input. */
const MAX_QUOTE_LENGTH = 64 * 1024;

/** Standard base64 with padding and zero spare bits only, so each byte string has one spelling. */
function unb64(part: QuotePart, s: string): Uint8Array {
  if (s.length === 0) throw new QuoteFormatError(part, "is empty");
  try {
    return fromBase64(s);
  } catch (e) {
    throw new QuoteFormatError(part, (e as Error).message.replace(/^a \d+-character string /, ""));
  }
}

/** Split and decode a quote string; throws QuoteFormatError naming the part. */
export function decodeQuote(quote: string): DecodedQuote {
  if (typeof quote !== "string") throw new QuoteFormatError("quote", "is not a string");
  if (quote.length > MAX_QUOTE_LENGTH) {
    throw new QuoteFormatError("quote", `is ${quote.length} characters, more than ${MAX_QUOTE_LENGTH}`);
  }
  if (!quote.startsWith("r")) throw new QuoteFormatError("quote", `must start with "r"`);
  const parts = quote.slice(1).split(":");
  if (parts.length !== 3) throw new QuoteFormatError("quote", `has ${parts.length} ":"-separated parts, expected 3`);
  const attest = unb64("TPMS_ATTEST", parts[0]!);
  const signatureBytes = unb64("TPMT_SIGNATURE", parts[1]!);
  const pcrBlob = unb64("PCRBLOB", parts[2]!);
  let signature: TPMT_SIGNATURE;
  try {
    signature = decode(TPMT_SIGNATURE, signatureBytes);
  } catch (e) {
    throw new QuoteFormatError("TPMT_SIGNATURE", (e as Error).message, { cause: e });
  }
  return { attest, signature, signatureBytes, pcrBlob };
}

/** Clock state of the previous accepted quote of the same agent. */
export interface PreviousClock {
  readonly clock: bigint;
  readonly resetCount: number;
  readonly restartCount: number;
}

interface VerifyQuoteCommon {
  readonly quote: string;
  /** The nonce the verifier sent; extraData must be its ASCII (UTF-8) bytes. */
  readonly nonce: string;
  /** The agent's hash_alg as a TPM_ALG id (TPM_ALG.SHA256 ...). */
  readonly hashAlg: number;
  readonly previous?: PreviousClock;
}

/** The AK as a public area, or as the registrar's `aik_tpm` bytes (TPM2B_PUBLIC with its size). */
export type VerifyQuoteInput =
  & VerifyQuoteCommon
  & ({ readonly akPublic: TPMT_PUBLIC; readonly aikTpm?: undefined } | {
    readonly aikTpm: Uint8Array;
    readonly akPublic?: undefined;
  });

export interface VerifiedQuote {
  /** Values of the hash_alg bank by PCR index. */
  readonly pcrs: Map<number, Uint8Array>;
  /** Every bank of the PCRBLOB, by hash algorithm then PCR index. */
  readonly banks: Map<number, Map<number, Uint8Array>>;
  readonly attest: TPMS_ATTEST;
  readonly clock: TPMS_CLOCK_INFO;
  readonly pcrSelect: TPMS_PCR_SELECTION[];
  readonly pcrDigest: Uint8Array;
}

/** Hash algorithms Keylime accepts for quotes (keylime/common/algorithms.py Hash) that we can compute. */
const QUOTE_HASHES: ReadonlySet<number> = new Set([TPM_ALG.SHA1, TPM_ALG.SHA256, TPM_ALG.SHA384, TPM_ALG.SHA512]);

/**
 * Verify a Keylime quote: parse everything, then the signature, then the content. Throws
 * QuoteVerificationError with the first failed check as `reason`.
 */
export function verifyQuote(input: VerifyQuoteInput): VerifiedQuote {
  const ak = akOf(input);
  if (!QUOTE_HASHES.has(input.hashAlg)) {
    throw new QuoteVerificationError("hash-alg", `hash algorithm ${algName(input.hashAlg)} is not accepted`);
  }

  // 1. Parse all three parts before any crypto.
  let q: DecodedQuote;
  try {
    q = decodeQuote(input.quote);
  } catch (e) {
    throw new QuoteVerificationError("format", (e as Error).message, { cause: e });
  }
  let blob: PcrFile;
  try {
    blob = decodePcrBlob(q.pcrBlob);
  } catch (e) {
    if (!(e instanceof PcrFileError)) throw e;
    throw new QuoteVerificationError("pcr-blob", e.message, { cause: e });
  }
  const attest = rethrowAttestation(() => parseAttest(q.attest, TPM_ST.ATTEST_QUOTE));

  // 2. Keylime's scheme and hash rules, then the signature itself (checkquote in tpm_util.py).
  const sigAlg = q.signature.sigAlg;
  const wantAlg = ak.type === TPM_ALG.RSA ? TPM_ALG.RSASSA : TPM_ALG.ECDSA;
  if (sigAlg !== wantAlg) {
    throw new QuoteVerificationError(
      "signature-scheme",
      `${algName(ak.type)} AKs must sign with ${algName(wantAlg)}, the quote is signed with ${algName(sigAlg)}`,
    );
  }
  const sigHash = signatureHashAlg(q.signature);
  if (sigHash !== input.hashAlg) {
    throw new QuoteVerificationError(
      "hash-alg",
      `the quote is signed with ${algName(sigHash)}, the agent's hash_alg is ${algName(input.hashAlg)}`,
    );
  }
  // 3-5. The one TPMS_ATTEST check (attest.ts), on the attestation parsed above: signature, nonce, the
  // PCRBLOB's selection and values against the quoted selection and pcrDigest, a safe clock.
  const checked = rethrowAttestation(() =>
    checkParsedQuote(attest, {
      attest: q.attest,
      signature: q.signature,
      signer: ak,
      qualifyingData: new TextEncoder().encode(input.nonce),
      pcrSelection: blob.selections,
      pcrValues: blob.values.flat(),
      requireSafe: true,
    })
  );
  // Keylime quotes the hash_alg bank (tpm_util.py checkquote); and the clock against the previous quote.
  if (!checked.pcrSelect.some((s) => s.hash === input.hashAlg && selectedPcrs(s).length > 0)) {
    throw new QuoteVerificationError("pcr-selection", `the quote has no PCR of the ${algName(input.hashAlg)} bank`);
  }
  const clock = checked.clockInfo;
  if (input.previous) checkClock(clock, input.previous);

  const banks = new Map(
    blob.selections.map((sel, i) => [sel.hash, new Map(selectedPcrs(sel).map((p, k) => [p, blob.values[i]![k]!]))]),
  );
  return {
    pcrs: banks.get(input.hashAlg) ?? new Map(),
    banks,
    attest: checked.attest,
    clock,
    pcrSelect: checked.pcrSelect,
    pcrDigest: checked.pcrDigest,
  };
}

function akOf(input: VerifyQuoteInput): TPMT_PUBLIC {
  let ak: TPMT_PUBLIC;
  if (input.aikTpm !== undefined) {
    try {
      ak = decode(TPM2B_PUBLIC, input.aikTpm);
    } catch (e) {
      throw new QuoteVerificationError("ak", `aik_tpm is not a TPM2B_PUBLIC: ${(e as Error).message}`, { cause: e });
    }
  } else if (input.akPublic !== undefined) {
    ak = input.akPublic;
  } else {
    throw new QuoteVerificationError("ak", "neither akPublic nor aikTpm was given");
  }
  if (ak.type !== TPM_ALG.RSA && ak.type !== TPM_ALG.ECC) {
    throw new QuoteVerificationError("ak", `the AK is a ${algName(ak.type)} object, not an RSA or ECC key`);
  }
  return ak;
}

function rethrowAttestation<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (!(e instanceof AttestationError)) throw e;
    // The attestation's reasons are the quote's, except values that do not fit their own selection:
    // that is a malformed PCRBLOB. ("name" belongs to certify checks, which a quote never meets.)
    const reason = e.reason === "pcr-values"
      ? "pcr-blob"
      : e.reason as Exclude<AttestationFault, "pcr-values" | "name">;
    throw new QuoteVerificationError(reason, e.message, { cause: e });
  }
}

/**
 * resetCount never goes down; restartCount goes down only when resetCount went up (a TPM Reset sets it
 * to 0); Clock only moves forward (it survives resets and is saved to NV).
 */
export function checkClock(now: TPMS_CLOCK_INFO, prev: PreviousClock): void {
  if (now.resetCount < prev.resetCount) {
    throw new QuoteVerificationError("reset-count", `resetCount went from ${prev.resetCount} to ${now.resetCount}`);
  }
  if (now.resetCount === prev.resetCount && now.restartCount < prev.restartCount) {
    throw new QuoteVerificationError(
      "restart-count",
      `restartCount went from ${prev.restartCount} to ${now.restartCount} without a TPM reset`,
    );
  }
  if (now.clock <= prev.clock) {
    throw new QuoteVerificationError("clock", `clock went from ${prev.clock} to ${now.clock}, it must increase`);
  }
}

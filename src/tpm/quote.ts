/**
 * TPM2_Quote with the PCR values it covers (Part 3 §18.4; keylime.md §5): quote, read the PCRs, and
 * check that they hash to the quoted pcrDigest; a PCR that moved in between means quoting again.
 */
import type { Tpm } from "./client.ts";
import { Quote } from "./commands.ts";
import { TPM_ALG } from "./constants.ts";
import { hash } from "./crypto.ts";
import { PcrsUnstableError } from "./errors.ts";
import { encode } from "./marshal.ts";
import type { LoadedKey } from "./objects.ts";
import { pcrRead, pcrSelection } from "./pcrs.ts";
import { signatureHashAlg } from "./signature.ts";
import { flushSession, startAuthSession } from "./session_start.ts";
import type { Session } from "./sessions.ts";
import {
  attestQuote,
  TPMS_ATTEST,
  type TPMS_ATTEST as Attest,
  type TPMS_PCR_SELECTION,
  type TPMT_SIGNATURE,
} from "./structures.ts";

export interface QuoteRequest {
  /** qualifyingData, e.g. the ASCII bytes of a verifier's nonce. */
  readonly nonce: Uint8Array;
  /** PCR indices of the bank `hashAlg`. */
  readonly pcrs: readonly number[];
  readonly hashAlg: number;
  /**
   * The session authorizing the AK. Default: a fresh HMAC session that encrypts the quoted
   * attestation and is flushed afterwards, as rust-keylime does.
   */
  readonly session?: Session;
  /** Attempts when PCRs change between quote and read (Keylime uses 5). */
  readonly attempts?: number;
}

export interface QuoteResult {
  /** The TPMS_ATTEST bytes that were signed. */
  readonly attest: Uint8Array;
  readonly attestation: Attest;
  readonly signature: TPMT_SIGNATURE;
  readonly selection: TPMS_PCR_SELECTION;
  /** The quoted PCR values, ascending by index. */
  readonly pcrs: Map<number, Uint8Array>;
}

/** TPM_ALG_NULL: sign with the AK's own scheme. */
const NULL_SCHEME = { scheme: TPM_ALG.NULL, details: null };

export async function quote(tpm: Tpm, ak: LoadedKey, req: QuoteRequest): Promise<QuoteResult> {
  const selection = pcrSelection(req.hashAlg, req.pcrs);
  const own = req.session ? undefined : await startAuthSession(tpm, { flags: { encrypt: true, decrypt: true } });
  try {
    const attempts = req.attempts ?? 5;
    for (let attempt = 1; attempt <= attempts; attempt++) {
      const q = await tpm.execute(
        Quote,
        { signHandle: ak.handle, qualifyingData: req.nonce, inScheme: NULL_SCHEME, PCRselect: [selection] },
        { sessions: [req.session ?? own!], names: [ak.name] },
      );
      const read = await pcrRead(tpm, [selection]);
      const values = read.values.get(req.hashAlg)!;
      const ordered = [...values.keys()].sort((a, b) => a - b).map((i) => values.get(i)!);
      const info = attestQuote(q.quoted);
      // pcrDigest is computed with the signing scheme's hash (Part 3 §18.4).
      if (Buffer.compare(hash(signatureHash(q.signature, req.hashAlg), ...ordered), info.pcrDigest) === 0) {
        return {
          attest: encode(TPMS_ATTEST, q.quoted),
          attestation: q.quoted,
          signature: q.signature,
          selection,
          pcrs: new Map([...values].sort(([a], [b]) => a - b)),
        };
      }
    }
    throw new PcrsUnstableError(
      `PCRs changed between TPM2_Quote and TPM2_PCR_Read ${attempts} times in a row; try again`,
    );
  } finally {
    if (own) await flushSession(tpm, own);
  }
}

/** The hash the signing scheme used: the TPM computes pcrDigest with the signing key's scheme hash. */
function signatureHash(sig: TPMT_SIGNATURE, fallback: number): number {
  const h = signatureHashAlg(sig);
  return h === TPM_ALG.NULL ? fallback : h;
}

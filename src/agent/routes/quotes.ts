/**
 * quotes/identity and quotes/integrity (keylime.md §4, §5). The identity quote covers PCR 16 only and
 * carries the NK; the integrity quote covers the mask plus PCR 16, carries the NK when `partial=0`, the IMA
 * list from `ima_ml_entry` when the agent has one, and the UEFI event log when PCR 0 is in the mask.
 * Upstream: keylime/rust-keylime keylime-agent/src/quotes_handler.rs.
 */
import { agentStatus, encAlgName, type NkBindingMode, type QuoteResults } from "../../protocol/agent_api.ts";
import type { ApiVersion } from "../../protocol/api_version.ts";
import { identityNonceBytes } from "../../protocol/nk_certify.ts";
import type { CertifiedNk } from "../identity.ts";
import type { NkFields } from "../nk_certification.ts";
import { maskPcrs, type QuoteAlgorithms } from "../quoter.ts";
import { RouteError, type RouteHandlers } from "./handler.ts";
import { STREAM_PLACEHOLDER, WithStreamedText } from "./streamed_text.ts";

/** The IMA and UEFI logs a quote answer carries. */
export interface MeasurementSource {
  /**
   * The IMA list from entry `entry` (0 when past the end), located now (after the quote, so it covers at
   * least what PCR 10 does) and read as the answer is sent; undefined when the agent has no IMA list.
   */
  ima(entry: number): Promise<{ entry: number; chunks(): AsyncIterable<Uint8Array> } | undefined>;
  /** The UEFI event log; undefined when there is none. */
  measuredBoot(): Promise<Uint8Array | undefined>;
}

export interface QuoteRouteDeps {
  quoter: {
    readonly algorithms: QuoteAlgorithms;
    quote(nonce: string, pcrs: readonly number[]): Promise<string>;
    certifyNk(nk: CertifiedNk, qualifyingData: Uint8Array): Promise<NkFields>;
  };
  /** The NK's SubjectPublicKeyInfo PEM, exactly as extended into PCR 16. */
  nkPem: string;
  /** Which identity proofs the agent gives (nk_binding), and the NK that TPM2_Certify binds. */
  identity: { binding: NkBindingMode; nk: CertifiedNk };
  measurements?: MeasurementSource;
}

function algorithms(deps: QuoteRouteDeps, version: ApiVersion) {
  const a = deps.quoter.algorithms;
  return { hash_alg: a.hashAlg, enc_alg: encAlgName(a.encKind, a.encSize, version), sign_alg: a.signAlg };
}

function base(deps: QuoteRouteDeps, quote: string, version: ApiVersion): QuoteResults {
  return { quote, ...algorithms(deps, version) };
}

/** 400 "identity binding is <mode>" unless the agent's nk_binding gives the proof `by`. */
function requireBinding(deps: QuoteRouteDeps, by: Exclude<NkBindingMode, "both">): void {
  const mode = deps.identity.binding;
  if (mode !== "both" && mode !== by) throw new RouteError(400, agentStatus.identityBindingIs(mode));
}

export function quoteHandlers(
  deps: QuoteRouteDeps,
): RouteHandlers<"identityQuote" | "identityCertify" | "integrityQuote"> {
  return {
    async identityQuote({ version, query }) {
      requireBinding(deps, "pcr16");
      const quote = await deps.quoter.quote(query.nonce, []);
      return { ...base(deps, quote, version), pubkey: deps.nkPem };
    },
    async identityCertify({ version, query }) {
      requireBinding(deps, "certify");
      const nk = deps.identity.nk;
      const fields = await deps.quoter.certifyNk(nk, identityNonceBytes(query.nonce));
      return { ...fields, ...algorithms(deps, version), pubkey: nk.pem };
    },
    async integrityQuote({ version, query }) {
      const pcrs = maskPcrs(query.mask);
      const quote = await deps.quoter.quote(query.nonce, pcrs);
      const results = base(deps, quote, version);
      if (!query.partial) results.pubkey = deps.nkPem;
      const m = deps.measurements;
      if (m) {
        if (pcrs.includes(0)) {
          const mb = await m.measuredBoot();
          if (mb) results.mb_measurement_list = mb;
        }
        const ima = await m.ima(query.ima_ml_entry ?? 0);
        if (ima) {
          // Streamed into the answer: a list of hundreds of MB is never held whole.
          results.ima_measurement_list = STREAM_PLACEHOLDER;
          results.ima_measurement_list_entry = ima.entry;
          return new WithStreamedText(results, () => ima.chunks());
        }
      }
      return results;
    },
  };
}

/**
 * The checks of attest that look at evidence once it is verified as the TPM's: the EK certificate against
 * the TPM CA store, quoted PCRs against the policy, the IMA list against PCR 10 (resuming where the last
 * run stopped), the UEFI log against PCRs 0-7. Each returns its report detail or throws naming what failed.
 */
import { X509Certificate } from "node:crypto";
import type { QuoteResults } from "../protocol/agent_api.ts";
import { type AttestPolicy, checkPcrPolicy, UEFI_PCRS } from "../protocol/attest_policy.ts";
import { parseEventLog, replayEventLog } from "../protocol/event_log.ts";
import { IMA_PCR, imaStart, replayIma } from "../protocol/ima_replay.ts";
import type { VerifiedQuote } from "../protocol/quote.ts";
import { algName, publicKeyOf, sameKey } from "../tpm/crypto.ts";
import { decode } from "../tpm/marshal.ts";
import { TPM2B_PUBLIC } from "../tpm/structures.ts";
import { fromHex, toHex } from "../util/encoding.ts";
import type { RegistrarRecord } from "./peers.ts";
import type { ImaState } from "./state.ts";

/** What the EK check needs of a trust store (src/registrar/ek_trust.ts EkTrustStore, built by the caller). */
export interface EkTrust {
  check(
    ek: X509Certificate,
    intermediates?: readonly X509Certificate[],
  ): { trusted: true; anchor: string } | { trusted: false; issuer: string };
  readonly size: number;
}

const short = (b: Uint8Array | undefined) => (b ? `${toHex(b).slice(0, 16)}…` : "absent");

export function ekCheck(record: RegistrarRecord, trust: EkTrust): string {
  if (!record.ekcert) throw new Error("the registrar has no EK certificate for the agent");
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(record.ekcert);
  } catch (e) {
    throw new Error(`the registrar's ekcert is not an X.509 certificate: ${(e as Error).message}`);
  }
  if (record.ek_tpm) {
    let ek;
    try {
      ek = decode(TPM2B_PUBLIC, record.ek_tpm);
    } catch (e) {
      throw new Error(`the registrar's ek_tpm is not a TPM2B_PUBLIC: ${(e as Error).message}`);
    }
    if (!sameKey(publicKeyOf(ek), cert.publicKey)) throw new Error("the EK certificate is for another key than ek_tpm");
  }
  const subject = cert.subject.split("\n").join(", ");
  const v = trust.check(cert);
  if (!v.trusted) {
    throw new Error(
      `"${subject}" is issued by "${v.issuer}", which is not in the TPM CA store (${trust.size} certificates; ` +
        `add its CA with --tpm-ca-dir)`,
    );
  }
  return `"${subject}" chains to "${v.anchor}"`;
}

export function policyCheck(policy: AttestPolicy, hashAlg: number, pcrs: ReadonlyMap<number, Uint8Array>): string {
  const bad = checkPcrPolicy(policy, hashAlg, pcrs);
  if (bad.length) {
    throw new Error(
      bad.map((m) => `PCR ${m.pcr} is ${short(m.quoted)}, allowed ${m.allowed.map(short).join(" or ")}`).join("; "),
    );
  }
  const n = policy.pcrs.get(hashAlg)?.size ?? 0;
  return `${n} PCR${n === 1 ? "" : "s"} as the policy allows`;
}

/** The IMA replay's outcome: the position to keep for the next run, and the detail or the failure. */
export interface ImaOutcome {
  readonly next: ImaState | undefined;
  readonly detail: string;
  readonly failure?: string;
}

/** Replay the list the agent sent from `saved` (the last run's position, same boot and bank) or from the start. */
export function imaCheck(q: QuoteResults, v: VerifiedQuote, hashAlg: number, saved: ImaState | undefined): ImaOutcome {
  const pcr10 = v.pcrs.get(IMA_PCR);
  if (!pcr10) return { next: saved, detail: "", failure: `the quote has no PCR ${IMA_PCR}` };
  const entry = q.ima_measurement_list_entry ?? 0;
  if (saved && saved.resetCount !== v.clock.resetCount && entry > 0) {
    // A reboot: the list started again, but the agent answered from the old position.
    return {
      next: undefined,
      detail: "",
      failure: "the TPM was reset since the last run; the next run replays the IMA list from its start",
    };
  }
  const resume = saved && saved.hashAlg === algName(hashAlg) && saved.resetCount === v.clock.resetCount &&
    entry === saved.entries;
  const from = resume ? { entries: saved.entries, pcr10: fromHex(saved.pcr10) } : imaStart(hashAlg);
  if (q.ima_measurement_list === undefined) {
    if (toHex(from.pcr10) !== toHex(pcr10)) {
      return { next: saved, detail: "", failure: `the agent sent no IMA list, but PCR 10 is ${short(pcr10)}` };
    }
    return { next: saved, detail: "no IMA list; PCR 10 is as expected without one" };
  }
  let r;
  try {
    r = replayIma(q.ima_measurement_list, from, hashAlg, pcr10);
  } catch (e) {
    return { next: saved, detail: "", failure: (e as Error).message };
  }
  const pending = r.pending ? `; ${r.pending} measured after the quote, checked next time` : "";
  const entries = `${r.replayed} new entr${r.replayed === 1 ? "y" : "ies"} (${r.position.entries} in all)`;
  return {
    next: {
      hashAlg: algName(hashAlg),
      entries: r.position.entries,
      pcr10: toHex(r.position.pcr10),
      resetCount: v.clock.resetCount,
    },
    detail: `${entries} replay to PCR 10${pending}`,
  };
}

/** The UEFI log the agent sent, replayed, against the quoted PCRs 0-7 (a PCR the log never extends is zero). */
export function uefiCheck(q: QuoteResults, v: VerifiedQuote, hashAlg: number): string {
  if (!q.mb_measurement_list) throw new Error("the agent sent no UEFI event log");
  const replayed = replayEventLog(parseEventLog(q.mb_measurement_list), hashAlg);
  const bad: string[] = [];
  for (const pcr of UEFI_PCRS) {
    const want = v.pcrs.get(pcr);
    const got = replayed.get(pcr) ?? new Uint8Array(want?.length ?? 0);
    if (want && toHex(want) !== toHex(got)) {
      bad.push(`PCR ${pcr}: the log gives ${short(got)}, the quote has ${short(want)}`);
    }
  }
  if (bad.length) throw new Error(bad.join("; "));
  return `PCRs ${UEFI_PCRS.join(",")} match the log`;
}

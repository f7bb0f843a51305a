/**
 * attest's report: one line per check with its outcome and why, declared once here (ids, titles, order)
 * and rendered for people or as JSON.
 */

/** The checks in the order they run. */
export const CHECKS = {
  "registrar": "registrar record (active)",
  "ek-certificate": "EK certificate chains to the TPM CA store",
  "agent-tls": "agent reachable over mTLS, pinned to the registered certificate",
  "nk-binding": "NK bound to the registered AK",
  "integrity-quote": "integrity quote with a fresh nonce",
  "quote-signature": "quote signed by the registered AK (nonce, PCR digest)",
  "clock": "quote clock after the last run (no replay)",
  "pcr-policy": "PCR values allowed by the policy",
  "ima": "IMA list replays to PCR 10",
  "uefi-log": "UEFI event log replays to PCRs 0-7",
} as const;

export type CheckId = keyof typeof CHECKS;
export type CheckStatus = "pass" | "fail" | "skip";

export interface CheckResult {
  readonly id: CheckId;
  readonly status: CheckStatus;
  readonly detail: string;
  readonly ms: number;
}

export interface AttestReport {
  readonly uuid: string;
  readonly time: string;
  readonly ok: boolean;
  readonly checks: readonly CheckResult[];
  /** The agent's URL, when the registrar record named it. */
  readonly agent?: string;
  /** How the NK binding was proven. */
  readonly binding?: "certify" | "pcr16";
  /** The quoted bank and values (hex) of the integrity quote, when it verified. */
  readonly quoted?: { readonly hashAlg: string; readonly pcrs: Readonly<Record<string, string>> };
}

const MARK: Record<CheckStatus, string> = { pass: "pass", fail: "FAIL", skip: "skip" };

export function renderReport(r: AttestReport): string {
  const lines = [`attestation of agent ${r.uuid}${r.agent ? ` at ${r.agent}` : ""} (${r.time})`];
  for (const c of r.checks) {
    lines.push(`  ${MARK[c.status]}  ${CHECKS[c.id].padEnd(64)} ${c.ms.toFixed(0).padStart(5)} ms  ${c.detail}`);
  }
  const failed = r.checks.filter((c) => c.status === "fail").map((c) => c.id);
  lines.push(r.ok ? "attestation passed" : `attestation FAILED: ${failed.join(", ")}`);
  return lines.join("\n");
}

/** Checks whose outcome differs from the previous report's (for --watch). */
export function changedChecks(prev: AttestReport, now: AttestReport): string[] {
  const before = new Map(prev.checks.map((c) => [c.id, c.status]));
  return now.checks
    .filter((c) => before.get(c.id) !== undefined && before.get(c.id) !== c.status)
    .map((c) => `${c.id}: ${before.get(c.id)} -> ${c.status}`);
}

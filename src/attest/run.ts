/**
 * One attestation of an agent, as a tenant and a verifier would make it together: the registrar's record,
 * the EK certificate against the TPM CA store, the NK binding, then an integrity quote with a fresh nonce
 * checked for signature, nonce, PCR digest and clock, its PCRs against a policy, the IMA list against
 * PCR 10 and the UEFI log against PCRs 0-7. Each check is one report line; a check whose input failed is
 * skipped, naming what it needed. Returns the report and the state for the next run.
 */
import { randomBytes } from "node:crypto";
import { MAX_NONCE_CHARS } from "../protocol/agent_api.ts";
import { type AttestPolicy, policyPcrs, UEFI_PCRS } from "../protocol/attest_policy.ts";
import { IMA_PCR } from "../protocol/ima_replay.ts";
import { DATA_PCR } from "../protocol/nk_pcr16.ts";
import { checkClock, type VerifiedQuote, verifyQuote } from "../protocol/quote.ts";
import type { QuoteResults } from "../protocol/agent_api.ts";
import { algByName, algName } from "../tpm/crypto.ts";
import { toHex } from "../util/encoding.ts";
import { ekCheck, type EkTrust, imaCheck, policyCheck, uefiCheck } from "./evidence_checks.ts";
import { proveNkBinding } from "./nk_binding.ts";
import { AgentPeer, fetchRegistrarRecord } from "./peers.ts";
import { type AttestReport, type CheckId, type CheckResult, CHECKS } from "./report.ts";
import type { AttestState } from "./state.ts";
import type { TenantTls } from "./tls_dir.ts";

export type { EkTrust };

export interface AttestInput {
  /** host:port of the registrar's TLS (tenant) port. */
  readonly registrar: string;
  readonly tls: TenantTls;
  readonly uuid: string;
  readonly ekTrust: EkTrust;
  readonly policy?: AttestPolicy;
  /** Replay the UEFI event log even when the policy does not ask. */
  readonly uefiLog?: boolean;
  readonly state: AttestState;
  /** Progress of long steps (stderr). */
  readonly progress?: (message: string) => void;
}

export interface AttestOutcome {
  readonly report: AttestReport;
  readonly state: AttestState;
}

/** 20 characters from [A-Za-z0-9], as upstream's verifier makes nonces. */
export function freshNonce(length = 20): string {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  // 62 does not divide 256: drop the bytes that would bias the choice.
  const out: string[] = [];
  while (out.length < Math.min(length, MAX_NONCE_CHARS)) {
    for (const b of randomBytes(length * 2)) if (b < 248 && out.length < length) out.push(alphabet[b % 62]!);
  }
  return out.join("");
}

class Steps {
  readonly results: CheckResult[] = [];
  constructor(private readonly progress: (m: string) => void) {}

  /** Run a check: its detail on success, its error's message on failure. undefined when it failed. */
  async run<T>(id: CheckId, fn: () => Promise<[T, string]> | [T, string]): Promise<T | undefined> {
    this.progress(`${CHECKS[id]}...`);
    const t0 = performance.now();
    try {
      const [value, detail] = await fn();
      this.results.push({ id, status: "pass", detail, ms: performance.now() - t0 });
      return value;
    } catch (e) {
      this.results.push({ id, status: "fail", detail: (e as Error).message, ms: performance.now() - t0 });
      return undefined;
    }
  }

  /** A check that yields only its detail; true when it passed. */
  async check(id: CheckId, fn: () => Promise<string> | string): Promise<boolean> {
    return (await this.run(id, async () => [true, await fn()] as [true, string])) ?? false;
  }

  skip(id: CheckId, why: string): void {
    this.results.push({ id, status: "skip", detail: why, ms: 0 });
  }
}

function mask(pcrs: Iterable<number>): number {
  let m = 0;
  for (const p of pcrs) m |= 1 << p;
  return m >>> 0;
}

export async function attestAgent(input: AttestInput): Promise<AttestOutcome> {
  const time = new Date().toISOString();
  const steps = new Steps(input.progress ?? (() => {}));
  let state: AttestState = { ...input.state, time };
  /** What the report tells besides the checks, filled in as they run. */
  const facts: { -readonly [K in "agent" | "binding" | "quoted"]?: AttestReport[K] } = {};

  const reg = await steps.run("registrar", async () => {
    const r = await fetchRegistrarRecord(input.registrar, input.tls, input.uuid);
    if (!r.record.ip || !r.record.port) throw new Error("the record has no ip and port to reach the agent at");
    const again = r.record.regcount > 1 ? `; registered ${r.record.regcount} times` : "";
    return [r, `active, AK and EK on record (API ${r.version})${again}`] as [typeof r, string];
  });
  const finish = (): AttestOutcome => {
    const ran = new Set(steps.results.map((c) => c.id));
    for (const id of Object.keys(CHECKS) as CheckId[]) if (!ran.has(id)) steps.skip(id, "needs the checks above");
    const order = Object.keys(CHECKS);
    const checks = [...steps.results].sort((a, b) => order.indexOf(a.id) - order.indexOf(b.id));
    const ok = checks.every((c) => c.status !== "fail");
    return {
      report: {
        uuid: input.uuid,
        time,
        ok,
        checks,
        ...facts,
      },
      state,
    };
  };
  if (!reg) return finish();
  const { record } = reg;

  await steps.check("ek-certificate", () => ekCheck(record, input.ekTrust));

  const agent = new AgentPeer(record.ip!, record.port!, record.mtls_cert, input.tls);
  facts.agent = agent.url;
  const reached = await steps.check("agent-tls", async () => {
    const v = await agent.negotiate();
    const how = agent.url.startsWith("https") ? "mTLS, certificate as registered" : "plain HTTP (mtls_cert disabled)";
    return `${how}; API ${v}`;
  });
  if (!reached) return finish();

  const nkBound = await steps.run("nk-binding", async () => {
    const b = await proveNkBinding(agent, record, freshNonce(), state.nk);
    facts.binding = b.mode;
    return [b, b.detail] as [typeof b, string];
  });
  if (nkBound) state = { ...state, nk: { ...state.nk, [nkBound.mode]: nkBound.nk } };

  const wantUefi = !!input.uefiLog || !!input.policy?.uefiLog;
  const nonce = freshNonce();
  const got = await steps.run("integrity-quote", async () => {
    const pcrs = new Set([IMA_PCR, ...(input.policy ? policyPcrs(input.policy) : []), ...(wantUefi ? UEFI_PCRS : [])]);
    const ima = state.ima;
    input.progress?.(`integrity quote of PCRs ${[...pcrs].sort((a, b) => a - b).join(",")}...`);
    const q = await agent.integrityQuote({ nonce, mask: mask(pcrs), imaEntry: ima?.entries ?? 0 });
    const lines = q.ima_measurement_list === undefined
      ? "no IMA list"
      : `IMA list from entry ${q.ima_measurement_list_entry ?? 0}`;
    const mb = q.mb_measurement_list ? `, UEFI log ${q.mb_measurement_list.length} bytes` : "";
    return [q, `nonce ${nonce}, ${q.hash_alg} bank; ${lines}${mb}`] as [QuoteResults, string];
  });
  if (!got) return finish();
  const q = got;

  const verified = await steps.run("quote-signature", () => {
    const hashAlg = algByName(q.hash_alg);
    if (hashAlg === undefined) throw new Error(`the agent's hash_alg "${q.hash_alg}" is not a hash algorithm`);
    const v = verifyQuote({ quote: q.quote, nonce, hashAlg, aikTpm: record.aik_tpm });
    const list = [...v.pcrs.keys()].join(",");
    return [{ v, hashAlg }, `${q.sign_alg}/${q.hash_alg} by the AK, nonce and PCR digest match (PCRs ${list})`] as [
      { v: VerifiedQuote; hashAlg: number },
      string,
    ];
  });
  if (!verified) return finish();
  const { v, hashAlg } = verified;
  facts.quoted = {
    hashAlg: algName(hashAlg),
    pcrs: Object.fromEntries([...v.pcrs].filter(([p]) => p !== DATA_PCR).map(([p, x]) => [String(p), toHex(x)])),
  };

  const clockOk = await steps.check("clock", () => {
    const now = v.clock;
    const prev = state.clock;
    if (prev) checkClock(now, prev);
    const counts = `resetCount ${now.resetCount}, restartCount ${now.restartCount}`;
    return prev ? `clock ${now.clock} > ${prev.clock}, ${counts}` : `first quote seen: clock ${now.clock}, ${counts}`;
  });
  if (clockOk) {
    state = {
      ...state,
      clock: { clock: v.clock.clock, resetCount: v.clock.resetCount, restartCount: v.clock.restartCount },
    };
  }

  const policy = input.policy;
  if (!policy) steps.skip("pcr-policy", "no --policy given");
  else {
    await steps.check("pcr-policy", () => policyCheck(policy, hashAlg, v.pcrs));
  }

  await steps.check("ima", () => {
    const r = imaCheck(q, v, hashAlg, state.ima);
    state = { ...state, ima: r.next };
    if (r.failure) throw new Error(r.failure);
    return r.detail;
  });

  if (!wantUefi) steps.skip("uefi-log", "not asked (--uefi-log or the policy's uefi_log)");
  else {
    await steps.check("uefi-log", () => uefiCheck(q, v, hashAlg));
  }
  return finish();
}

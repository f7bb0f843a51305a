/**
 * One attestation of an agent, as a tenant and a verifier would make it together: the registrar's record,
 * the EK certificate against the TPM CA store, the NK binding, then an integrity quote with a fresh nonce
 * checked for signature, nonce, PCR digest and clock, its PCRs against a policy, the IMA list against
 * PCR 10 and the UEFI log against PCRs 0-7. Each check is one report line; a check whose input failed is
 * skipped, naming what it needed. Returns the report and the state for the next run.
 */
import { randomBytes, X509Certificate } from "node:crypto";
import { MAX_NONCE_CHARS } from "../protocol/agent_api.ts";
import { type AttestPolicy, checkPcrPolicy, policyPcrs, UEFI_PCRS } from "../protocol/attest_policy.ts";
import { parseEventLog, replayEventLog } from "../protocol/event_log.ts";
import { IMA_PCR, imaStart, replayIma } from "../protocol/ima_replay.ts";
import { DATA_PCR } from "../protocol/nk_pcr16.ts";
import { checkClock, type VerifiedQuote, verifyQuote } from "../protocol/quote.ts";
import type { QuoteResults } from "../protocol/agent_api.ts";
import { algByName, algName, publicKeyOf, sameKey } from "../tpm/crypto.ts";
import { decode } from "../tpm/marshal.ts";
import { TPM2B_PUBLIC } from "../tpm/structures.ts";
import { fromHex, toHex } from "../util/encoding.ts";
import { proveNkBinding } from "./nk_binding.ts";
import { AgentPeer, fetchRegistrarRecord, type RegistrarRecord } from "./peers.ts";
import { type AttestReport, type CheckId, type CheckResult, CHECKS } from "./report.ts";
import type { AttestState } from "./state.ts";
import type { TenantTls } from "./tls_dir.ts";

/** What the EK check needs of a trust store (src/registrar/ek_trust.ts EkTrustStore, built by the caller). */
export interface EkTrust {
  check(
    ek: X509Certificate,
    intermediates?: readonly X509Certificate[],
  ): { trusted: true; anchor: string } | { trusted: false; issuer: string };
  readonly size: number;
}

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

  skip(id: CheckId, why: string): void {
    this.results.push({ id, status: "skip", detail: why, ms: 0 });
  }
}

const short = (b: Uint8Array | undefined) => (b ? `${toHex(b).slice(0, 16)}…` : "absent");

function ekCheck(record: RegistrarRecord, trust: EkTrust): [true, string] {
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
  return [true, `"${subject}" chains to "${v.anchor}"`];
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

  await steps.run("ek-certificate", () => ekCheck(record, input.ekTrust));

  const agent = new AgentPeer(record.ip!, record.port!, record.mtls_cert, input.tls);
  facts.agent = agent.url;
  const reached = await steps.run("agent-tls", async () => {
    const v = await agent.negotiate();
    const how = agent.url.startsWith("https") ? "mTLS, certificate as registered" : "plain HTTP (mtls_cert disabled)";
    return [true, `${how}; API ${v}`] as [boolean, string];
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

  const clockOk = await steps.run("clock", () => {
    const now = v.clock;
    const prev = state.clock;
    if (prev) checkClock(now, prev);
    const detail = prev
      ? `clock ${now.clock} > ${prev.clock}, resetCount ${now.resetCount}, restartCount ${now.restartCount}`
      : `first quote seen: clock ${now.clock}, resetCount ${now.resetCount}, restartCount ${now.restartCount}`;
    return [true, detail] as [boolean, string];
  });
  if (clockOk) {
    state = {
      ...state,
      clock: { clock: v.clock.clock, resetCount: v.clock.resetCount, restartCount: v.clock.restartCount },
    };
  }

  if (!input.policy) steps.skip("pcr-policy", "no --policy given");
  else {
    const policy = input.policy;
    await steps.run("pcr-policy", () => {
      const bad = checkPcrPolicy(policy, hashAlg, v.pcrs);
      if (bad.length) {
        throw new Error(
          bad.map((m) => `PCR ${m.pcr} is ${short(m.quoted)}, allowed ${m.allowed.map(short).join(" or ")}`).join("; "),
        );
      }
      const n = policy.pcrs.get(hashAlg)?.size ?? 0;
      return [true, `${n} PCR${n === 1 ? "" : "s"} as the policy allows`] as [boolean, string];
    });
  }

  await steps.run("ima", () => {
    const pcr10 = v.pcrs.get(IMA_PCR);
    if (!pcr10) throw new Error(`the quote has no PCR ${IMA_PCR}`);
    const saved = state.ima;
    const entry = q.ima_measurement_list_entry ?? 0;
    if (saved && saved.resetCount !== v.clock.resetCount && entry > 0) {
      // A reboot: the list started again, but the agent answered from the old position.
      state = { ...state, ima: undefined };
      throw new Error(`the TPM was reset since the last run; the next run replays the IMA list from its start`);
    }
    const resume = saved && saved.hashAlg === algName(hashAlg) && saved.resetCount === v.clock.resetCount &&
      entry === saved.entries;
    const from = resume ? { entries: saved.entries, pcr10: fromHex(saved.pcr10) } : imaStart(hashAlg);
    if (q.ima_measurement_list === undefined) {
      if (toHex(from.pcr10) !== toHex(pcr10)) {
        throw new Error(`the agent sent no IMA list, but PCR 10 is ${short(pcr10)}`);
      }
      return [true, "no IMA list; PCR 10 is as expected without one"] as [boolean, string];
    }
    const r = replayIma(q.ima_measurement_list, from, hashAlg, pcr10);
    state = {
      ...state,
      ima: {
        hashAlg: algName(hashAlg),
        entries: r.position.entries,
        pcr10: toHex(r.position.pcr10),
        resetCount: v.clock.resetCount,
      },
    };
    const pending = r.pending ? `; ${r.pending} measured after the quote, checked next time` : "";
    return [
      true,
      `${r.replayed} new entr${
        r.replayed === 1 ? "y" : "ies"
      } (${r.position.entries} in all) replay to PCR 10${pending}`,
    ] as [
      boolean,
      string,
    ];
  });

  if (!wantUefi) steps.skip("uefi-log", "not asked (--uefi-log or the policy's uefi_log)");
  else {
    await steps.run("uefi-log", () => {
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
      return [true, `PCRs ${UEFI_PCRS.join(",")} match the log`] as [boolean, string];
    });
  }
  return finish();
}

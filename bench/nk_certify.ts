/**
 * What the NK certify binding (spec/nk-certify.md) costs, on swtpm, each against its classic counterpart in
 * the same run, the two interleaved so drift hits both alike:
 * - at registration: one agent start (openAndRegister: identity, register, activate) with nk_certify
 *   (LoadExternal + Certify + flush after ActivateCredential, and the registrar's checks) and without it;
 *   end to end and the TPM's own command time (time in transport.send);
 * - per identity proof: quotes/identity?binding=certify against the PCR 16 identity quote, from
 *   keylime_agent as a process over mTLS (no resource manager: the AK loaded from its context per request).
 *
 *   scripts/deno run -A bench/nk_certify.ts [--json] [--quick]     (or bench/main.ts --only nk)
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { agentPaths } from "../src/agent/config.ts";
import { openAndRegister } from "../src/agent/registration.ts";
import { agentRoutePath, agentRoutes } from "../src/protocol/agent_api.ts";
import { identityNonceBytes, verifyNkCertification } from "../src/protocol/nk_certify.ts";
import { Tpm } from "../src/tpm/client.ts";
import { openTransport } from "../src/tpm/transport/uri.ts";
import type { AgentClient } from "../tests/helpers/agent_client.ts";
import { startAgentProcess, startTestRegistrar } from "../tests/helpers/agent_process.ts";
import { startSwtpm } from "../tests/helpers/swtpm.ts";
import { formatMs, formatRatio, table } from "./common.ts";
import { benchAgentConfig, NO_RETRY, quiet } from "./registration.ts";
import { connectUntimed, TimedTransport } from "./flow_steps.ts";
import { type LatencySummary, median, summarize } from "./stats.ts";

interface Pair {
  readonly total: LatencySummary;
  /** TPM command time, median ms (registration only). */
  readonly tpmMs?: number;
  readonly tpmCommands?: number;
}

export interface NkCertifyBenchResult {
  readonly registration: { classic: Pair; certify: Pair; ratio: number; extraMs: number };
  readonly identity: { quote: Pair; certify: Pair; ratio: number };
}

async function registrationCost(runs: number, progress: (m: string) => void) {
  const dir = mkdtempSync(join(tmpdir(), "bench-nk-registration-"));
  const s = await startSwtpm({ transport: "tcp" });
  const transport = new TimedTransport(openTransport(s.uri));
  const tpm = new Tpm(transport);
  await connectUntimed(tpm);
  const reg = await startTestRegistrar(dir);
  const c = benchAgentConfig(dir, reg.port);
  const samples = { classic: [] as number[], certify: [] as number[] };
  const tpmMs = { classic: [] as number[], certify: [] as number[] };
  const commands = { classic: 0, certify: 0 };
  try {
    const once = (offerNkCertify: boolean) =>
      openAndRegister(tpm, c, agentPaths(c), quiet, { retry: NO_RETRY, offerNkCertify });
    await once(true); // warm-up: the AK, the NK and the mTLS files, JIT
    await once(false);
    progress(`registration: ${runs} agent starts with nk_certify and ${runs} without, interleaved`);
    for (let i = 0; i < 2 * runs; i++) {
      const kind = i % 2 === 0 ? "certify" : "classic";
      transport.log.length = 0;
      const t0 = performance.now();
      await once(kind === "certify");
      samples[kind].push(performance.now() - t0);
      tpmMs[kind].push(transport.log.reduce((a, x) => a + x.ms, 0));
      commands[kind] = transport.log.length;
    }
    if (!reg.service.store.get(c.uuid)?.nk_binding && reg.service.store.get(c.uuid)?.certify_nonce) {
      throw new Error("the last registration with nk_certify left no binding");
    }
  } finally {
    await reg.close();
    await tpm.close();
    await s.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  const pair = (k: "classic" | "certify"): Pair => ({
    total: summarize(samples[k]),
    tpmMs: median(tpmMs[k]),
    tpmCommands: commands[k],
  });
  const classic = pair("classic");
  const certify = pair("certify");
  return {
    classic,
    certify,
    ratio: certify.total.median / classic.total.median,
    extraMs: certify.total.median - classic.total.median,
  };
}

async function identityCost(n: number, progress: (m: string) => void) {
  progress("starting swtpm, the registrar and keylime_agent (nk_binding = both)");
  const agent = await startAgentProcess({
    uuid: "be0c0000-d2f1-4a97-9ef7-75bd81c0cc01",
    env: { KEYLIME_TS_LOG: "warn" },
  });
  let seq = 0;
  const timed = async (client: AgentClient, by: "quote" | "certify") => {
    const nonce = `nk${seq++}`;
    const path = by === "quote"
      ? agentRoutePath(agentRoutes.identityQuote, "2.6", { nonce })
      : agentRoutePath(agentRoutes.identityCertify, "2.6", { nonce, binding: "certify" });
    const t = performance.now();
    const a = await client.request(path);
    const ms = performance.now() - t;
    if (a.status !== 200) throw new Error(`identity ${by} answered ${a.status}: ${a.json.status}`);
    return { ms, results: a.json.results, nonce };
  };
  try {
    const client = agent.client();
    for (let i = 0; i < 5; i++) await Promise.all([timed(client, "quote"), timed(client, "certify")]);
    // One answer checked, so the figures are for proofs that verify.
    const one = await timed(client, "certify");
    const r = agentRoutes.identityCertify.results.parse(one.results);
    verifyNkCertification({
      nkTpm: r.nk_tpm,
      nkAttest: r.nk_attest,
      nkSign: r.nk_sign,
      akTpm: agent.aikTpm,
      nonce: identityNonceBytes(one.nonce),
      expectedKey: (agent.registered as { mtls_cert: string }).mtls_cert,
    });
    progress(`identity proofs: ${n} by certification and ${n} PCR 16 quotes, interleaved`);
    const quote: number[] = [];
    const certify: number[] = [];
    for (let i = 0; i < n; i++) {
      quote.push((await timed(client, "quote")).ms);
      certify.push((await timed(client, "certify")).ms);
    }
    client.close();
    const q = { total: summarize(quote) };
    const c = { total: summarize(certify) };
    return { quote: q, certify: c, ratio: c.total.median / q.total.median };
  } finally {
    await agent.stop();
  }
}

export async function runNkCertifyBench(
  o: { quick: boolean },
  progress: (m: string) => void,
): Promise<NkCertifyBenchResult> {
  return {
    registration: await registrationCost(o.quick ? 5 : 20, progress),
    identity: await identityCost(o.quick ? 30 : 150, progress),
  };
}

export function nkCertifyReport(r: NkCertifyBenchResult): string {
  const row = (name: string, p: Pair) => [
    name,
    String(p.total.n),
    formatMs(p.total.median),
    formatMs(p.total.p90),
    p.tpmMs === undefined ? "-" : formatMs(p.tpmMs),
    p.tpmCommands === undefined ? "-" : String(p.tpmCommands),
  ];
  const head = ["case", "n", "median ms", "p90 ms", "TPM ms", "TPM cmds"];
  return [
    "NK certify binding on swtpm (same run, interleaved)",
    table(head, [
      row("registration, classic", r.registration.classic),
      row("registration, nk_certify", r.registration.certify),
      row("identity: PCR 16 quote", r.identity.quote),
      row("identity: binding=certify", r.identity.certify),
    ]),
    `registration with nk_certify / classic: ${formatRatio(r.registration.ratio)} ` +
    `(+${formatMs(r.registration.extraMs)} ms per agent start)`,
    `identity proof by certification / by PCR 16 quote: ${formatRatio(r.identity.ratio)}`,
  ].join("\n");
}

if ((import.meta as { main?: boolean }).main) {
  const args = process.argv.slice(2);
  const r = await runNkCertifyBench({ quick: args.includes("--quick") }, (m) => process.stderr.write(`${m}\n`));
  console.log(args.includes("--json") ? JSON.stringify(r, null, 2) : nkCertifyReport(r));
}

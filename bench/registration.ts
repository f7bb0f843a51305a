/**
 * End-to-end registration latency of one agent start (openAndRegister, what `keylime-ts agent register`
 * runs): open the identity (EK, AK from agent_data.json, NK and mTLS files), register with the reference
 * registrar (in process, on a free port) and activate, close;
 * beside the sum of the TPM's own command times in the same runs (time in transport.send). Target: the
 * whole within 1.2x of the TPM's time.
 *
 *   deno run -A bench/registration.ts [--runs N] [--tpm swtpm|sim|both] [--json]
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { openSimulator, simulatorTransport } from "../simulator/index.ts";
import { type AgentConfig, agentPaths, loadAgentConfig } from "../src/agent/config.ts";
import type { AgentLog } from "../src/agent/messages.ts";
import { openAndRegister } from "../src/agent/registration.ts";
import { Tpm } from "../src/tpm/client.ts";
import { Startup } from "../src/tpm/commands.ts";
import { TPM_SU } from "../src/tpm/constants.ts";
import { openTransport } from "../src/tpm/transport/uri.ts";
import type { Transport } from "../src/tpm/transport/transport.ts";
import { startTestRegistrar } from "../tests/helpers/agent_process.ts";
import { startSwtpm, swtpmSkipReason } from "../tests/helpers/swtpm.ts";
import { formatMs, formatRatio, table } from "./common.ts";
import { connectUntimed, TimedTransport } from "./flow_steps.ts";
import { median, percentile } from "./stats.ts";

export const TARGET_RATIO = 1.2;

export interface RegistrationBenchResult {
  readonly tpm: string;
  readonly runs: number;
  readonly totalMedianMs: number;
  readonly totalP90Ms: number;
  readonly tpmMedianMs: number;
  /** Median over runs of total / TPM time. */
  readonly ratio: number;
  readonly commandsPerRun: number;
  /** Median of the time outside the TPM: files, certificates, HTTP and the registrar's own work, less what overlaps TPM work. */
  readonly outsideTpmMs: number;
}

export const quiet: AgentLog = { info() {}, warn() {}, error() {} };
export const NO_RETRY = { maxRetries: 0, initialDelayMs: 1, maxDelayMs: 1 };

/** The default agent configuration with its state under `dir`, registering at the registrar on `port`. */
export function benchAgentConfig(dir: string, registrarPort: number): AgentConfig {
  return loadAgentConfig({
    root: dir,
    env: { KEYLIME_DIR: join(dir, "agent"), KEYLIME_AGENT_REGISTRAR_PORT: String(registrarPort) },
  }).config;
}

async function benchOne(kind: "swtpm" | "sim", runs: number): Promise<RegistrationBenchResult> {
  const dir = mkdtempSync(join(tmpdir(), "bench-registration-"));
  let stopTpm: () => Promise<void>;
  let inner: Transport;
  if (kind === "swtpm") {
    const s = await startSwtpm({ transport: "tcp" });
    inner = openTransport(s.uri);
    stopTpm = () => s.stop();
  } else {
    const { engine } = await openSimulator();
    inner = simulatorTransport(engine);
    stopTpm = () => engine.close();
  }
  const transport = new TimedTransport(inner);
  const tpm = new Tpm(transport);
  if (kind === "sim") await tpm.execute(Startup, { startupType: TPM_SU.CLEAR });
  await connectUntimed(tpm);
  const reg = await startTestRegistrar(dir);
  const c = benchAgentConfig(dir, reg.port);
  const once = () => openAndRegister(tpm, c, agentPaths(c), quiet, { retry: NO_RETRY });
  const total: number[] = [];
  const wire: number[] = [];
  let commands = 0;
  try {
    await once(); // warm-up: creates the AK, the NK and the mTLS files, and JIT-compiles the path
    for (let i = 0; i < runs; i++) {
      transport.log.length = 0;
      const t0 = performance.now();
      await once();
      total.push(performance.now() - t0);
      wire.push(transport.log.reduce((a, x) => a + x.ms, 0));
      commands = transport.log.length;
    }
  } finally {
    await reg.close();
    await tpm.close();
    await stopTpm();
    rmSync(dir, { recursive: true, force: true });
  }
  const sorted = [...total].sort((a, b) => a - b);
  return {
    tpm: kind === "swtpm" ? "swtpm" : "simulator (in process)",
    runs,
    totalMedianMs: median(total),
    totalP90Ms: percentile(sorted, 90),
    tpmMedianMs: median(wire),
    ratio: median(total.map((t, i) => t / wire[i]!)),
    commandsPerRun: commands,
    outsideTpmMs: median(total.map((t, i) => t - wire[i]!)),
  };
}

export async function runRegistrationBench(
  opts: { runs: number; tpms: ("swtpm" | "sim")[] },
): Promise<RegistrationBenchResult[]> {
  const out: RegistrationBenchResult[] = [];
  for (const kind of opts.tpms) {
    if (kind === "swtpm" && swtpmSkipReason()) continue;
    out.push(await benchOne(kind, opts.runs));
  }
  return out;
}

export function registrationReport(results: RegistrationBenchResult[]): string {
  const rows = results.map((r) => [
    r.tpm,
    String(r.runs),
    String(r.commandsPerRun),
    formatMs(r.totalMedianMs),
    formatMs(r.totalP90Ms),
    formatMs(r.tpmMedianMs),
    formatRatio(r.ratio),
    r.ratio <= TARGET_RATIO ? "yes" : "no",
    formatMs(r.outsideTpmMs),
  ]);
  return [
    "Registration end to end (identity + register + activate), ms",
    table(
      [
        "TPM",
        "runs",
        "TPM cmds",
        "median",
        "p90",
        "TPM time",
        "ratio",
        `<= ${formatRatio(TARGET_RATIO)}`,
        "outside TPM",
      ],
      rows,
    ),
  ].join("\n");
}

if ((import.meta as { main?: boolean }).main) {
  const args = process.argv.slice(2);
  const at = (name: string) => {
    const i = args.indexOf(name);
    return i >= 0 ? args[i + 1] : undefined;
  };
  const runs = Number(at("--runs") ?? 20);
  const which = at("--tpm") ?? "both";
  const tpms = which === "both" ? ["swtpm", "sim"] as const : [which as "swtpm" | "sim"];
  const results = await runRegistrationBench({ runs, tpms: [...tpms] });
  if (args.includes("--json")) console.log(JSON.stringify(results, null, 2));
  else console.log(registrationReport(results));
}

/**
 * Benchmarks: codec throughput, per-command latency against swtpm, the Keylime attestation flow
 * step by step (our client vs tpm2-tools), and the embedded simulator against swtpm (same operations
 * through our client), registrations per second of the reference registrar, and the NK certify binding against
 * the classic flow, each printed as a ratio to a reference measured in the same run (DESIGN.md "Tests").
 *
 *   deno task bench                 readable tables on stdout, progress on stderr
 *   deno task bench -- --json       a JSON report on stdout instead
 *   options: --quick  --iterations N  --warmup N  --batch N  --codec-ms N
 *            --only codec|latency|flow|simulator|registrar|registration|agent|binary|nk
 *
 * Latency on a VM depends on whether the CPUs idle between exchanges (a wake-up from halt costs tens
 * of µs per exchange), so each latency case also reports how much CPU other processes used meanwhile.
 * bench/profile_client.ts shows where the client's own time goes (V8 CPU profile).
 */
import { execFileSync } from "node:child_process";
import * as os from "node:os";
import process from "node:process";
import type { AnyCommand } from "../src/tpm/command.ts";
import { GetRandom, PCR_Read } from "../src/tpm/commands.ts";
import { startSwtpm, type StartSwtpmOptions, type SwtpmInstance, swtpmSkipReason } from "../tests/helpers/swtpm.ts";
import { type AgentBenchResult, agentReport, runAgentBench } from "./agent.ts";
import { buildBinary } from "../tests/helpers/binary.ts";
import { type BinaryBenchResult, binaryReport, runBinaryBench } from "./binary.ts";
import { type CodecResult, runCodecBench, type ThroughputOptions } from "./codec.ts";
import { formatRatio, PCRS_0_7, table } from "./common.ts";
import {
  FLOW_DEFAULTS,
  FLOW_QUICK,
  type FlowOptions,
  flowReport,
  type FlowResult,
  flowSkipReason,
  runFlow,
} from "./flow.ts";
import { type LatencyCase, type LatencyOptions, type LatencyResult, runLatency, TARGET_OVERHEAD } from "./latency.ts";
import { BUSY_PERCENT, startLoadProbe } from "./load.ts";
import { type NkCertifyBenchResult, nkCertifyReport, runNkCertifyBench } from "./nk_certify.ts";
import { type RegistrationBenchResult, registrationReport, runRegistrationBench } from "./registration.ts";
import {
  REGISTRAR_DEFAULTS,
  REGISTRAR_QUICK,
  type RegistrarBenchOptions,
  registrarReport,
  type RegistrarResult,
  runRegistrarBench,
} from "./registrar.ts";
import {
  runSimulatorBench,
  SIMULATOR_DEFAULTS,
  SIMULATOR_QUICK,
  type SimulatorBenchOptions,
  simulatorReport,
  type SimulatorResult,
} from "./simulator.ts";

/** The parts --only picks; all of them run without it. */
const PARTS = ["codec", "latency", "flow", "simulator", "registrar", "registration", "agent", "binary", "nk"] as const;

/** A latency result with the CPU other processes used meanwhile (percent of one core). */
type LatencyRow = LatencyResult & { otherCpuPercent: number };

interface Options {
  json: boolean;
  quick: boolean;
  only: typeof PARTS[number] | undefined;
  codec: ThroughputOptions;
  latency: LatencyOptions;
  flow: FlowOptions;
  simulator: SimulatorBenchOptions;
  registrar: RegistrarBenchOptions;
  /** Registration runs per TPM (median of them). */
  registrationRuns: number;
}

const USAGE = `usage: deno run --allow-all bench/main.ts [--json] [--quick]
       [--only ${PARTS.join("|")}]
       [--iterations N] [--warmup N] [--batch N] [--codec-ms N]`;

/** The options that take a positive integer, and where it goes. */
const NUMBER_OPTIONS = new Map<string, (o: Options, v: number) => void>([
  ["--iterations", (o, v) => (o.latency.iterations = v)],
  ["--warmup", (o, v) => (o.latency.warmup = v)],
  ["--batch", (o, v) => (o.latency.batchSize = v)],
  ["--codec-ms", (o, v) => (o.codec.runMs = v)],
]);

function parseArgs(argv: string[]): Options {
  const o: Options = {
    json: false,
    quick: false,
    only: undefined,
    codec: { warmupMs: 200, runMs: 1000 },
    latency: { iterations: 2000, warmup: 200, batchSize: 100, batchWarmup: 20 },
    flow: { ...FLOW_DEFAULTS },
    simulator: { ...SIMULATOR_DEFAULTS },
    registrar: { ...REGISTRAR_DEFAULTS },
    registrationRuns: 20,
  };
  const num = (i: number, flag: string): number => {
    const v = Number(argv[i]);
    if (!Number.isInteger(v) || v < 1) throw new Error(`${flag} needs a positive integer, got "${argv[i] ?? ""}"`);
    return v;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    switch (a) {
      case "--": // `deno task bench -- --json` passes the separator through
        break;
      case "--json":
        o.json = true;
        break;
      case "--quick":
        o.quick = true;
        o.codec = { warmupMs: 50, runMs: 200 };
        o.latency = { iterations: 300, warmup: 50, batchSize: 50, batchWarmup: 10 };
        o.flow = { ...FLOW_QUICK };
        o.simulator = { ...SIMULATOR_QUICK };
        o.registrar = { ...REGISTRAR_QUICK };
        o.registrationRuns = 5;
        break;
      case "--only": {
        const v = argv[++i];
        if (!PARTS.includes(v as typeof PARTS[number])) {
          throw new Error(`--only takes ${PARTS.join(", ")}, got "${v ?? ""}"`);
        }
        o.only = v as typeof PARTS[number];
        break;
      }
      case "-h":
      case "--help":
        console.log(USAGE);
        process.exit(0);
        break;
      default: {
        const set = NUMBER_OPTIONS.get(a);
        if (!set) throw new Error(`unknown option "${a}"\n${USAGE}`);
        set(o, num(++i, a));
      }
    }
  }
  return o;
}

// ---- machine ------------------------------------------------------------------------------------

interface Machine {
  cpu: string;
  cores: number;
  os: string;
  runtime: string;
  v8: string;
  swtpm: string;
  loadavg: number[];
  /** Share of all cores busy (any process) during the 500 ms before the run, in percent. */
  busyBeforePercent: number;
  date: string;
}

/** Share of all cores that were busy over `ms`, from the kernel's per-CPU times, in percent. */
async function cpuBusyPercent(ms: number): Promise<number> {
  const total = () =>
    os.cpus().reduce(
      (a, c) => {
        const t = c.times;
        return {
          busy: a.busy + t.user + t.nice + t.sys + t.irq,
          all: a.all + t.user + t.nice + t.sys + t.irq + t.idle,
        };
      },
      { busy: 0, all: 0 },
    );
  const a = total();
  await new Promise((r) => setTimeout(r, ms));
  const b = total();
  return b.all > a.all ? Math.round(((b.busy - a.busy) / (b.all - a.all)) * 100) : 0;
}

async function machine(): Promise<Machine> {
  const cpus = os.cpus();
  const versions = process.versions as Record<string, string | undefined>;
  let swtpm = "not installed";
  try {
    swtpm = execFileSync("swtpm", ["--version"], { encoding: "utf8" }).split("\n")[0]!.trim();
  } catch {
    // reported as not installed
  }
  return {
    cpu: cpus[0]?.model.trim() ?? "unknown",
    cores: cpus.length,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    runtime: versions.deno ? `Deno ${versions.deno} (node compat ${process.version})` : `Node ${process.version}`,
    v8: versions.v8 ?? "unknown",
    swtpm,
    loadavg: os.loadavg().map((x) => Math.round(x * 100) / 100),
    busyBeforePercent: await cpuBusyPercent(500),
    date: new Date().toISOString(),
  };
}

// ---- progress and formatting --------------------------------------------------------------------

const tty = process.stderr.isTTY === true;
let progressShown = false;
function progress(msg: string): void {
  if (tty) {
    process.stderr.write(`\r\x1b[K[bench] ${msg}`);
    progressShown = true;
  } else if (!/batch (\d+)\//.test(msg) || /batch (\d*[05])\//.test(msg)) {
    process.stderr.write(`[bench] ${msg}\n`);
  }
}
function progressDone(): void {
  if (progressShown) process.stderr.write("\r\x1b[K");
  progressShown = false;
}

const f = (x: number, digits = 1) => x.toFixed(digits);
const ops = (x: number) => Math.round(x).toLocaleString("en-US");

function codecReport(results: CodecResult[], o: ThroughputOptions): string {
  const rows = results.map((r) => [
    r.name,
    String(r.bytes),
    ops(r.codec.opsPerSec),
    f(r.codec.usPerOp, 2),
    `${f(r.codec.spread * 100)}%`,
    f(r.copyWalk.usPerOp, 3),
    `${f(r.vsCopyWalk)}x`,
    f(r.jsonRoundTrip.usPerOp, 2),
    `${f(r.vsJson, 2)}x`,
  ]);
  return [
    `Codec throughput: decode+encode, median of ~20 ms batches, ${o.runMs} ms per contestant after ${o.warmupMs} ms ` +
    `warm-up;`,
    `  codec and references run interleaved, batch by batch, so drift during the run hits all alike.`,
    `  refs on the same bytes, same run: "copy+walk" = Buffer.from(bytes) + DataView u16 walk;`,
    `  "JSON rt" = JSON.parse(JSON.stringify(v)) of the decoded value (bytes as hex, bigint as string).`,
    `  The x columns are codec time / reference time, median of the per-round ratios (lower is better);`,
    `  they hold steady between runs where absolute ops/s move with the runtime's allocation cost.`,
    "",
    table(
      ["case", "bytes", "ops/s", "us/op", "IQR/med", "copy+walk us", "vs walk", "JSON rt us", "vs JSON"],
      rows,
    ),
  ].join("\n");
}

function latencyReport(r: LatencyRow): string {
  const row = (name: string, s: LatencyResult["raw"], ratio: boolean) => [
    name,
    f(s.median),
    f(s.p90),
    f(s.p99),
    f(s.mean),
    ratio ? formatRatio(s.median / r.raw.median) : "1.00x",
  ];
  const verdict = r.met ? "MET" : "NOT MET";
  return [
    `Latency: ${r.command} over ${r.socket === "tcp" ? "TCP (loopback, TCP_NODELAY)" : "unix socket"}`,
    `  command ${r.commandBytes} B, response ${r.responseBytes} B; ${r.iterations} timed exchanges per path after ` +
    `${r.warmup} warm-up, in rotating batches of ${r.batchSize};`,
    `  swtpm serves one connection at a time, so each path holds its own persistent connection for a batch`,
    `  and the first ${r.batchWarmup} exchanges of every batch (the reconnect) are not timed`,
    "",
    table(["path", "median us", "p90 us", "p99 us", "mean us", "vs raw"], [
      row("raw node:net socket (same bytes)", r.raw, false),
      row("SwtpmTransport.send", r.transport, true),
      row("Tpm.execute (client)", r.client, true),
      row("Tpm.execute, no-I/O transport (CPU)", r.clientNoIo, true),
    ]),
    "",
    `  client/raw at median: ${f(r.clientOverRaw, 3)} (overhead ${f(r.overheadUs, 1)} us); ` +
    `target < ${f(1 + r.target, 2)}: ${verdict}`,
    `  other processes used ${r.otherCpuPercent}% of a core meanwhile` +
    (r.otherCpuPercent > BUSY_PERCENT
      ? ": BUSY MACHINE; busy CPUs skip the idle wake-ups the raw exchange otherwise pays, so these figures do not compare with an idle run"
      : ""),
  ].join("\n");
}

// ---- run ----------------------------------------------------------------------------------------

const instances = new Set<SwtpmInstance>();

async function stopAll(): Promise<void> {
  const all = [...instances];
  instances.clear();
  await Promise.allSettled(all.map((i) => i.stop()));
}

/** A private swtpm for `fn`, stopped after it (or by the signal handler). */
async function withSwtpm<T>(options: StartSwtpmOptions, fn: (inst: SwtpmInstance) => Promise<T>): Promise<T> {
  const inst = await startSwtpm(options);
  instances.add(inst);
  try {
    return await fn(inst);
  } finally {
    instances.delete(inst);
    await inst.stop();
  }
}

function checkRandom(r: Record<string, unknown>): void {
  if ((r.randomBytes as Uint8Array).length !== 32) throw new Error("GetRandom(32) returned the wrong length");
}

function checkPcrs(r: Record<string, unknown>): void {
  const values = r.pcrValues as Uint8Array[];
  if (values.length !== 8 || values.some((v) => v.length !== 32)) {
    throw new Error(`PCR_Read returned ${values.length} digests, expected 8 of 32 bytes`);
  }
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  const m = await machine();
  const report: {
    machine: Machine;
    options: Options;
    codec?: CodecResult[];
    latency?: LatencyRow[];
    latencySkipped?: string;
    flow?: FlowResult;
    flowSkipped?: string;
    simulator?: SimulatorResult;
    simulatorSkipped?: string;
    registrar?: RegistrarResult;
    registration?: RegistrationBenchResult[];
    agent?: AgentBenchResult;
    /** The same with the Node executable (dist/keylime-ts) as keylime_agent. */
    agentBinary?: AgentBenchResult;
    agentSkipped?: string;
    binary?: BinaryBenchResult;
    binarySkipped?: string;
    nk?: NkCertifyBenchResult;
    nkSkipped?: string;
  } = { machine: m, options: o };
  const wanted = (part: Options["only"]) => o.only === undefined || o.only === part;

  if (wanted("codec")) {
    report.codec = runCodecBench(o.codec, progress);
  }

  if (wanted("latency")) {
    const skip = swtpmSkipReason();
    if (skip) {
      report.latencySkipped = skip;
    } else {
      const results: LatencyRow[] = [];
      const measure = async <C extends AnyCommand>(inst: SwtpmInstance, c: LatencyCase<C>) => {
        const probe = startLoadProbe([inst.pid]);
        const r = await runLatency(c, o.latency, progress);
        results.push({ ...r, otherCpuPercent: probe.stop() });
      };
      const random = { label: "GetRandom(32)", def: GetRandom, args: { bytesRequested: 32 }, check: checkRandom };
      const pcrs = {
        label: "PCR_Read(sha256: 0-7)",
        def: PCR_Read,
        args: { pcrSelectionIn: PCRS_0_7 },
        check: checkPcrs,
      };
      // A blank TPM is enough for GetRandom and PCR_Read, and skips swtpm_setup's EK provisioning.
      progress("starting swtpm (tcp)");
      await withSwtpm({ transport: "tcp", provision: false }, async (inst) => {
        const at = { socket: "tcp" as const, uri: inst.uri, address: { host: "127.0.0.1", port: inst.port! } };
        await measure(inst, { ...at, ...random });
        await measure(inst, { ...at, ...pcrs });
      });
      progress("starting swtpm (unix)");
      await withSwtpm({ transport: "unix", provision: false }, async (inst) => {
        await measure(inst, { socket: "unix", uri: inst.uri, address: { path: inst.socketPath! }, ...random });
      });
      report.latency = results;
    }
  }

  if (wanted("flow")) {
    const skip = swtpmSkipReason() ?? flowSkipReason();
    if (skip) {
      report.flowSkipped = skip;
    } else {
      progress("starting swtpm (tcp, provisioned) for the flow");
      // Provisioned like a real host's TPM (EK certificates in NV); the tools and our client share it.
      await withSwtpm({ transport: "tcp" }, async (inst) => {
        report.flow = await runFlow(inst, o.flow, progress);
      });
    }
  }
  if (wanted("simulator")) {
    const skip = swtpmSkipReason();
    if (skip) {
      report.simulatorSkipped = skip;
    } else {
      progress("starting swtpm (tcp) for the simulator comparison");
      // A blank TPM: the operations create their EKs and need no certificates.
      await withSwtpm({ transport: "tcp", provision: false }, async (inst) => {
        report.simulator = await runSimulatorBench(inst, o.simulator, progress);
      });
    }
  }
  if (wanted("registrar")) {
    report.registrar = await runRegistrarBench(o.registrar, progress);
  }
  if (wanted("registration")) {
    progress("registration end to end (swtpm, simulator) against the reference registrar");
    report.registration = await runRegistrationBench({ runs: o.registrationRuns, tpms: ["swtpm", "sim"] });
  }
  if (wanted("agent")) {
    const skip = swtpmSkipReason();
    if (skip) report.agentSkipped = skip;
    else {
      progress("keylime_agent on swtpm: identity quotes over mTLS");
      report.agent = await runAgentBench({ quick: o.quick }, progress);
      progress("building dist/keylime-ts");
      report.agentBinary = await runAgentBench({ quick: o.quick, exe: await buildBinary("x64") }, progress);
    }
  }
  if (wanted("binary")) {
    const skip = swtpmSkipReason();
    if (skip) report.binarySkipped = skip;
    else report.binary = await runBinaryBench({ quick: o.quick }, progress);
  }

  if (wanted("nk")) {
    const skip = swtpmSkipReason();
    if (skip) report.nkSkipped = skip;
    else {
      progress("the NK certify binding on swtpm: registration and identity proofs against the classic ones");
      report.nk = await runNkCertifyBench({ quick: o.quick }, progress);
    }
  }
  progressDone();

  if (o.json) {
    console.log(JSON.stringify(report, null, 2));
    return;
  }
  const out: string[] = [
    "keylime-ts benchmarks",
    `  machine: ${m.cpu}, ${m.cores} cores, ${m.os}`,
    `  runtime: ${m.runtime}, V8 ${m.v8}`,
    `  swtpm:   ${m.swtpm}`,
    `  load average at start: ${m.loadavg.join(" ")}; CPU busy before start: ${m.busyBeforePercent}%; ${m.date}`,
  ];
  if (m.busyBeforePercent > 15) {
    out.push(
      `  WARNING: the machine was busy before the run; latency figures shift both ways under load (the raw`,
      `  exchange loses its idle wake-ups, the client loses CPU to other work). Rerun on an idle machine.`,
    );
  }
  if (report.codec) out.push("", codecReport(report.codec, o.codec));
  if (report.latencySkipped) out.push("", `Latency: skipped (${report.latencySkipped})`);
  for (const r of report.latency ?? []) out.push("", latencyReport(r));
  if (report.latency) {
    const met = report.latency.filter((r) => r.met).length;
    const busy = report.latency.filter((r) => r.otherCpuPercent > BUSY_PERCENT).length;
    out.push(
      "",
      `Target: client adds < ${TARGET_OVERHEAD * 100}% over the raw exchange at the median: ` +
        `met in ${met} of ${report.latency.length} cases` +
        (busy ? ` (${busy} measured on a busy machine; rerun when idle)` : ""),
    );
  }
  if (report.flowSkipped) out.push("", `Flow: skipped (${report.flowSkipped})`);
  if (report.flow) out.push("", flowReport(report.flow));
  if (report.simulatorSkipped) out.push("", `Simulator: skipped (${report.simulatorSkipped})`);
  if (report.simulator) out.push("", simulatorReport(report.simulator));
  if (report.registrar) out.push("", registrarReport(report.registrar));
  if (report.registration) out.push("", registrationReport(report.registration));
  if (report.agent) out.push("", agentReport(report.agent));
  if (report.agentBinary) out.push("", agentReport(report.agentBinary));
  if (report.agentSkipped) out.push("", `Agent: skipped (${report.agentSkipped})`);
  if (report.binary) out.push("", binaryReport(report.binary));
  if (report.binarySkipped) out.push("", `Binary: skipped (${report.binarySkipped})`);
  if (report.nk) out.push("", nkCertifyReport(report.nk));
  if (report.nkSkipped) out.push("", `NK certify: skipped (${report.nkSkipped})`);
  console.log(out.join("\n"));
}

const onSignal = (sig: "SIGINT" | "SIGTERM") => {
  progressDone();
  process.stderr.write(`[bench] ${sig}: stopping swtpm\n`);
  void stopAll().finally(() => process.exit(sig === "SIGINT" ? 130 : 143));
};
process.on("SIGINT", () => onSignal("SIGINT"));
process.on("SIGTERM", () => onSignal("SIGTERM"));

try {
  await main();
} catch (e) {
  progressDone();
  console.error(`bench failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
  process.exitCode = 1;
} finally {
  await stopAll();
}
// Signal listeners keep the event loop alive under Node; leave once the work is done.
process.exit(process.exitCode ?? 0);

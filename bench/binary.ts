/**
 * The single executable (docs/binary.md) beside the same program from source under Deno, in one table:
 * size raw and xz-compressed (x86_64, and armv7 where qemu can build it), start-up (`--version`, median of
 * 20 runs), the agent's idle RSS (keylime_agent on swtpm, after start and registration), and the reference
 * registrar's registrations per second with 1 and 8 clients (bench/registrar.ts) under each runtime.
 *
 *   scripts/deno run -A bench/main.ts --only binary [--quick]
 */
import { execFileSync } from "node:child_process";
import { statSync } from "node:fs";
import { join } from "node:path";
import { startAgentProcess } from "../tests/helpers/agent_process.ts";
import { buildBinary, qemuArmSkipReason } from "../tests/helpers/binary.ts";
import { ROOT } from "../tests/helpers/agent_process.ts";
import { dropFromPageCache, rssMiB, SETTLE_MS, table } from "./common.ts";
import { REGISTRAR_DEFAULTS, REGISTRAR_QUICK, runRegistrarBench } from "./registrar.ts";
import { median } from "./stats.ts";

/** The targets. */
export const BINARY_TARGETS = { startupMs: 150, idleRssMiB: 60, armv7XzMiB: 20, registrationsPerSec: 500 };
const STARTS = 20;
/** How long the agent idles after it listens before its RSS is first read (then again once settled). */
const IDLE_MS = 3_000;

interface Figures {
  startupMs: number;
  /** IDLE_MS after the agent listens. */
  startRssMiB: number;
  /** SETTLE_MS after it listens: the idle RSS the target is about. */
  idleRssMiB: number;
  /** Per client count: registrations/s, and the registrar's and the clients' CPU ms per registration. */
  registrationsPerSec: { clients: number; perSec: number; registrarCpuMs: number; clientsCpuMs: number }[];
}

export interface BinaryBenchResult {
  sizes: { file: string; rawMiB: number; xzMiB: number }[];
  armv7Skipped?: string;
  binary: Figures;
  source: Figures;
}

const MiB = 2 ** 20;

function sizes(file: string): { file: string; rawMiB: number; xzMiB: number } {
  const xz = execFileSync("xz", ["-6", "-T2", "-c", file], { maxBuffer: 1 << 30 });
  return { file: file.slice(ROOT.length + 1), rawMiB: statSync(file).size / MiB, xzMiB: xz.length / MiB };
}

function startupMs(command: string[]): number {
  const [cmd, ...args] = command;
  const times: number[] = [];
  for (let i = 0; i < STARTS; i++) {
    const t = performance.now();
    execFileSync(cmd!, [...args, "--version"], { stdio: "ignore" });
    times.push(performance.now() - t);
  }
  return median(times);
}

async function idleRss(exe: string | undefined): Promise<{ start: number; settled: number }> {
  dropFromPageCache(exe ?? process.execPath);
  const agent = await startAgentProcess({ uuid: crypto.randomUUID(), ...(exe ? { exe } : {}) });
  try {
    await new Promise((ok) => setTimeout(ok, IDLE_MS));
    const start = rssMiB(agent.pid);
    await new Promise((ok) => setTimeout(ok, SETTLE_MS - IDLE_MS));
    return { start, settled: rssMiB(agent.pid) };
  } finally {
    await agent.stop();
  }
}

async function figures(
  command: string[],
  exe: string | undefined,
  quick: boolean,
  progress: (m: string) => void,
): Promise<Figures> {
  progress(`${command.join(" ")}: start-up, ${STARTS} runs`);
  const start = startupMs(command);
  progress(`${command.join(" ")}: keylime_agent's idle RSS on swtpm, after start and settled`);
  const rss = await idleRss(exe);
  const r = await runRegistrarBench({ ...(quick ? REGISTRAR_QUICK : REGISTRAR_DEFAULTS), command }, progress);
  const rows = r.rows.filter((row) => row.sync === "normal");
  return {
    startupMs: start,
    startRssMiB: rss.start,
    idleRssMiB: rss.settled,
    registrationsPerSec: rows.map((row) => ({
      clients: row.concurrency,
      perSec: row.perSec,
      registrarCpuMs: row.registrarCpuMsPerRegistration,
      clientsCpuMs: row.clientsCpuMsPerRegistration,
    })),
  };
}

export async function runBinaryBench(o: { quick: boolean }, progress: (m: string) => void): Promise<BinaryBenchResult> {
  progress("building dist/keylime-ts");
  const exe = await buildBinary("x64");
  const files = [exe];
  const armv7Skipped = qemuArmSkipReason();
  if (!armv7Skipped) {
    progress("building dist/keylime-ts-armv7");
    files.push(await buildBinary("armv7"));
  }
  progress("sizes (xz -6)");
  const sized = files.map(sizes);
  const binary = await figures([exe], exe, o.quick, progress);
  const source = await figures([join(ROOT, "scripts", "keylime-ts")], undefined, o.quick, progress);
  return { sizes: sized, ...(armv7Skipped ? { armv7Skipped } : {}), binary, source };
}

export function binaryReport(r: BinaryBenchResult): string {
  const t = BINARY_TARGETS;
  const verdict = (ok: boolean) => (ok ? "MET" : "NOT MET");
  const perSec = (f: Figures, clients: number) =>
    f.registrationsPerSec.find((x) => x.clients === clients)?.perSec.toFixed(0) ?? "-";
  const cpu = (f: Figures, clients: number) => {
    const x = f.registrationsPerSec.find((x) => x.clients === clients);
    return x ? `${x.registrarCpuMs.toFixed(2)} + ${x.clientsCpuMs.toFixed(2)}` : "-";
  };
  const clients = r.binary.registrationsPerSec.map((x) => x.clients);
  const best = Math.max(...r.binary.registrationsPerSec.map((x) => x.perSec));
  const armv7 = r.sizes.find((s) => s.file.endsWith("armv7"));
  return [
    "Single executable (Node SEA, dist/keylime-ts) against the same program from source under Deno",
    "  (scripts/keylime-ts). Start-up: `--version`, median of 20 runs. RSS: keylime_agent on swtpm, first start",
    `  (registered, mTLS certificate made), ${IDLE_MS / 1000} s after it listens and idle once settled (${
      SETTLE_MS / 1000
    } s). Registrar: bench/registrar.ts.`,
    "",
    table(["", "binary", "source (Deno)", "target"], [
      ["start-up ms", r.binary.startupMs.toFixed(0), r.source.startupMs.toFixed(0), `< ${t.startupMs}`],
      ["agent RSS MiB after start", r.binary.startRssMiB.toFixed(1), r.source.startRssMiB.toFixed(1), ""],
      [
        "agent idle RSS MiB (settled)",
        r.binary.idleRssMiB.toFixed(1),
        r.source.idleRssMiB.toFixed(1),
        `< ${t.idleRssMiB}`,
      ],
      ...clients.map((c) => [
        `registrations/s, ${c} client${c > 1 ? "s" : ""}`,
        perSec(r.binary, c),
        perSec(r.source, c),
        `>= ${t.registrationsPerSec}`,
      ]),
      ...clients.map((
        c,
      ) => [`CPU ms/registration, ${c} client${c > 1 ? "s" : ""}`, cpu(r.binary, c), cpu(r.source, c), ""]),
    ]),
    "  CPU ms/registration: the registrar's + the clients' (bench/registrar_clients.ts, a Node process), both on",
    "  the same cores, so registrations/s is at most min(cores, clients) * 1000 / their sum.",
    "",
    table(["file", "MiB", "xz MiB"], r.sizes.map((s) => [s.file, s.rawMiB.toFixed(1), s.xzMiB.toFixed(1)])),
    ...(r.armv7Skipped ? [`  armv7: skipped (${r.armv7Skipped})`] : []),
    "",
    `  x86_64 start-up < ${t.startupMs} ms: ${verdict(r.binary.startupMs < t.startupMs)}; ` +
    `idle RSS < ${t.idleRssMiB} MiB: ${verdict(r.binary.idleRssMiB < t.idleRssMiB)}; ` +
    `registrar >= ${t.registrationsPerSec}/s: ${verdict(best >= t.registrationsPerSec)}` +
    (armv7 ? `; armv7 xz < ${t.armv7XzMiB} MiB: ${verdict(armv7.xzMiB < t.armv7XzMiB)}` : ""),
  ].join("\n");
}

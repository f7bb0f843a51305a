/**
 * The embedded simulator against swtpm: the same command mix through our client (src/tpm), on three
 * backends that take turns block by block, so drift in the machine's load hits all alike:
 *
 *   swtpm       libtpms in its own process, over TCP (the reference)
 *   sim socket  the simulator behind its swtpm socket server (the same wire protocol as swtpm)
 *   sim in-proc the simulator through simulatorTransport (no wire at all)
 *
 * The socket server runs in this process, on the client's event loop, where swtpm has a process of
 * its own; so "sim socket" pays the engine, the loopback and the client on one thread.
 *
 * Each operation is one call of the library function (createEk, createAk, loadAk, activateCredential,
 * quote, certifySoftwareKey, pcrRead), timed end to end; a transport wrapper notes the time each TPM
 * command spent in transport.send (the TPM and the wire), which says where a slow operation loses.
 *
 * The simulator derives an RSA primary once per (seed, template) and caches it, so its CreatePrimary
 * of the RSA EK is cheap from the second time on. The first-time derivation is timed on its own row:
 * each sample swaps in a fresh endorsement seed (what TPM2_ChangeEPS would do), creates the EK,
 * then puts the seed back and drops the new cache entry. That row is exempt from the target.
 *
 * Target (from the issue): the simulator within 2x of swtpm at the median, for every operation but
 * first-time RSA key generation, on both simulator backends.
 */
import { randomBytes } from "node:crypto";
import { createAk } from "../src/tpm/ak.ts";
import { Tpm } from "../src/tpm/client.ts";
import { Startup } from "../src/tpm/commands.ts";
import { TPM_SU } from "../src/tpm/constants.ts";
import type { EkAlg } from "../src/tpm/templates.ts";
import { pcrRead } from "../src/tpm/pcrs.ts";
import type { Transport } from "../src/tpm/transport/transport.ts";
import { openTransport } from "../src/tpm/transport/uri.ts";
import { openSimulator, simulatorTransport } from "../simulator/index.ts";
import { startListening } from "../simulator/listen_uri.ts";
import type { SimTpm } from "../simulator/sim_tpm.ts";
import type { SwtpmInstance } from "../tests/helpers/swtpm.ts";
import { commandList, formatMs, formatRatio, medianP90, PCRS_0_7, rotateBlocks, table } from "./common.ts";
import {
  connectUntimed,
  type FixtureAk,
  newCertifyKey,
  timeActivateCredential,
  timeCertify,
  timeCreateAk,
  timeCreateEk,
  TimedSamples,
  TimedTransport,
  type TimeFn,
  timeLoadAk,
  timeQuote,
  timer,
  withEk,
} from "./flow_steps.ts";
import { BUSY_PERCENT, startLoadProbe } from "./load.ts";
import { type LatencySummary, summarize } from "./stats.ts";

export interface SimulatorBenchOptions {
  /** Timed runs per backend of the fast operations. */
  fast: number;
  /** Timed runs per backend of AK creation (RSA key generation on every backend). */
  slow: number;
  /** Timed runs per backend of PCR_Read (sub-millisecond). */
  pcr: number;
  /** Timed first-time RSA EK derivations per simulator backend. */
  first: number;
  /** Runs per block; the backends take turns block by block, in rotating order. */
  block: number;
}

export const SIMULATOR_DEFAULTS: SimulatorBenchOptions = { fast: 50, slow: 20, pcr: 400, first: 12, block: 4 };
export const SIMULATOR_QUICK: SimulatorBenchOptions = { fast: 10, slow: 4, pcr: 50, first: 3, block: 2 };

/** The simulator may take this many times swtpm's median (every operation but first-time RSA keygen). */
export const TARGET_RATIO = 2;

/**
 * The kernel's CPU times move in clock ticks (10 ms): over a shorter window than this the foreign-CPU
 * share is quantisation noise, so a row that short reports none of its own.
 */
const MIN_PROBE_MS = 1000;

export const BACKENDS = ["swtpm", "simSocket", "simInProcess"] as const;
export type BackendId = typeof BACKENDS[number];
const BACKEND_LABEL: Readonly<Record<BackendId, string>> = {
  swtpm: "swtpm (TCP)",
  simSocket: "sim socket",
  simInProcess: "sim in-proc",
};
const SIMS = ["simSocket", "simInProcess"] as const satisfies readonly BackendId[];

/** One TPM command's time in transport.send within an operation (summed when it is sent twice). */
export interface CommandTiming {
  readonly command: string;
  readonly ms: LatencySummary;
}

export interface BackendCell {
  /** The whole operation through our client, ms. */
  readonly opMs: LatencySummary;
  /** Per run, the time spent in transport.send (TPM + wire), ms. */
  readonly tpmMs: LatencySummary;
  readonly perCommand: CommandTiming[];
}

export interface SimulatorRow {
  readonly op: string;
  /** Timed runs per backend. */
  readonly runs: number;
  /** The TPM commands one run sends (from the swtpm backend). */
  readonly commands: string[];
  readonly cells: Record<BackendId, BackendCell>;
  /** Simulator median / swtpm median of the whole operation, per simulator backend. */
  readonly ratio: Record<typeof SIMS[number], number>;
  /** The same ratio on the time in transport.send alone. */
  readonly tpmRatio: Record<typeof SIMS[number], number>;
  /** First-time RSA key generation: reported, not held to the target. */
  readonly exempt: boolean;
  readonly met: boolean;
  /**
   * CPU used by processes other than this one and swtpm during the row's blocks, % of one core;
   * undefined when the blocks took less than MIN_PROBE_MS (too short to tell).
   */
  readonly otherCpuPercent: number | undefined;
  /** Wall time of the row's timed blocks, ms. */
  readonly wallMs: number;
  readonly note?: string;
}

export interface SimulatorResult {
  readonly options: SimulatorBenchOptions;
  readonly swtpmUri: string;
  readonly simSocketUri: string;
  /** openSimulator() of the two simulators (manufacture: seeds, CA, EK certificates), ms. */
  readonly openMs: number[];
  readonly rows: SimulatorRow[];
  readonly met: number;
  readonly held: number;
  readonly otherCpuPercent: number;
  readonly totalSeconds: number;
}

// ---- backends ------------------------------------------------------------------------------------

interface Backend {
  readonly id: BackendId;
  readonly tpm: Tpm;
  readonly transport: TimedTransport;
  /** The simulator behind it (absent for swtpm). */
  readonly engine: SimTpm | undefined;
  /** A saved AK under this TPM's RSA EK, for the operations that need one. */
  fixture: { ak: FixtureAk } | undefined;
}

interface Operation {
  readonly name: string;
  readonly runs: number;
  readonly exempt?: boolean;
  readonly note?: string;
  /** `n` runs on a backend, each timed part wrapped in `time`; untimed setup and cleanup around. */
  run(b: Backend, n: number, time: TimeFn): Promise<void>;
}

// ---- the run -------------------------------------------------------------------------------------

export async function runSimulatorBench(
  swtpm: SwtpmInstance,
  o: SimulatorBenchOptions,
  progress: (msg: string) => void,
): Promise<SimulatorResult> {
  const started = performance.now();
  const overall = startLoadProbe([swtpm.pid]);
  const seed = Uint8Array.from(Buffer.from("keylime-ts simulator bench seed"));

  progress("simulator: manufacturing two simulators");
  const openMs: number[] = [];
  const open = async () => {
    const t0 = performance.now();
    const { engine } = await openSimulator({ seed });
    openMs.push(performance.now() - t0);
    await new Tpm(simulatorTransport(engine)).execute(Startup, { startupType: TPM_SU.CLEAR });
    return engine;
  };
  const socketEngine = await open();
  const inProcessEngine = await open();
  const server = await startListening(socketEngine, "swtpm:host=127.0.0.1,port=0");

  const backend = (id: BackendId, transport: Transport, engine: SimTpm | undefined): Backend => {
    const timed = new TimedTransport(transport);
    return { id, tpm: new Tpm(timed), transport: timed, engine, fixture: undefined };
  };
  const backends: Backend[] = [
    backend("swtpm", openTransport(swtpm.uri), undefined),
    backend("simSocket", openTransport(server.uri), socketEngine),
    backend("simInProcess", simulatorTransport(inProcessEngine), inProcessEngine),
  ];

  try {
    for (const b of backends) await connectUntimed(b.tpm);

    progress("simulator: fixtures (an AK under each backend's RSA EK)");
    for (const b of backends) b.fixture = await withEk(b.tpm, async (ek) => ({ ak: await createAk(b.tpm, ek) }));

    const ecKey = newCertifyKey();
    const ak = (b: Backend) => b.fixture!.ak;

    const ekOp = (alg: EkAlg, name: string, runs: number): Operation => ({
      name,
      runs,
      run: (b, n, time) => timeCreateEk(b.tpm, alg, n, time),
    });

    const operations: Operation[] = [
      {
        ...ekOp("rsa", "CreatePrimary RSA EK, first time", o.first),
        exempt: true,
        note: "sim: a fresh endorsement seed per run, so the RSA-2048 key is derived anew (prime search); " +
          "swtpm: its ordinary CreatePrimary",
        run: async (b, n, time) => {
          const engine = b.engine;
          if (!engine) return timeCreateEk(b.tpm, "rsa", n, time);
          const p = engine.persistent;
          const savedSeed = p.endorsement.seed;
          for (let i = 0; i < n; i++) {
            const cached = new Set(p.rsaPrimaries.keys());
            p.endorsement.seed = new Uint8Array(randomBytes(savedSeed.length));
            try {
              await timeCreateEk(b.tpm, "rsa", 1, time);
            } finally {
              p.endorsement.seed = savedSeed;
              for (const k of [...p.rsaPrimaries.keys()]) if (!cached.has(k)) p.rsaPrimaries.delete(k);
            }
          }
        },
      },
      {
        ...ekOp("rsa", "CreatePrimary RSA EK (cached)", o.fast),
        note: "sim: the RSA-2048 EK comes from the simulator's cache (derived at manufacture)",
      },
      ekOp("ecc", "CreatePrimary ECC EK", o.fast),
      {
        name: "Create AK (RSA-2048)",
        runs: o.slow,
        note: "includes the EK policy session (StartAuthSession salted to the EK, PolicySecret)",
        run: (b, n, time) => timeCreateAk(b.tpm, n, time),
      },
      {
        name: "Load AK",
        runs: o.fast,
        note: "includes the EK policy session",
        run: (b, n, time) => timeLoadAk(b.tpm, ak(b), n, time),
      },
      {
        name: "ActivateCredential",
        runs: o.fast,
        note: "includes the EK policy session; MakeCredential (software) untimed",
        run: (b, n, time) => timeActivateCredential(b.tpm, ak(b), n, time),
      },
      {
        name: "Quote (sha256:0,1,10,16)",
        runs: o.fast,
        note: "quote(): HMAC session, Quote, PCR_Read of the quoted PCRs, flush",
        run: (b, n, time) => timeQuote(b.tpm, ak(b), n, time),
      },
      {
        name: "Certify (EC P-256 software key)",
        runs: o.fast,
        note: "certifySoftwareKey(): LoadExternal, HMAC session, Certify, flushes",
        run: (b, n, time) => timeCertify(b.tpm, ak(b), ecKey, n, time),
      },
      {
        name: "PCR_Read (sha256:0-7)",
        runs: o.pcr,
        note: "one TPM2_PCR_Read",
        run: async (b, n, time) => {
          for (let i = 0; i < n; i++) await time(() => pcrRead(b.tpm, PCRS_0_7));
        },
      },
    ];

    const rows: SimulatorRow[] = [];
    for (const op of operations) {
      progress(`simulator: ${op.name} (${op.runs} runs per backend)`);
      const samples = new Map<BackendId, TimedSamples>(BACKENDS.map((id) => [id, new TimedSamples()]));
      const block = (b: Backend, n: number, record: boolean) =>
        op.run(b, n, timer(b.transport, samples.get(b.id)!, record));
      // One untimed run per backend first: code paths warm.
      for (const b of backends) await block(b, 1, false);
      const probe = startLoadProbe([swtpm.pid]);
      const t0 = performance.now();
      await rotateBlocks(backends, op.runs, o.block, (b, n) => block(b, n, true));
      const other = probe.stop();
      const wallMs = performance.now() - t0;
      const otherCpuPercent = wallMs >= MIN_PROBE_MS ? other : undefined;

      const cell = (id: BackendId): BackendCell => {
        const s = samples.get(id)!;
        return {
          opMs: summarize(s.op),
          tpmMs: summarize(s.wire),
          perCommand: [...s.perCommand].map(([command, v]) => ({ command, ms: summarize(v) })),
        };
      };
      const cells = Object.fromEntries(BACKENDS.map((id) => [id, cell(id)])) as Record<BackendId, BackendCell>;
      const ratio = Object.fromEntries(
        SIMS.map((id) => [id, cells[id].opMs.median / cells.swtpm.opMs.median]),
      ) as SimulatorRow["ratio"];
      const tpmRatio = Object.fromEntries(
        SIMS.map((id) => [id, cells[id].tpmMs.median / cells.swtpm.tpmMs.median]),
      ) as SimulatorRow["tpmRatio"];
      const exempt = op.exempt ?? false;
      rows.push({
        op: op.name,
        runs: op.runs,
        commands: samples.get("swtpm")!.commands ?? [],
        cells,
        ratio,
        tpmRatio,
        exempt,
        met: exempt || SIMS.every((id) => ratio[id] <= TARGET_RATIO),
        otherCpuPercent,
        wallMs,
        ...(op.note ? { note: op.note } : {}),
      });
    }

    const held = rows.filter((r) => !r.exempt);
    return {
      options: o,
      swtpmUri: swtpm.uri,
      simSocketUri: server.uri,
      openMs,
      rows,
      met: held.filter((r) => r.met).length,
      held: held.length,
      otherCpuPercent: overall.stop(),
      totalSeconds: (performance.now() - started) / 1000,
    };
  } finally {
    for (const b of backends) await b.tpm.close().catch(() => {});
    await server.close();
    await socketEngine.close();
    await inProcessEngine.close();
  }
}

// ---- report --------------------------------------------------------------------------------------

const ms = (x: number) => formatMs(x, 3);
const x = formatRatio;

export function simulatorReport(r: SimulatorResult): string {
  const verdict = (row: SimulatorRow) => {
    if (row.exempt) return "exempt";
    if (row.met) return "yes";
    return `NO (${SIMS.filter((id) => row.ratio[id] > TARGET_RATIO).map((id) => BACKEND_LABEL[id]).join(", ")})`;
  };
  const rows = r.rows.map((row) => {
    const c = row.cells;
    return [
      row.op,
      String(row.runs),
      ...medianP90(c.swtpm.opMs, ms),
      ...medianP90(c.simSocket.opMs, ms),
      x(row.ratio.simSocket),
      ...medianP90(c.simInProcess.opMs, ms),
      x(row.ratio.simInProcess),
      verdict(row),
      row.otherCpuPercent === undefined
        ? "-"
        : `${row.otherCpuPercent}%${row.otherCpuPercent > BUSY_PERCENT ? " BUSY" : ""}`,
    ];
  });
  const breakdown = r.rows.flatMap((row) => {
    const names = row.cells.swtpm.perCommand.map((c) => c.command);
    const med = (id: BackendId, command: string) => row.cells[id].perCommand.find((c) => c.command === command)?.ms;
    const lines = names.map((command) => {
      const sw = med("swtpm", command)!;
      const so = med("simSocket", command);
      const ip = med("simInProcess", command);
      return [
        row.op,
        command,
        ms(sw.median),
        so ? ms(so.median) : "-",
        so ? x(so.median / sw.median) : "-",
        ip ? ms(ip.median) : "-",
        ip ? x(ip.median / sw.median) : "-",
      ];
    });
    const t = row.cells;
    return [
      ...lines,
      [
        row.op,
        "(all, in send)",
        ms(t.swtpm.tpmMs.median),
        ms(t.simSocket.tpmMs.median),
        x(row.tpmRatio.simSocket),
        ms(t.simInProcess.tpmMs.median),
        x(row.tpmRatio.simInProcess),
      ],
    ];
  });
  const legend = r.rows.flatMap((row) => [
    `  ${row.op}: ${commandList(row.commands)}`,
    ...(row.note ? [`      ${row.note}`] : []),
  ]);
  return [
    `Simulator vs swtpm: the same operations through our client, ms per operation, median and p90 of the timed`,
    `  runs per backend; the three backends take turns in blocks of ${r.options.block} (rotating order) after one ` +
    `untimed run each.`,
    `  swtpm ${r.swtpmUri} (own process); sim socket ${r.simSocketUri} (the simulator's swtpm server, in this`,
    `  process); sim in-proc = simulatorTransport. ratio = simulator median / swtpm median (lower is better).`,
    `  Target: simulator within ${TARGET_RATIO}x of swtpm at the median on both simulator backends, for every ` +
    `operation but first-time RSA keygen.`,
    `  "other CPU" = CPU used by processes other than this one and swtpm meanwhile (% of one core); "-" when the`,
    `  row's blocks took under ${
      MIN_PROBE_MS / 1000
    } s, too short for the kernel's 10 ms CPU ticks (see the whole run ` +
    `below).`,
    "",
    table(
      [
        "operation",
        "runs",
        "swtpm med",
        "p90",
        "sim sock med",
        "p90",
        "sock/swtpm",
        "sim in-proc med",
        "p90",
        "in-proc/swtpm",
        `meets ${TARGET_RATIO}x`,
        "other CPU",
      ],
      rows,
      1,
    ),
    "",
    `  Target met in ${r.met} of ${r.held} operations held to it` +
    (r.rows.some((row) => (row.otherCpuPercent ?? 0) > BUSY_PERCENT) ? " (some measured on a busy machine)" : "") +
    `. openSimulator() (manufacture incl. RSA EK derivation, CA, EK certs): ` +
    `${r.openMs.map((v) => ms(v)).join(", ")} ms.`,
    "",
    ...legend,
    "",
    "Time in transport.send per TPM command (the TPM + the wire; for in-proc the engine alone), median ms",
    "",
    table(
      ["operation", "TPM command", "swtpm", "sim sock", "sock/swtpm", "sim in-proc", "in-proc/swtpm"],
      breakdown,
      2,
    ),
    "",
    `  simulator bench took ${r.totalSeconds.toFixed(1)} s; other processes used ${r.otherCpuPercent}% of a core ` +
    `over the whole run`,
  ].join("\n");
}

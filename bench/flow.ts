/**
 * The Keylime attestation flow step by step on one private swtpm: each step through our client
 * (src/tpm), beside the same step done by tpm2-tools processes (the reference, DESIGN.md "Tests").
 *
 * Steps: EK creation (RSA-2048 L-1, ECC P-256 L-2), AK creation under the EK, AK load, software
 * MakeCredential, ActivateCredential, Quote (with the PCR read-back) and Certify of a LoadExternal'd
 * EC P-256 key. A tool step is timed as processes (spawn to exit), summed when the step takes several.
 *
 * swtpm serves one connection at a time and, with no resource manager, holds only 3 transient
 * objects: our client closes its connection before the tools run, and `tpm2_flushcontext -t` runs
 * before every tool step, outside the timed part. The two sides alternate block by block (order
 * swapped each block), so drift in the machine's load hits both alike.
 *
 * Where our time goes is split with a transport wrapper: "TPM + wire" is the time spent in
 * transport.send (swtpm's work plus the loopback round trips), the rest is the client's own CPU
 * (marshalling, sessions, HMACs, software crypto). For CreatePrimary and Quote the client's command
 * bytes are also replayed on a bare node:net socket, which leaves the TPM and the loopback alone;
 * those are the password-session forms of the commands, since an HMAC session's bytes cannot be
 * sent twice (its nonces roll).
 */
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import process from "node:process";
import { createAk, loadAk } from "../src/tpm/ak.ts";
import { Tpm } from "../src/tpm/client.ts";
import { FlushContext, Quote } from "../src/tpm/commands.ts";
import { TPM_ALG, TPM_CC, TPM_RH } from "../src/tpm/constants.ts";
import { makeCredential } from "../src/tpm/credential.ts";
import { createEk, releaseEk } from "../src/tpm/ek.ts";
import { EK_TEMPLATES, type EkAlg } from "../src/tpm/templates.ts";
import { createPrimary, flush } from "../src/tpm/objects.ts";
import { pcrSelection } from "../src/tpm/pcrs.ts";
import { EMPTY_PASSWORD } from "../src/tpm/sessions.ts";
import type { TPMT_PUBLIC } from "../src/tpm/structures.ts";
import { openTransport } from "../src/tpm/transport/uri.ts";
import { requireTools, type SwtpmInstance } from "../tests/helpers/swtpm.ts";
import {
  commandList,
  formatMs,
  formatRatio,
  medianP90,
  plainCommand,
  pushSample,
  responseCode,
  rotateBlocks,
  table,
} from "./common.ts";
import {
  connectUntimed,
  type FixtureAk,
  newCertifyKey,
  NONCE,
  QUOTE_PCRS,
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
import { RawSocket } from "./latency.ts";
import { type LatencySummary, summarize } from "./stats.ts";
import { toHex } from "../src/util/encoding.ts";

export interface FlowOptions {
  /** Timed runs per side of the fast steps. */
  fast: number;
  /** Timed runs per side of the slow ones: RSA EK creation (~17 ms) and AK creation (RSA key generation). */
  slow: number;
  /** Runs per block; our client and the tools take turns block by block. */
  block: number;
}

export const FLOW_DEFAULTS: FlowOptions = { fast: 25, slow: 10, block: 5 };
export const FLOW_QUICK: FlowOptions = { fast: 8, slow: 4, block: 4 };

/** The tpm2-tools this bench runs; the reason to skip it when one is missing. */
export function flowSkipReason(): string | undefined {
  return requireTools(
    "tpm2_createek",
    "tpm2_createak",
    "tpm2_load",
    "tpm2_makecredential",
    "tpm2_startauthsession",
    "tpm2_policysecret",
    "tpm2_activatecredential",
    "tpm2_quote",
    "tpm2_certify",
    "tpm2_flushcontext",
  );
}

/** One tool process of a step, its duration in ms. */
export interface ToolProcessResult {
  readonly command: string;
  readonly ms: LatencySummary;
}

/** Median ms one TPM command took in transport.send (TPM + wire), within one step. */
export interface CommandTiming {
  readonly command: string;
  readonly tpmWireMs: LatencySummary;
}

export interface FlowStepResult {
  readonly step: string;
  /** Timed runs per side. */
  readonly runs: number;
  /** The TPM commands our client sends in one run. */
  readonly oursCommands: string[];
  readonly oursMs: LatencySummary;
  /** Per run: time spent in transport.send (swtpm's work and the loopback). */
  readonly tpmWireMs: LatencySummary;
  /** Per run: ours minus TPM + wire, i.e. the client's own CPU (and event-loop) time. */
  readonly clientMs: LatencySummary;
  readonly perCommand: CommandTiming[];
  /** The tool processes of one run, each on its own, then their sum. */
  readonly toolProcesses: ToolProcessResult[];
  readonly toolsMs: LatencySummary;
  /** oursMs.median / toolsMs.median; lower is better. */
  readonly oursOverTools: number;
  readonly note?: string;
}

export interface RawReplayResult {
  readonly command: string;
  readonly commandBytes: number;
  readonly runs: number;
  /** The same bytes on a bare node:net socket: the TPM plus the loopback round trip. */
  readonly rawMs: LatencySummary;
  /** What our transport.send took for that command inside the flow step (for comparison). */
  readonly clientSendMs: LatencySummary | undefined;
  readonly note: string;
}

export interface FlowResult {
  readonly uri: string;
  readonly options: FlowOptions;
  readonly steps: FlowStepResult[];
  readonly rawReplay: RawReplayResult[];
  /** Process floors: spawning /bin/true, and `tpm2_flushcontext -t` (process + TCTI start-up + 2 commands). */
  readonly spawnTrueMs: LatencySummary;
  readonly flushcontextMs: LatencySummary;
  readonly totalSeconds: number;
}

// ---- the steps -----------------------------------------------------------------------------------

interface ToolInvocation {
  /** Short name for the report, e.g. "tpm2_quote". */
  readonly label: string;
  readonly argv: readonly string[];
}

interface Step {
  readonly name: string;
  readonly runs: number;
  readonly note?: string;
  /** Our client: `n` runs on an open Tpm, each timed part wrapped in `time`; untimed setup and cleanup around. */
  ours(tpm: Tpm, n: number, time: TimeFn): Promise<void>;
  /** One tool run: these processes, timed and summed. */
  readonly tools: readonly ToolInvocation[];
}

/** Our client's runs (in TimedSamples) and the tools' of one step. */
class StepSamples extends TimedSamples {
  readonly tools: number[] = [];
  readonly toolProcesses = new Map<string, number[]>();
}

// ---- tool processes ------------------------------------------------------------------------------

/** Run a process to completion; resolves with the ms from spawn to exit. Rejects on a non-zero exit. */
function runProcess(argv: readonly string[], env: NodeJS.ProcessEnv): Promise<number> {
  return new Promise((resolve, reject) => {
    let stderr = "";
    let exitedAt: number | undefined;
    const t0 = performance.now();
    const child = spawn(argv[0]!, argv.slice(1), { env, stdio: ["ignore", "ignore", "pipe"] });
    child.stderr!.on("data", (d: Uint8Array) => (stderr += new TextDecoder().decode(d)));
    child.once("exit", () => (exitedAt ??= performance.now()));
    child.once("error", reject);
    child.once("close", (code, signal) => {
      const ms = (exitedAt ?? performance.now()) - t0;
      if (code === 0) resolve(ms);
      else reject(new Error(`${argv.join(" ")}: exit ${code ?? signal}\n${stderr.trim()}`));
    });
  });
}

// ---- the run -------------------------------------------------------------------------------------

const enc = new TextEncoder();
const hexOf = (b: Uint8Array) => toHex(b);
const QUOTE_PCR_LIST = `sha256:${QUOTE_PCRS.join(",")}`;

/** Our fixture: the saved AK (made under the RSA EK) that AK load, activation, quote and certify use. */
interface OurFixture {
  ekPublic: TPMT_PUBLIC;
  ak: FixtureAk;
}

export async function runFlow(
  inst: SwtpmInstance,
  o: FlowOptions,
  progress: (msg: string) => void,
): Promise<FlowResult> {
  const started = performance.now();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "keylime-ts-flow-bench-"));
  const f = (name: string) => path.join(dir, name);
  const env = { ...process.env, TPM2TOOLS_TCTI: inst.tctiForTools };
  const floorFlush: number[] = [];
  const tool = (...argv: string[]) => runProcess(argv, env);
  /** Free every transient object (untimed), as a resource manager would between tool steps. */
  const flushTransients = async () => floorFlush.push(await tool("tpm2_flushcontext", "-t"));
  const flushSessions = async () => {
    await tool("tpm2_flushcontext", "-l");
    await tool("tpm2_flushcontext", "-s");
  };

  // One client for the whole run; it lets go of its connection before every tool block and
  // reconnects lazily after.
  const transport = new TimedTransport(openTransport(inst.uri));
  const tpm = new Tpm(transport);
  const withTpm = async <T>(fn: (tpm: Tpm, transport: TimedTransport) => Promise<T>): Promise<T> => {
    try {
      await connectUntimed(tpm); // reconnect before anything is timed
      return await fn(tpm, transport);
    } finally {
      transport.log.length = 0;
      // swtpm serves one client at a time: let go before any tool runs.
      await tpm.close();
    }
  };

  try {
    // ---- fixtures: ours (a saved AK) and the tools' (ek.ctx, ak.ctx, ak.pub/priv/name, a credential blob)
    progress("flow: fixtures");
    const ours: OurFixture = await withTpm((tpm) =>
      withEk(tpm, async (ek) => ({ ekPublic: ek.public, ak: await createAk(tpm, ek) }))
    );
    await tool("tpm2_createek", "-c", f("ek.ctx"), "-G", "rsa", "-u", f("ek.pub"));
    await flushTransients();
    await tool(
      ...["tpm2_createak", "-C", f("ek.ctx"), "-c", f("ak.ctx"), "-G", "rsa", "-g", "sha256", "-s", "rsassa"],
      ...["-u", f("ak.pub"), "-n", f("ak.name"), "-r", f("ak.priv")],
    );
    await flushTransients();
    const toolsAkName = hexOf(fs.readFileSync(f("ak.name")));
    fs.writeFileSync(f("secret"), enc.encode("0123456789abcdef0123456789abcdef"));
    await tool(
      ...["tpm2_makecredential", "-T", "none", "-u", f("ek.pub"), "-s", f("secret")],
      ...["-n", toolsAkName, "-o", f("blob")],
    );
    floorFlush.length = 0; // the fixture's flushes ran cold

    const ecKey = newCertifyKey();

    /** A tool command authorized by the EK policy the tpm2-tools way (tpm2_activatecredential's man page). */
    const withPolicy = (t: ToolInvocation): ToolInvocation[] => [
      { label: "startauthsession", argv: ["tpm2_startauthsession", "--policy-session", "-S", f("s.ctx")] },
      { label: "policysecret", argv: ["tpm2_policysecret", "-S", f("s.ctx"), "-c", "e"] },
      t,
      { label: "flushcontext s.ctx", argv: ["tpm2_flushcontext", f("s.ctx")] },
    ];

    const ekStep = (alg: EkAlg, name: string, runs: number): Step => ({
      name,
      runs,
      ours: (tpm, n, time) => timeCreateEk(tpm, alg, n, time),
      tools: [{
        label: "tpm2_createek",
        argv: ["tpm2_createek", "-c", f("ekb.ctx"), "-G", alg, "-u", f("ekb.pub")],
      }],
    });

    const steps: Step[] = [
      ekStep("rsa", "EK create RSA-2048 (L-1)", o.slow),
      ekStep("ecc", "EK create ECC P-256 (L-2)", o.fast),
      {
        name: "AK create (RSA-2048 RSASSA)",
        runs: o.slow,
        note: "tpm2_createak also loads the AK and saves its context; ours only creates (load is the next step)",
        ours: timeCreateAk,
        tools: [{
          label: "tpm2_createak",
          argv: [
            ...["tpm2_createak", "-C", f("ek.ctx"), "-c", f("akb.ctx"), "-G", "rsa", "-g", "sha256", "-s", "rsassa"],
            ...["-u", f("akb.pub"), "-n", f("akb.name")],
          ],
        }],
      },
      {
        name: "AK load",
        runs: o.fast,
        ours: (tpm, n, time) => timeLoadAk(tpm, ours.ak, n, time),
        tools: withPolicy({
          label: "tpm2_load",
          argv: [
            ...["tpm2_load", "-C", f("ek.ctx"), "-u", f("ak.pub"), "-r", f("ak.priv"), "-c", f("akl.ctx")],
            ...["-P", `session:${f("s.ctx")}`],
          ],
        }),
      },
      {
        name: "MakeCredential (software)",
        runs: o.fast,
        note: "no TPM on either side: makeCredential() vs tpm2_makecredential -T none",
        ours: async (_tpm, n, time) => {
          const credential = enc.encode("0123456789abcdef0123456789abcdef");
          for (let i = 0; i < n; i++) await time(() => makeCredential(ours.ekPublic, ours.ak.name, credential));
        },
        tools: [{
          label: "tpm2_makecredential",
          argv: [
            ...["tpm2_makecredential", "-T", "none", "-u", f("ek.pub"), "-s", f("secret")],
            ...["-n", toolsAkName, "-o", f("blobb")],
          ],
        }],
      },
      {
        name: "ActivateCredential",
        runs: o.fast,
        note: "ours salts its EK policy session to the EK (one more RSA decryption in the TPM); the tools' is unsalted",
        ours: (tpm, n, time) => timeActivateCredential(tpm, ours.ak, n, time),
        tools: withPolicy({
          label: "tpm2_activatecredential",
          argv: [
            ...["tpm2_activatecredential", "-c", f("ak.ctx"), "-C", f("ek.ctx"), "-i", f("blob"), "-o", f("out")],
            ...["-P", `session:${f("s.ctx")}`],
          ],
        }),
      },
      {
        name: `Quote (${QUOTE_PCR_LIST}) + PCR read`,
        runs: o.fast,
        ours: (tpm, n, time) => timeQuote(tpm, ours.ak, n, time),
        tools: [{
          label: "tpm2_quote",
          argv: [
            ...["tpm2_quote", "-c", f("ak.ctx"), "-l", QUOTE_PCR_LIST, "-q", hexOf(NONCE)],
            ...["-m", f("q.msg"), "-s", f("q.sig"), "-o", f("q.pcrs"), "-g", "sha256"],
          ],
        }],
      },
      {
        name: "Certify (EC P-256 software key)",
        runs: o.fast,
        note: "ours: LoadExternal + Certify + flush of a software key; tpm2_certify has the AK certify itself",
        ours: (tpm, n, time) => timeCertify(tpm, ours.ak, ecKey, n, time),
        tools: [{
          label: "tpm2_certify",
          argv: [
            "tpm2_certify",
            "-c",
            f("ak.ctx"),
            "-C",
            f("ak.ctx"),
            "-g",
            "sha256",
            "-o",
            f("c.att"),
            "-s",
            f("c.sig"),
          ],
        }],
      },
    ];

    const samplesByStep = new Map<string, StepSamples>();

    const oursBlock = (step: Step, s: StepSamples, n: number, record: boolean) =>
      withTpm((tpm, transport) => step.ours(tpm, n, timer(transport, s, record)));

    const toolsBlock = async (step: Step, s: StepSamples, n: number, record: boolean) => {
      for (let i = 0; i < n; i++) {
        await flushTransients();
        let sum = 0;
        for (const t of step.tools) {
          const ms = await tool(...t.argv);
          sum += ms;
          if (record) pushSample(s.toolProcesses, t.label, ms);
        }
        if (record) s.tools.push(sum);
      }
      await flushTransients();
      await flushSessions();
    };

    for (const step of steps) {
      progress(`flow: ${step.name} (${step.runs} runs per side)`);
      const s = new StepSamples();
      samplesByStep.set(step.name, s);
      // One untimed run per side first: code paths warm, files cached.
      await oursBlock(step, s, 1, false);
      await toolsBlock(step, s, 1, false);
      // Block by block, ours first in one and the tools first in the next.
      await rotateBlocks([oursBlock, toolsBlock], step.runs, o.block, (side, n) => side(step, s, n, true));
    }

    // ---- the TPM alone: the client's CreatePrimary and password-session Quote bytes on a raw socket
    progress("flow: raw replay of CreatePrimary and Quote");
    const rawReplay: RawReplayResult[] = [];
    const flushBytes = (handle: number) => plainCommand(FlushContext, { flushHandle: handle });
    /** The handle a CreatePrimary response returns. */
    const objectHandle = (r: Uint8Array) => new DataView(r.buffer, r.byteOffset, r.byteLength).getUint32(10);
    const replay = async (bytes: Uint8Array, runs: number, after?: (response: Uint8Array) => Uint8Array) => {
      const sock = await RawSocket.connect({ host: "127.0.0.1", port: inst.port! });
      const times: number[] = [];
      try {
        for (let i = 0; i <= runs; i++) {
          const t0 = performance.now();
          const r = await sock.exchange(bytes);
          const t = performance.now() - t0;
          const rc = responseCode(r);
          if (rc !== 0) throw new Error(`raw replay: rc 0x${rc.toString(16)}`);
          if (i > 0) times.push(t); // the first exchange pays the connection
          if (after) {
            const cleanup = await sock.exchange(after(r));
            const cleanupRc = responseCode(cleanup);
            if (cleanupRc !== 0) throw new Error(`raw replay cleanup: rc 0x${cleanupRc.toString(16)}`);
          }
        }
      } finally {
        await sock.close();
      }
      return summarize(times);
    };
    const sendOf = (step: string, command: string) => {
      const list = samplesByStep.get(step)?.perCommand.get(command);
      return list ? summarize(list) : undefined;
    };

    const primaryBytes = await withTpm(async (tpm, transport) => {
      const out = new Map<EkAlg, Uint8Array>();
      for (const alg of ["rsa", "ecc"] as const) {
        transport.capture = new Map();
        // createEk's own CreatePrimary goes through an HMAC session (not replayable): capture the
        // same template with a password session.
        const key = await createPrimary(tpm, TPM_RH.ENDORSEMENT, EK_TEMPLATES[alg]);
        await flush(tpm, key.handle);
        out.set(alg, transport.capture.get(TPM_CC.CreatePrimary)!);
      }
      transport.capture = undefined;
      return out;
    });
    for (const [alg, step, runs] of [["rsa", steps[0]!, o.slow], ["ecc", steps[1]!, o.fast]] as const) {
      const bytes = primaryBytes.get(alg)!;
      rawReplay.push({
        command: `CreatePrimary ${alg === "rsa" ? "RSA-2048 EK" : "ECC P-256 EK"}`,
        commandBytes: bytes.length,
        runs,
        // Each created EK is flushed again (untimed) on the same socket.
        rawMs: await replay(bytes, runs, (r) => flushBytes(objectHandle(r))),
        clientSendMs: sendOf(step.name, "CreatePrimary"),
        note:
          "the same template with a password session; createEk's CreatePrimary has an HMAC session (decrypt+encrypt)",
      });
    }

    // The client's Quote carries an HMAC session whose nonces roll, so its bytes cannot be replayed;
    // replay a password-session Quote by the same AK of the same nonce and PCRs instead. The AK stays
    // loaded while our connection is closed (no resource manager) and is flushed afterwards.
    const quoteStep = steps.find((s) => s.name.startsWith("Quote"))!;
    const { akHandle, quoteBytes } = await withTpm(async (tpm, transport) => {
      const ek = await createEk(tpm, "rsa");
      const ak = await loadAk(tpm, ek, ours.ak);
      await releaseEk(tpm, ek);
      transport.capture = new Map();
      await tpm.execute(
        Quote,
        {
          signHandle: ak.handle,
          qualifyingData: NONCE,
          inScheme: { scheme: TPM_ALG.NULL, details: null },
          PCRselect: [pcrSelection(TPM_ALG.SHA256, QUOTE_PCRS)],
        },
        { sessions: [EMPTY_PASSWORD] },
      );
      return { akHandle: ak.handle, quoteBytes: transport.capture.get(TPM_CC.Quote)! };
    });
    try {
      rawReplay.push({
        command: "Quote (RSASSA, 4 PCRs)",
        commandBytes: quoteBytes.length,
        runs: o.fast,
        rawMs: await replay(quoteBytes, o.fast),
        clientSendMs: sendOf(quoteStep.name, "Quote"),
        note: "a password-session Quote on the raw socket; the client's has an HMAC session with encrypt",
      });
    } finally {
      await withTpm((tpm) => flush(tpm, akHandle));
    }

    // ---- process floors
    progress("flow: process floors");
    const trueMs: number[] = [];
    for (let i = 0; i <= o.fast; i++) {
      const ms = await runProcess(["true"], env);
      if (i > 0) trueMs.push(ms);
    }

    const results: FlowStepResult[] = steps.map((step) => {
      const s = samplesByStep.get(step.name)!;
      const oursMs = summarize(s.op);
      const toolsMs = summarize(s.tools);
      return {
        step: step.name,
        runs: step.runs,
        oursCommands: s.commands ?? [],
        oursMs,
        tpmWireMs: summarize(s.wire),
        clientMs: summarize(s.op.map((ms, i) => ms - s.wire[i]!)),
        perCommand: [...s.perCommand].map(([command, v]) => ({ command, tpmWireMs: summarize(v) })),
        toolProcesses: step.tools.map((t) => ({ command: t.label, ms: summarize(s.toolProcesses.get(t.label)!) })),
        toolsMs,
        oursOverTools: oursMs.median / toolsMs.median,
        ...(step.note ? { note: step.note } : {}),
      };
    });
    return {
      uri: inst.uri,
      options: o,
      steps: results,
      rawReplay,
      spawnTrueMs: summarize(trueMs),
      flushcontextMs: summarize(floorFlush),
      totalSeconds: (performance.now() - started) / 1000,
    };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

// ---- report --------------------------------------------------------------------------------------

const ms = (x: number) => formatMs(x);

export function flowReport(r: FlowResult): string {
  const rows = r.steps.map((s) => [
    s.step,
    String(s.runs),
    ...medianP90(s.oursMs, ms),
    ms(s.tpmWireMs.median),
    ms(s.clientMs.median),
    ...medianP90(s.toolsMs, ms),
    formatRatio(s.oursOverTools),
  ]);
  const legend = r.steps.flatMap((s) => {
    const tools = s.toolProcesses.length > 1
      ? s.toolProcesses.map((p) => `${p.command} ${ms(p.ms.median)}`).join(" + ")
      : s.toolProcesses.map((p) => p.command).join("");
    return [
      `  ${s.step}`,
      `      ours:  ${commandList(s.oursCommands)}`,
      `      tools: ${tools}`,
      ...(s.note ? [`      note:  ${s.note}`] : []),
    ];
  });
  const perCommand = r.steps.flatMap((s) =>
    s.perCommand.map((c) => [s.step, c.command, ...medianP90(c.tpmWireMs, ms)])
  );
  const raw = r.rawReplay.map((x) => [
    x.command,
    String(x.runs),
    ...medianP90(x.rawMs, ms),
    x.clientSendMs ? ms(x.clientSendMs.median) : "-",
    x.clientSendMs ? ms(x.clientSendMs.median - x.rawMs.median) : "-",
  ]);
  return [
    `Keylime flow: each step through our client vs tpm2-tools processes, one swtpm over TCP (${r.uri})`,
    `  ms per step run, median and p90 of ${r.options.fast} runs per side (${r.options.slow} for the slow steps), ` +
    `the two sides alternating in blocks of ${r.options.block};`,
    `  "TPM+wire" = time inside transport.send (swtpm + loopback), "client" = ours - TPM+wire (our CPU);`,
    `  tools = spawn-to-exit of each tpm2-tools process, summed over the step's processes;`,
    `  tpm2_flushcontext -t runs before each tool run, untimed. ours/tools < 1 means ours is faster.`,
    "",
    table(
      ["step", "runs", "ours med", "ours p90", "TPM+wire", "client", "tools med", "tools p90", "ours/tools"],
      rows,
      1,
    ),
    "",
    ...legend,
    "",
    `  Process floors: spawning /bin/true ${ms(r.spawnTrueMs.median)} ms (p90 ${ms(r.spawnTrueMs.p90)}); ` +
    `tpm2_flushcontext -t ${ms(r.flushcontextMs.median)} ms (p90 ${ms(r.flushcontextMs.p90)}, ` +
    `n=${r.flushcontextMs.n}), i.e. process + TCTI start-up + 2 TPM commands.`,
    "",
    "TPM + wire per command inside each step (our transport.send, ms; a command sent twice in a run is summed)",
    "",
    table(["step", "command", "median", "p90"], perCommand, 2),
    "",
    "The TPM alone: command bytes replayed on a bare node:net socket (TPM + loopback), vs our transport.send",
    "",
    table(["command", "runs", "raw med", "raw p90", "send med", "send - raw"], raw, 1),
    ...r.rawReplay.map((x) => `  ${x.command}: ${x.note}`),
    "",
    `  flow bench took ${r.totalSeconds.toFixed(1)} s`,
  ].join("\n");
}

/**
 * Registrations per second of the reference registrar: `keylime-ts registrar` runs as its own process
 * (SQLite file, EK certificate chain checks against its trust store, its log to a file), and a Node process
 * of its own (bench/registrar_clients.ts) plays 1 or 8 agents at a time, each registering (POST) and
 * activating (PUT) over plain HTTP on a keep-alive connection, with a software RSA-2048 EK (the Keylime
 * default; keys from a pool of 16, each agent with its own certificate from an RSA test CA given with
 * --tpm-ca-dir) and AK. Both share the machine's cores, so each one's CPU time per registration is reported:
 * the registrar's read from /proc, the clients' (raw HTTP/1.1, recovering the credential: an RSA-2048 private
 * decrypt) from their own process. Each registrar process is warmed up first (WARMUP).
 *
 * On the 2-core development VM, shared with other work (CPU per registration swings by a third or more with
 * the others' load; compare builds only interleaved in the same period): the executable 480-580 reg/s with
 * 8 clients, its registrar 1.65-2.1 ms CPU per registration and the clients 1.35-1.45 ms (with the
 * registrar at 2.3-2.6 and the clients, then on node:http, at 2.3-2.7 ms, it made 270-400 reg/s measured
 * beside it); with 1 client about 220 reg/s, each registration waiting for the last. About a quarter of
 * the registrar's CPU is the kernel's loopback TCP in its response writes (one per response), a quarter
 * OpenSSL (RSA-OAEP, the EK certificate's parse and signature check, HMACs, AES), a sixth SQLite. From
 * source under Deno 400 reg/s at 8 (2.35 + 1.45 ms; Deno's RSA public-key operations take 0.6 ms of it: 0.3 ms
 * each for the OAEP encryption and the certificate's signature check, against 0.1 and 0.05 in Node).
 *
 * References measured in the same run, in this process: MakeCredential alone (makeKeylimeChallenge, the
 * registrar's crypto) and one SQLite write alone (a transaction with one upsert, WAL, synchronous as the
 * registrar's default, "normal"). The same run also measures the registrar with --db-sync full (one fsync
 * per change) at the highest concurrency.
 */
import { spawn } from "node:child_process";
import process from "node:process";
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { makeKeylimeChallenge } from "../src/protocol/credential.ts";
import { createRegistrarApp } from "../src/registrar/app.ts";
import { EkTrustStore } from "../src/registrar/ek_trust.ts";
import { openSqliteStore } from "../src/registrar/store.ts";
import { createCa, newKeyPair } from "../src/registrar/tls.ts";
import { softAgent, softEkKeys, type TestAgent } from "../tests/helpers/registrar_agents.ts";
import { objectName } from "../src/tpm/crypto.ts";
import { toBase64 } from "../src/util/encoding.ts";
import type { ClientsJob, ClientsResult } from "./registrar_clients.ts";
import { sampleAgentRecord } from "../tests/helpers/registrar_record.ts";
import { formatRatio, table } from "./common.ts";
import { processCpuMs } from "./load.ts";

export interface RegistrarBenchOptions {
  /** Registrations per concurrency level. */
  registrations: number;
  concurrency: number[];
  /** Runs of each reference. */
  referenceRuns: number;
  /** The command that runs keylime-ts (default: this Deno on src/main.ts); the binary bench gives the executable. */
  command?: string[];
}

export const REGISTRAR_DEFAULTS: RegistrarBenchOptions = {
  registrations: 1000,
  concurrency: [1, 8],
  referenceRuns: 2000,
};
export const REGISTRAR_QUICK: RegistrarBenchOptions = { registrations: 200, concurrency: [1, 8], referenceRuns: 300 };
/** The target, on 2 cores. */
export const REGISTRAR_TARGET_PER_SEC = 500;

export interface RegistrarRow {
  sync: "normal" | "full";
  concurrency: number;
  registrations: number;
  perSec: number;
  /** Registrations per CPU-second of the registrar process. */
  perRegistrarCpuSec: number;
  registrarCpuMsPerRegistration: number;
  /** CPU time of the clients' process (HTTP, recovering the credential) per registration. */
  clientsCpuMsPerRegistration: number;
}

export interface RegistrarResult {
  rows: RegistrarRow[];
  /** The registrar's app in this process (app.request, no sockets), the agents' work not timed, one at a time. */
  inProcessPerSec: number;
  /** The same per CPU-second of this process (less sensitive to other processes' load than wall time). */
  inProcessPerCpuSec: number;
  makeCredentialPerSec: number;
  sqliteWritePerSec: number;
}

/**
 * Registrations before a registrar process is timed, by the clients at the highest concurrency, so the figures
 * are its steady state: V8 keeps compiling the hot paths (Maglev, then TurboFan, on a worker thread counted
 * in the process's CPU) over the first few hundred registrations, a fifth of its CPU over the first 300.
 * WARMUP_AGENTS agents are made for it and register under fresh ids.
 */
const WARMUP = 300;
const WARMUP_AGENTS = 20;
/** EK key pairs the agents share (RSA key generation is slow); each agent still has its own certificate. */
const EK_KEYS = 16;
const MAIN = fileURLToPath(new URL("../src/main.ts", import.meta.url));
const CLIENTS = fileURLToPath(new URL("./registrar_clients.ts", import.meta.url));
/** The Node that runs the clients (bench/registrar_clients.ts). */
const NODE = process.env.KEYLIME_BENCH_NODE ?? "node";

/** bench/registrar_clients.ts as one ES module file for Node. */
async function bundleClients(dir: string): Promise<string> {
  const esbuild = await import("esbuild");
  const outfile = join(dir, "registrar_clients.mjs");
  try {
    await esbuild.build({
      entryPoints: [CLIENTS],
      outfile,
      bundle: true,
      platform: "node",
      format: "esm",
      define: { "import.meta.main": "true" },
      logLevel: "error",
    });
  } finally {
    await esbuild.stop();
  }
  return outfile;
}

/** Run one job in a Node process of its own; its figures, or an error naming the first failure. */
async function runClients(bundle: string, job: ClientsJob, dir: string): Promise<ClientsResult> {
  const jobFile = join(dir, "clients-job.json");
  writeFileSync(jobFile, JSON.stringify(job), { mode: 0o600 });
  const child = spawn(NODE, [bundle, jobFile], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout.on("data", (d) => (out += d));
  child.stderr.on("data", (d) => (out += d));
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once(
      "error",
      (e) => reject(new Error(`cannot run the bench's clients with ${NODE} (KEYLIME_BENCH_NODE): ${e.message}`)),
    );
    child.once("exit", resolve);
  });
  let result: ClientsResult;
  try {
    result = JSON.parse(out.trim().split("\n").at(-1)!);
  } catch {
    throw new Error(`the bench's clients exited with ${code}: ${out}`);
  }
  if (result.failure) throw new Error(`registrar bench: ${result.failure}`);
  return result;
}

/**
 * The registrar as its own process, its log (a line per registration and activation) in `logFile`: a file
 * as under a service manager, not a pipe this process would have to keep reading while it measures.
 */
function startRegistrarProcess(command: string[] | undefined, args: string[], logFile: string) {
  const [cmd, ...pre] = command ?? [process.execPath, "run", "--allow-all", MAIN];
  const fd = openSync(logFile, "w", 0o600);
  const child = spawn(cmd!, [...pre, "registrar", ...args], { stdio: ["ignore", fd, fd] });
  closeSync(fd);
  const log = () => readFileSync(logFile, "utf8");
  const ready = new Promise<number>((resolve, reject) => {
    const poll = setInterval(() => {
      const m = /listening on http:\/\/[^:]+:(\d+) \(agents\)/.exec(log());
      if (m) {
        clearInterval(poll);
        resolve(Number(m[1]));
      }
    }, 20);
    child.once("exit", (code) => {
      clearInterval(poll);
      reject(new Error(`registrar exited with ${code}: ${log().slice(-4096)}`));
    });
  });
  const stop = () =>
    new Promise<void>((r) => {
      child.once("exit", () => r());
      child.kill("SIGTERM");
    });
  return { pid: child.pid!, ready, stop };
}

function perSec(runs: number, fn: () => void): number {
  const t0 = performance.now();
  for (let i = 0; i < runs; i++) fn();
  return runs / ((performance.now() - t0) / 1000);
}

async function perSecAsync(runs: number, fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  for (let i = 0; i < runs; i++) await fn();
  return runs / ((performance.now() - t0) / 1000);
}

/** Register + activate through the app (no sockets), timing the registrar's part only. */
async function inProcess(
  agents: TestAgent[],
  caPem: string,
  dir: string,
): Promise<{ perSec: number; perCpuSec: number }> {
  const store = await openSqliteStore(join(dir, "in-process.sqlite"));
  const svc = { store, ekTrust: EkTrustStore.fromPem(caPem), allowUntrustedEk: false, log: () => {} };
  const app = createRegistrarApp(svc, { tls: false });
  const headers = { "Content-Type": "application/json" };
  let timed = 0;
  let cpu = 0;
  const cpuMs = () => {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1000;
  };
  for (const [i, agent] of agents.entries()) {
    const id = `in-process-${i}`;
    const body = JSON.stringify(agent.body());
    const t0 = performance.now();
    const c0 = cpuMs();
    const res = await app.request(`/v2.6/agents/${id}`, { method: "POST", headers, body });
    const blob = (await res.json()).results.blob as string;
    const t1 = performance.now();
    const c1 = cpuMs();
    const tag = await agent.answer(new Uint8Array(Buffer.from(blob, "base64")), id);
    const t2 = performance.now();
    const c2 = cpuMs();
    const act = await app.request(`/v2.6/agents/${id}`, {
      method: "PUT",
      headers,
      body: JSON.stringify({ auth_tag: tag }),
    });
    await act.arrayBuffer();
    timed += t1 - t0 + performance.now() - t2;
    cpu += c1 - c0 + cpuMs() - c2;
    if (act.status !== 200) throw new Error(`in-process registration ${id} failed: ${act.status}`);
  }
  store.close();
  return { perSec: agents.length / (timed / 1000), perCpuSec: agents.length / (cpu / 1000) };
}

export async function runRegistrarBench(
  o: RegistrarBenchOptions,
  progress: (msg: string) => void,
): Promise<RegistrarResult> {
  const dir = mkdtempSync(join(tmpdir(), "keylime-ts-bench-registrar-"));
  try {
    const caDir = join(dir, "tpm-ca");
    mkdirSync(caDir);
    const ca = await createCa("CN=keylime-ts bench TPM CA", 3650, await newKeyPair("rsa"));
    writeFileSync(join(caDir, "bench-ca.pem"), ca.cert.toString("pem"));
    const total = o.registrations * (o.concurrency.length + 1) + WARMUP_AGENTS;
    progress(`making ${total} software agents (EK certificate, AK)`);
    const ekKeys = Array.from({ length: EK_KEYS }, () => softEkKeys("rsa"));
    const ekPems = ekKeys.map((k) => k.privateKey.export({ format: "pem", type: "pkcs8" }).toString());
    const agents: TestAgent[] = [];
    for (let i = 0; i < total; i++) agents.push(await softAgent({ ek: "rsa", ekKeys: ekKeys[i % EK_KEYS]!, ca }));
    const clients = await bundleClients(dir);

    progress("references: MakeCredential alone, one SQLite write alone");
    const sample = agents[0]!;
    await perSecAsync(50, () => makeKeylimeChallenge(sample.ekTpm, sample.akTpm));
    const makeCredentialPerSec = await perSecAsync(
      o.referenceRuns,
      () => makeKeylimeChallenge(sample.ekTpm, sample.akTpm),
    );
    const store = await openSqliteStore(join(dir, "reference.sqlite"));
    let n = 0;
    const record = sampleAgentRecord("", { aik_tpm: sample.akTpm, ek_tpm: sample.ekTpm, key: "a".repeat(44) });
    const sqliteWritePerSec = perSec(
      o.referenceRuns,
      () => store.transaction((tx) => tx.put({ ...record, agent_id: `r${n++}` })),
    );
    store.close();

    progress(`${o.registrations} registrations in process (app.request), agent work not timed`);
    const own = await inProcess(agents.slice(0, o.registrations), ca.cert.toString("pem"), dir);

    const rows: RegistrarRow[] = [];
    let next = WARMUP_AGENTS;
    /** Agent `index` (made with EK key index % EK_KEYS) registering as `id`. */
    const jobAgent = (index: number, id: string) => ({
      id,
      body: JSON.stringify(agents[index]!.body()),
      ek: index % EK_KEYS,
      ekTpm: toBase64(agents[index]!.ekTpm),
      akName: toBase64(objectName(agents[index]!.akPublic)),
    });
    let warmups = 0;
    const warmupJob = (port: number): ClientsJob => ({
      port,
      concurrency: Math.max(...o.concurrency),
      ekKeys: ekPems,
      agents: Array.from({ length: WARMUP }, (_, i) => jobAgent(i % WARMUP_AGENTS, `warmup-${warmups++}`)),
    });
    for (const sync of ["normal", "full"] as const) {
      const levels = sync === "normal" ? o.concurrency : [Math.max(...o.concurrency)];
      const registrar = startRegistrarProcess(o.command, [
        ...["--port", "0", "--tls-port", "0", "--db", join(dir, `registrar-${sync}.sqlite`)],
        ...["--db-sync", sync, "--tls-dir", join(dir, "tls"), "--tpm-ca-dir", caDir],
      ], join(dir, `registrar-${sync}.log`));
      try {
        const port = await registrar.ready;
        await runClients(clients, warmupJob(port), dir);
        for (const concurrency of levels) {
          progress(`${o.registrations} registrations, ${concurrency} at a time, --db-sync ${sync}`);
          const first = next;
          const batch = agents.slice(first, first + o.registrations);
          next += o.registrations;
          const job: ClientsJob = {
            port,
            concurrency,
            ekKeys: ekPems,
            agents: batch.map((_, i) => jobAgent(first + i, `c${concurrency}-${first + i}`)),
          };
          const cpu0 = processCpuMs(registrar.pid);
          const r = await runClients(clients, job, dir);
          const cpuMs = processCpuMs(registrar.pid) - cpu0;
          rows.push({
            sync,
            concurrency,
            registrations: batch.length,
            perSec: batch.length / r.seconds,
            perRegistrarCpuSec: cpuMs > 0 ? batch.length / (cpuMs / 1000) : 0,
            registrarCpuMsPerRegistration: cpuMs / batch.length,
            clientsCpuMsPerRegistration: r.cpuMs / batch.length,
          });
        }
      } finally {
        await registrar.stop();
      }
    }
    return {
      rows,
      inProcessPerSec: own.perSec,
      inProcessPerCpuSec: own.perCpuSec,
      makeCredentialPerSec,
      sqliteWritePerSec,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export function registrarReport(r: RegistrarResult): string {
  const ratio = (x: number, ref: number) => formatRatio(ref / x);
  return [
    "Registrar: POST register + PUT activate over plain HTTP against `keylime-ts registrar` (its own process,",
    "  SQLite in WAL mode, EK chain checked); agents are software (RSA-2048 EK with certificate, AK) in a Node",
    "  process of their own (bench/registrar_clients.ts) on the same cores; each side's CPU per registration is",
    '  shown. "x MakeCred" and "x SQLite" = time of one registration / time of that reference alone (measured',
    "  in this process, same run).",
    '  "CPU-bound reg/s": what the cores give when both sides keep them busy, min(cores, clients) * 1000 /',
    "  (registrar + clients CPU ms); the wall figure falls below it when other work shares the cores.",
    "",
    table(
      [
        "db-sync",
        "clients",
        "registrations",
        "reg/s (wall)",
        "reg/s per registrar CPU-s",
        "registrar CPU ms/reg",
        "clients CPU ms/reg",
        "CPU-bound reg/s",
        "x MakeCred",
        "x SQLite",
      ],
      r.rows.map((row) => [
        row.sync,
        String(row.concurrency),
        String(row.registrations),
        row.perSec.toFixed(0),
        row.perRegistrarCpuSec.toFixed(0),
        row.registrarCpuMsPerRegistration.toFixed(2),
        row.clientsCpuMsPerRegistration.toFixed(2),
        cpuBound(row).toFixed(0),
        ratio(row.perSec, r.makeCredentialPerSec),
        ratio(row.perSec, r.sqliteWritePerSec),
      ]),
    ),
    "",
    `  in process (app.request, no sockets; agents' work not timed), 1 at a time: ` +
    `${r.inProcessPerSec.toFixed(0)} reg/s = ${ratio(r.inProcessPerSec, r.makeCredentialPerSec)} MakeCredential; ` +
    `${r.inProcessPerCpuSec.toFixed(0)} reg per CPU-second`,
    `  references: MakeCredential ${r.makeCredentialPerSec.toFixed(0)}/s, SQLite write ${
      r.sqliteWritePerSec.toFixed(0)
    }/s;` +
    ` target >= ${REGISTRAR_TARGET_PER_SEC} reg/s: over HTTP (best row) ` +
    verdict(Math.max(...r.rows.map((row) => row.perSec))) + `, in process ${verdict(r.inProcessPerSec)}`,
  ].join("\n");
}

function cpuBound(row: RegistrarRow): number {
  const ms = row.registrarCpuMsPerRegistration + row.clientsCpuMsPerRegistration;
  return ms > 0 ? (Math.min(cpus().length, row.concurrency) * 1000) / ms : 0;
}

/** The HTTP rows and the in-process figure are judged apart: only the former includes the sockets. */
function verdict(perSec: number): string {
  return perSec >= REGISTRAR_TARGET_PER_SEC ? "MET" : "NOT MET";
}

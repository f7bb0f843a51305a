/**
 * Test helper: start a private swtpm on free ports (or unix sockets) with a fresh, provisioned state.
 *
 * Provisioning (swtpm_setup with EK and platform certificates from swtpm_localca) runs once per
 * process into a template directory; each start copies that template. All configuration lives in
 * temp directories (XDG_CONFIG_HOME, HOME, TMPDIR point there), so the real home is never touched.
 * swtpm is killed by stop(), by an exit handler, and — should this process die without running
 * handlers — by a watchdog whose stdin is a pipe from this process.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import process from "node:process";

export interface StartSwtpmOptions {
  /** Data/control channels over loopback TCP (default) or unix sockets. */
  transport?: "tcp" | "unix";
  /** Start from a state with EKs and EK/platform certificates (default true); false: a blank TPM. */
  provision?: boolean;
  /** `--flags` value (default "not-need-init,startup-clear"); "" starts without --flags (needs CMD_INIT). */
  flags?: string;
  /** Add `,disconnect` to --server: swtpm closes the data connection after each response. */
  disconnect?: boolean;
}

export interface SwtpmInstance {
  /** TCTI string for our transports, e.g. `swtpm:host=127.0.0.1,port=P`. */
  uri: string;
  /** The same string, for TPM2TOOLS_TCTI / `-T`. */
  tctiForTools: string;
  /** TCP data port (tcp only). */
  port?: number;
  /** TCP control port, always port + 1 as tcti-swtpm expects (tcp only). */
  ctrlPort?: number;
  /** Data socket path (unix only); the control socket is `${socketPath}.ctrl`. */
  socketPath?: string;
  ctrlPath?: string;
  stateDir: string;
  pid: number;
  /** swtpm_localca's intermediate then root certificate (provisioned instances only). */
  caCertPem?: string;
  rootCertPem?: string;
  intermediateCertPem?: string;
  /** Kill swtpm and remove its temp directory. Idempotent. */
  stop(): Promise<void>;
}

/** Timings of this process's provisioning and starts, in ms. */
export const swtpmTimings: { provisionMs?: number; startMs: number[] } = { startMs: [] };

const DEFAULT_FLAGS = "not-need-init,startup-clear";

/** Absolute path of an executable on PATH, or undefined. */
export function findTool(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? "").split(path.delimiter)) {
    if (!dir) continue;
    const p = path.join(dir, name);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      if (fs.statSync(p).isFile()) return p;
    } catch {
      // not here
    }
  }
  return undefined;
}

/**
 * undefined when `name` is installed. When it is missing: throws under CI=true (a missing tool is
 * a failure there), otherwise returns the reason to pass as `{ skip: reason }`.
 */
export function requireTool(name: string): string | undefined {
  if (findTool(name)) return undefined;
  const pkg = name.startsWith("tpm2_") ? "tpm2-tools" : name.startsWith("swtpm") ? "swtpm and swtpm-tools" : name;
  const reason =
    `${name} is not installed (install the ${pkg} package, e.g. apt-get install swtpm swtpm-tools tpm2-tools)`;
  if (process.env.CI === "true") throw new Error(`CI=true and ${reason}`);
  return reason;
}

/** requireTool over several names: the first reason, if any. */
export function requireTools(...names: string[]): string | undefined {
  for (const n of names) {
    const r = requireTool(n);
    if (r) return r;
  }
  return undefined;
}

/** The reason to skip swtpm-based tests, or undefined when swtpm, swtpm_setup and swtpm_localca are present. */
export function swtpmSkipReason(): string | undefined {
  return requireTools("swtpm", "swtpm_setup", "swtpm_localca");
}

// ---------------------------------------------------------------------------------------------

interface Template {
  root: string;
  stateDir: string;
  rootCertPem: string;
  intermediateCertPem: string;
}

let template: Promise<Template> | undefined;
let templateWatchdog: ChildProcess | undefined;
const live = new Set<{ kill(): void }>();
const tempDirs = new Set<string>();
let exitHookInstalled = false;

function cleanUpNow(): void {
  for (const l of live) l.kill();
  live.clear();
  if (templateWatchdog?.pid !== undefined && templateWatchdog.exitCode === null) {
    try {
      process.kill(templateWatchdog.pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
  for (const d of tempDirs) fs.rmSync(d, { recursive: true, force: true });
  tempDirs.clear();
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on("exit", cleanUpNow);
  // `deno test` does not emit process "exit"; it does dispatch the web "unload" event.
  const g = globalThis as { addEventListener?: (type: string, fn: () => void) => void };
  if (typeof g.addEventListener === "function") g.addEventListener("unload", cleanUpNow);
}

/**
 * A shell that runs `action` once its stdin (a pipe from this process) reaches EOF, i.e. when this
 * process dies, however it dies. Killed (SIGKILL) by a normal stop. `args` are "$1", "$2", ...
 */
function spawnWatchdog(action: string, ...args: string[]): ChildProcess {
  const wd = spawn("sh", ["-c", `read _ || true; ${action}`, "sh", ...args], { stdio: ["pipe", "ignore", "ignore"] });
  unrefChild(wd);
  return wd;
}

/** Do not let a forgotten instance keep this process alive; the exit hooks still kill it. */
function unrefChild(child: ChildProcess): void {
  child.unref();
  for (const s of [child.stdin, child.stdout, child.stderr]) {
    (s as unknown as { unref?: () => void } | null)?.unref?.();
  }
}

function makeTempDir(prefix: string): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  tempDirs.add(d);
  return d;
}

function removeTempDir(d: string): void {
  fs.rmSync(d, { recursive: true, force: true });
  tempDirs.delete(d);
}

function run(file: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { env, timeout: 120_000, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${path.basename(file)} failed: ${err.message}\n${stdout}\n${stderr}`));
      else resolve({ stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

/** Provision once per process: swtpm_setup with per-run config files in a temp XDG_CONFIG_HOME. */
function provisionedTemplate(): Promise<Template> {
  template ??= (async () => {
    const t0 = performance.now();
    const root = makeTempDir("keylime-ts-swtpm-template-");
    templateWatchdog = spawnWatchdog('rm -rf "$1"', root);
    const xdg = path.join(root, "config");
    const ca = path.join(root, "localca");
    const stateDir = path.join(root, "state");
    const tmp = path.join(root, "tmp");
    for (const d of [xdg, ca, stateDir, tmp]) fs.mkdirSync(d, { recursive: true });
    const localca = findTool("swtpm_localca");
    if (!localca) throw new Error(requireTool("swtpm_localca") ?? "swtpm_localca is missing");
    const setupConf = path.join(xdg, "swtpm_setup.conf");
    const caConf = path.join(xdg, "swtpm-localca.conf");
    const caOptions = path.join(xdg, "swtpm-localca.options");
    fs.writeFileSync(
      setupConf,
      `create_certs_tool = ${localca}\ncreate_certs_tool_config = ${caConf}\n` +
        `create_certs_tool_options = ${caOptions}\nactive_pcr_banks = sha1,sha256\n`,
    );
    fs.writeFileSync(
      caConf,
      `statedir = ${ca}\nsigningkey = ${ca}/signkey.pem\nissuercert = ${ca}/issuercert.pem\n` +
        `certserial = ${ca}/certserial\n`,
    );
    fs.writeFileSync(
      caOptions,
      "--platform-manufacturer keylime-ts\n--platform-version 2.1\n--platform-model swtpm-test\n",
    );
    const env = { ...process.env, XDG_CONFIG_HOME: xdg, HOME: root, TMPDIR: tmp };
    await run(findTool("swtpm_setup") ?? "swtpm_setup", [
      "--tpm2",
      "--tpmstate",
      stateDir,
      "--config",
      setupConf,
      "--create-ek-cert",
      "--create-platform-cert",
      "--pcr-banks",
      "sha1,sha256",
      "--overwrite",
      "--display",
    ], env);
    const result: Template = {
      root,
      stateDir,
      intermediateCertPem: fs.readFileSync(path.join(ca, "issuercert.pem"), "utf8"),
      rootCertPem: fs.readFileSync(path.join(ca, "swtpm-localca-rootca-cert.pem"), "utf8"),
    };
    swtpmTimings.provisionMs = performance.now() - t0;
    return result;
  })();
  // A failed provisioning is not cached, so a later test can report its own error.
  template.catch(() => (template = undefined));
  return template;
}

/** A loopback port P with P + 1 also free at the time of asking (swtpm's control port is P + 1). */
async function freePortPair(): Promise<number> {
  const listen = (port: number) =>
    new Promise<net.Server | undefined>((resolve) => {
      const s = net.createServer();
      s.once("error", () => resolve(undefined));
      s.listen(port, "127.0.0.1", () => resolve(s));
    });
  const close = (s: net.Server) => new Promise<void>((r) => s.close(() => r()));
  for (let i = 0; i < 50; i++) {
    const a = await listen(0);
    if (!a) continue;
    const p = (a.address() as net.AddressInfo).port;
    const b = p < 65535 ? await listen(p + 1) : undefined;
    await close(a);
    if (b) {
      await close(b);
      return p;
    }
  }
  throw new Error("could not find two adjacent free loopback ports");
}

function canConnect(addr: { port: number } | { path: string }): Promise<boolean> {
  return new Promise((resolve) => {
    const s = "path" in addr
      ? net.createConnection({ path: addr.path })
      : net.createConnection({ host: "127.0.0.1", port: addr.port });
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => {
      s.destroy();
      resolve(false);
    });
  });
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Start swtpm; resolves once its data port accepts connections. */
export async function startSwtpm(options: StartSwtpmOptions = {}): Promise<SwtpmInstance> {
  const reason = swtpmSkipReason();
  if (reason) throw new Error(`cannot start swtpm: ${reason}`);
  installExitHook();
  const provision = options.provision ?? true;
  const tpl = provision ? await provisionedTemplate() : undefined;
  const t0 = performance.now();
  let lastError: unknown;
  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      const inst = await tryStart(options, tpl);
      swtpmTimings.startMs.push(performance.now() - t0);
      return inst;
    } catch (e) {
      lastError = e;
      // Port races with other processes end here; unix sockets do not race, so do not loop on them.
      if (!(e instanceof PortRace)) break;
    }
  }
  throw lastError;
}

class PortRace extends Error {}

async function tryStart(options: StartSwtpmOptions, tpl: Template | undefined): Promise<SwtpmInstance> {
  const dir = makeTempDir("keylime-ts-swtpm-");
  const stateDir = path.join(dir, "state");
  fs.mkdirSync(stateDir);
  if (tpl) {
    fs.cpSync(tpl.stateDir, stateDir, { recursive: true, filter: (src) => path.basename(src) !== ".lock" });
  }
  const pidFile = path.join(dir, "swtpm.pid");
  const unix = options.transport === "unix";
  const port = unix ? undefined : await freePortPair();
  const socketPath = unix ? path.join(dir, "swtpm.sock") : undefined;
  const ctrlPath = socketPath ? `${socketPath}.ctrl` : undefined;
  const disconnect = options.disconnect ? ",disconnect" : "";
  const server = unix
    ? `type=unixio,path=${socketPath}${disconnect}`
    : `type=tcp,port=${port},bindaddr=127.0.0.1${disconnect}`;
  const ctrl = unix ? `type=unixio,path=${ctrlPath}` : `type=tcp,port=${port! + 1},bindaddr=127.0.0.1`;
  const flags = options.flags ?? DEFAULT_FLAGS;
  const args = [
    "socket",
    "--tpm2",
    "--tpmstate",
    `dir=${stateDir}`,
    "--server",
    server,
    "--ctrl",
    ctrl,
    "--pid",
    `file=${pidFile}`,
    ...(flags ? ["--flags", flags] : []),
  ];

  const child = spawn(findTool("swtpm") ?? "swtpm", args, { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr?.on("data", (d: Uint8Array) => (stderr += new TextDecoder().decode(d)));
  let exited: { code: number | null; signal: string | null } | undefined;
  const exitPromise = new Promise<void>((resolve) => {
    // "close" comes after "exit" and after stderr has ended, so start-up errors are complete by then.
    child.once("close", (code, signal) => {
      exited = { code, signal };
      resolve();
    });
    child.once("error", (e) => {
      stderr += String(e);
      exited = { code: null, signal: null };
      resolve();
    });
  });
  const pid = child.pid;
  // Kills swtpm and removes its directory if this process dies without running its exit handlers.
  const watchdog = pid === undefined
    ? undefined
    : spawnWatchdog('kill -9 "$1" 2>/dev/null; rm -rf "$2"', String(pid), dir);
  unrefChild(child);
  const killer = {
    kill(): void {
      if (pid !== undefined && !exited) {
        try {
          process.kill(pid, "SIGKILL");
        } catch {
          // already gone
        }
      }
      if (watchdog?.pid !== undefined && watchdog.exitCode === null) {
        try {
          process.kill(watchdog.pid, "SIGKILL");
        } catch {
          // already gone
        }
      }
    },
  };
  live.add(killer);

  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopped ??= (async () => {
      // Unreferenced children do not keep the event loop alive, so waiting for their exit would not either.
      child.ref();
      watchdog?.ref();
      if (pid !== undefined && !exited) {
        try {
          process.kill(pid, "SIGTERM");
        } catch {
          // already gone
        }
        let timer: ReturnType<typeof setTimeout> | undefined;
        const done = await Promise.race([
          exitPromise.then(() => true),
          new Promise<boolean>((r) => (timer = setTimeout(() => r(false), 3000))),
        ]);
        clearTimeout(timer);
        if (!done) killer.kill();
        await exitPromise;
      }
      if (watchdog && watchdog.exitCode === null && watchdog.signalCode === null) {
        const wdExit = new Promise<void>((r) => watchdog.once("exit", () => r()));
        killer.kill();
        await wdExit;
      }
      watchdog?.stdin?.destroy();
      child.stderr?.destroy();
      live.delete(killer);
      removeTempDir(dir);
    })();
    return stopped;
  };

  try {
    await waitReady(child, () => exited, pidFile, port !== undefined ? { port } : { path: socketPath! });
  } catch (e) {
    await stop();
    const msg = `swtpm did not start: ${(e as Error).message}\nswtpm ${args.join(" ")}\n${stderr.trim()}`;
    // A port taken between our probe and swtpm's bind: retry with other ports.
    if (port !== undefined && /address already in use/i.test(stderr)) throw new PortRace(msg);
    throw new Error(msg);
  }

  const uri = unix ? `swtpm:path=${socketPath}` : `swtpm:host=127.0.0.1,port=${port}`;
  return {
    uri,
    tctiForTools: uri,
    ...(port !== undefined ? { port, ctrlPort: port + 1 } : {}),
    ...(socketPath ? { socketPath, ctrlPath } : {}),
    stateDir,
    pid: pid!,
    ...(tpl
      ? {
        caCertPem: tpl.intermediateCertPem + tpl.rootCertPem,
        rootCertPem: tpl.rootCertPem,
        intermediateCertPem: tpl.intermediateCertPem,
      }
      : {}),
    stop,
  };
}

async function waitReady(
  _child: ChildProcess,
  exited: () => unknown,
  pidFile: string,
  addr: { port: number } | { path: string },
): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (exited()) throw new Error("swtpm exited during start-up");
    // The pid file is written once swtpm has set up its sockets; then the data port must accept.
    if (fs.existsSync(pidFile) && (!("path" in addr) || fs.existsSync(addr.path)) && await canConnect(addr)) {
      return;
    }
    await sleep(10);
  }
  throw new Error("swtpm's data port did not accept connections within 10 s");
}

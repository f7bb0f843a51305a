/**
 * Test and bench helper: the single executables of scripts/build_binary.mjs (built once per input hash; an
 * unchanged tree reuses dist/), run as a user would: `env -i PATH=/usr/bin:/bin` (no Deno, Node or
 * node_modules within reach), from a temp directory that is also HOME.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT } from "./agent_process.ts";
import { findTool } from "./swtpm.ts";

export type BinaryTarget = "x64" | "armv7";
const OUT: Record<BinaryTarget, string> = { x64: "dist/keylime-ts", armv7: "dist/keylime-ts-armv7" };
/** Runs armv7 executables here (qemu user-mode emulation with the armhf libraries). */
export const QEMU_ARM = join(ROOT, "scripts", "qemu-arm");

const builds = new Map<BinaryTarget, Promise<string>>();

/** Build (or find up to date) the executable; its absolute path. */
export function buildBinary(target: BinaryTarget): Promise<string> {
  let build = builds.get(target);
  if (!build) {
    build = new Promise((ok, fail) =>
      execFile("node", [join(ROOT, "scripts", "build_binary.mjs"), target], { cwd: ROOT }, (err, _out, stderr) => {
        if (err) fail(new Error(`build_binary.mjs ${target} failed: ${err.message}\n${stderr}`));
        else ok(join(ROOT, OUT[target]));
      })
    );
    builds.set(target, build);
  }
  return build;
}

/** Can armv7 executables run here? undefined if so, else the skip reason (under CI=true: throws). */
export function qemuArmSkipReason(): string | undefined {
  if (findTool("qemu-arm-static") && existsSync("/usr/arm-linux-gnueabihf/lib/libatomic.so.1")) return undefined;
  const reason = "qemu-arm-static or the armhf libraries are missing (make setup as root installs them)";
  if (process.env.CI === "true") throw new Error(`CI=true and ${reason}`);
  return reason;
}

/** The command line that runs `exe` with a clean environment: PATH=/usr/bin:/bin, HOME=home, plus `env`. */
export function cleanCommand(
  exe: string,
  args: string[],
  o: { home: string; env?: Record<string, string>; armv7?: boolean },
): [string, string[]] {
  const vars = Object.entries({ PATH: "/usr/bin:/bin", HOME: o.home, ...o.env }).map(([k, v]) => `${k}=${v}`);
  return ["/usr/bin/env", ["-i", ...vars, ...(o.armv7 ? [QEMU_ARM] : []), exe, ...args]];
}

export interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Run to completion with a clean environment, cwd = home. */
export function runClean(exe: string, args: string[], o: Parameters<typeof cleanCommand>[2]): Promise<Ran> {
  const [cmd, argv] = cleanCommand(exe, args, o);
  return new Promise((ok) => {
    const child = spawn(cmd, argv, { cwd: o.home, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "", stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.once("close", (code) => ok({ code, stdout, stderr }));
  });
}

export interface Started {
  child: ChildProcess;
  output(): string;
  /** The exit code or signal name. */
  exit: Promise<number | string | null>;
  /** SIGTERM, then the exit. */
  stop(): Promise<number | string | null>;
}

/** Start with a clean environment; resolves with the first match of `ready` in stdout+stderr. */
export function startClean(
  exe: string,
  args: string[],
  o: Parameters<typeof cleanCommand>[2] & { ready: RegExp },
): Promise<{ started: Started; match: RegExpExecArray }> {
  const [cmd, argv] = cleanCommand(exe, args, o);
  const child = spawn(cmd, argv, { cwd: o.home, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  const exit = new Promise<number | string | null>((ok) => child.once("close", (code, sig) => ok(code ?? sig)));
  const started: Started = {
    child,
    output: () => out,
    exit,
    stop: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      return exit;
    },
  };
  return new Promise((ok, fail) => {
    const onData = (d: Buffer) => {
      out += d;
      const match = o.ready.exec(out);
      if (match) ok({ started, match });
    };
    child.stdout!.on("data", onData);
    child.stderr!.on("data", onData);
    void exit.then((code) => fail(new Error(`${exe} ${args.join(" ")} exited with ${code}:\n${out}`)));
  });
}

/** The registrar's line once it listens: its two ports and the size of its EK trust store. */
export const REGISTRAR_READY =
  /listening on http:\/\/[^:]+:(\d+) \(agents\) and https:\/\/[^:]+:(\d+).*EK trust store: (\d+) certificates/;

/** An [agent] configuration for a registrar on the loopback. */
export function writeAgentConf(dir: string, o: { uuid: string; registrarPort: number; port: number }): string {
  mkdirSync(join(dir, "cv_ca"), { recursive: true });
  const file = join(dir, "agent.conf");
  writeFileSync(
    file,
    [
      "[agent]",
      `uuid = "${o.uuid}"`,
      `ip = "127.0.0.1"`,
      `port = ${o.port}`,
      `contact_port = ${o.port}`,
      `registrar_ip = "127.0.0.1"`,
      `registrar_port = ${o.registrarPort}`,
      `keylime_dir = "${dir}"`,
      `measuredboot_ml_path = "${join(dir, "no-mb")}"`,
      `ima_ml_path = "${join(dir, "no-ima")}"`,
      "",
    ].join("\n"),
  );
  return file;
}

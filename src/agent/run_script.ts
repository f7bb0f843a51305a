/**
 * Run a payload script or a revocation action: its own process group, a timeout after which the whole group
 * is killed, stdin closed, stdout and stderr captured up to a bound for the log.
 */
import { spawn } from "node:child_process";

export interface RunOptions {
  cwd: string;
  timeoutMs: number;
  /** Bytes kept of each of stdout and stderr; the rest is counted, not kept. */
  maxOutputBytes?: number;
  env?: Record<string, string>;
}

export interface RunResult {
  /** Exit code; null when killed by a signal. */
  code: number | null;
  signal: string | null;
  timedOut: boolean;
  stdout: string;
  stderr: string;
  /** Output dropped past maxOutputBytes. */
  truncated: boolean;
}

const DEFAULT_MAX_OUTPUT = 64 * 1024;

export function runScript(command: string, args: readonly string[], o: RunOptions): Promise<RunResult> {
  const max = o.maxOutputBytes ?? DEFAULT_MAX_OUTPUT;
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: o.cwd,
      stdio: ["ignore", "pipe", "pipe"],
      detached: true,
      ...(o.env ? { env: o.env } : {}),
    });
    let truncated = false;
    const sink = () => {
      const parts: Buffer[] = [];
      let kept = 0;
      const add = (chunk: Buffer) => {
        const room = max - kept;
        if (chunk.length > room) truncated = true;
        if (room > 0) {
          const part = chunk.subarray(0, room);
          parts.push(part);
          kept += part.length;
        }
      };
      return { parts, add };
    };
    const out = sink();
    const err = sink();
    child.stdout.on("data", out.add);
    child.stderr.on("data", err.add);
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup(child.pid);
    }, o.timeoutMs);
    child.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      // Anything the script left running in its group goes with it.
      killGroup(child.pid);
      resolve({
        code,
        signal,
        timedOut,
        stdout: Buffer.concat(out.parts).toString("utf8"),
        stderr: Buffer.concat(err.parts).toString("utf8"),
        truncated,
      });
    });
  });
}

function killGroup(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, "SIGKILL");
  } catch {
    // Already gone.
  }
}

/** Each non-empty output line, for the log. */
export function outputLines(r: RunResult): string[] {
  return `${r.stdout}\n${r.stderr}`.split("\n").map((l) => l.trimEnd()).filter((l) => l !== "");
}

/** How a run ended, for messages: "exit code 0", "killed by SIGTERM", "timed out after 5000 ms". */
export function describeEnd(r: RunResult, timeoutMs: number): string {
  if (r.timedOut) return `timed out after ${timeoutMs} ms`;
  return r.code === null ? `killed by ${r.signal}` : `exit code ${r.code}`;
}

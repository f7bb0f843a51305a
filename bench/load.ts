/**
 * How much CPU other processes used while a measurement ran. On a VM, latency of a socket round trip
 * depends on whether the CPUs were idle (each wake-up from halt costs tens of µs) or kept awake by
 * other work, so a latency figure is only comparable with the machine's load beside it.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import process from "node:process";

/** Kernel clock ticks per second for /proc/<pid>/stat; 100 on every mainstream Linux build. */
const CLK_TCK = 100;

function machineBusyMs(): number {
  let busy = 0;
  for (const c of os.cpus()) busy += c.times.user + c.times.nice + c.times.sys + c.times.irq;
  return busy;
}

function ownCpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

/** utime + stime of a process in ms, or 0 when /proc is not there (not Linux) or it has exited. */
export function processCpuMs(pid: number): number {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return ((Number(f[11]) + Number(f[12])) * 1000) / CLK_TCK;
  } catch {
    return 0;
  }
}

/** Above this much CPU used by other processes (% of one core) during a measurement, its figures are flagged. */
export const BUSY_PERCENT = 10;

export interface LoadProbe {
  /** CPU used by processes other than this one and `pids`, in percent of one core, since the start. */
  stop(): number;
}

export function startLoadProbe(pids: readonly number[] = []): LoadProbe {
  const t0 = performance.now();
  const m0 = machineBusyMs();
  const o0 = ownCpuMs();
  const p0 = pids.map(processCpuMs);
  return {
    stop(): number {
      const wall = performance.now() - t0;
      const machine = machineBusyMs() - m0;
      const own = ownCpuMs() - o0;
      const theirs = pids.reduce((a, pid, i) => a + processCpuMs(pid) - p0[i]!, 0);
      return wall > 0 ? Math.max(0, Math.round(((machine - own - theirs) / wall) * 100)) : 0;
    },
  };
}

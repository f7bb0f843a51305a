/**
 * The agent's log on stderr in pretty_env_logger's layout (` INFO  keylime_agent > message`), as rust-keylime
 * writes it, so operators and upstream's tests find the same lines. The level comes from KEYLIME_TS_LOG, else
 * RUST_LOG, in RUST_LOG's syntax: `debug`, or `keylime_agent=debug,info` (the keylime_agent entry wins).
 */
import type { ServiceLog } from "../agent/service.ts";

export const LEVELS = ["off", "error", "warn", "info", "debug", "trace"] as const;
export type Level = (typeof LEVELS)[number];

const TARGET = "keylime_agent";

/** The level a RUST_LOG-style directive list gives keylime_agent; undefined when it says nothing usable. */
export function parseLogLevel(spec: string | undefined): Level | undefined {
  if (!spec) return undefined;
  let global: Level | undefined;
  let ours: Level | undefined;
  for (const part of spec.split(",").map((s) => s.trim().toLowerCase()).filter(Boolean)) {
    const [target, level] = part.includes("=") ? part.split("=", 2) as [string, string] : [undefined, part];
    const l = (level === "warning" ? "warn" : level) as Level;
    if (!LEVELS.includes(l)) continue;
    if (target === undefined) global = l;
    else if (target === TARGET || target.startsWith(`${TARGET}::`)) ours = l;
  }
  return ours ?? global;
}

export function logLevelFromEnv(env = process.env): Level {
  return parseLogLevel(env.KEYLIME_TS_LOG) ?? parseLogLevel(env.RUST_LOG) ?? "info";
}

export function stderrServiceLog(
  level: Level = logLevelFromEnv(),
  write: (s: string) => unknown = (s) => process.stderr.write(s),
): ServiceLog {
  const rank = LEVELS.indexOf(level);
  const line = (l: Level, tag: string) => (m: string) => {
    if (LEVELS.indexOf(l) <= rank) write(` ${tag} ${TARGET} > ${m}\n`);
  };
  const log: ServiceLog = {
    error: line("error", "ERROR"),
    warn: line("warn", "WARN "),
    info: line("info", "INFO "),
    debug: line("debug", "DEBUG"),
  };
  return log;
}

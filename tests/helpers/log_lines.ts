/** Test helper: a LogSink that keeps its lines ("INFO ...", "WARN ...", "ERROR ..."). */
import type { LogSink } from "../../src/agent/run_script.ts";

export function recordingLog(): LogSink & { lines: string[] } {
  const lines: string[] = [];
  return {
    lines,
    info: (m) => lines.push(`INFO ${m}`),
    warn: (m) => lines.push(`WARN ${m}`),
    error: (m) => lines.push(`ERROR ${m}`),
  };
}

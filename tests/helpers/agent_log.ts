/** Test helper: an AgentLog that keeps its lines ("INFO ...", "WARN ...", "ERROR ..."). */
import type { AgentLog } from "../../src/agent/messages.ts";

export function recordingLog(): AgentLog & { lines: string[] } {
  const lines: string[] = [];
  return {
    lines,
    info: (m) => lines.push(`INFO ${m}`),
    warn: (m) => lines.push(`WARN ${m}`),
    error: (m) => lines.push(`ERROR ${m}`),
  };
}

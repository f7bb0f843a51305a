/**
 * Milliseconds on a monotonic clock, from process.hrtime: the `performance` global would load Node's
 * perf_hooks and a dozen modules with it into a process that only wants the time (the agent, idle).
 */
export function monotonicMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

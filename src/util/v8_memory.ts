/**
 * V8 settings for a long-running process that waits far more than it computes (the agent: each request waits
 * on the TPM). Figures: docs/binary.md.
 */
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

/**
 * The optimizing compilers (Maglev, TurboFan), left out: the agent's hot path is generic code (structure
 * codecs, routing, promises, native crypto) that they speed up little (0.3 ms of CPU per identity quote,
 * about 15%), while their own code, paged in once they run, and what they compile stay resident (2 MiB
 * idle, 15 MiB after 1,000 quotes). Interpreter and baseline code remain; what the agent does in bulk runs
 * natively (inflate in node:zlib, AES, RSA, hashing). Set first thing: module initialization alone starts
 * the compilers.
 */
export const OPTIMIZING_TIERS_OFF = ["--no-maglev", "--no-turbofan"] as const;

export function leaveOutOptimizingTiers(): void {
  for (const flag of OPTIMIZING_TIERS_OFF) setFlagsFromString(flag);
}

/**
 * One full collection once start-up is over. An idle process allocates nothing, so V8 would never collect
 * what start-up left (configuration, the TPM work, registration); after this collection its
 * memory reducer also runs and hands the freed pages back within about ten seconds (3 MiB here). The
 * collector is reached through a context made while --expose-gc is on; the flag is off again at once.
 * A runtime that cannot do this (Deno) is left as it is.
 */
export function collectStartupGarbage(): void {
  try {
    setFlagsFromString("--expose-gc");
    const gc = runInNewContext("typeof gc === 'function' ? gc : undefined") as (() => void) | undefined;
    setFlagsFromString("--no-expose-gc");
    gc?.();
  } catch {
    // no collector to reach: nothing is lost but the memory
  }
}

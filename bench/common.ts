/**
 * What the benchmarks share besides the TPM steps (those are in flow_steps.ts): taking turns in
 * rotating blocks, the bytes of a session-less command and the response code of a reply, and the
 * plain-text tables and number formats of the reports.
 */
import type { AnyCommand, CommandArgs } from "../src/tpm/command.ts";
import { TPM_ALG } from "../src/tpm/constants.ts";
import { encodeCommandFrame, encodeParameters } from "../src/tpm/frame.ts";
import { pcrSelection } from "../src/tpm/pcrs.ts";
import type { LatencySummary } from "./stats.ts";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";

// ---- taking turns --------------------------------------------------------------------------------

/**
 * `total` runs for each participant, in blocks of at most `size`: in every block each participant
 * runs once, in an order rotated by one from block to block, so drift in the machine's load hits all
 * alike. `run` gets the participant, the runs in this block and the runs done before it; `afterBlock`
 * the block's index, once all participants ran it.
 */
export async function rotateBlocks<P>(
  participants: readonly P[],
  total: number,
  size: number,
  run: (p: P, n: number, done: number) => Promise<void>,
  afterBlock?: (index: number) => void,
): Promise<void> {
  for (let done = 0, k = 0; done < total; k++) {
    const n = Math.min(size, total - done);
    for (let j = 0; j < participants.length; j++) await run(participants[(k + j) % participants.length]!, n, done);
    afterBlock?.(k);
    done += n;
  }
}

/** Appends `value` to the list under `key`, starting the list when there is none. */
export function pushSample<K>(lists: Map<K, number[]>, key: K, value: number): void {
  let list = lists.get(key);
  if (!list) lists.set(key, list = []);
  list.push(value);
}

// ---- TPM wire bytes ------------------------------------------------------------------------------

/** The bytes of a command with no handles in its handle area and no sessions (GetRandom, PCR_Read, FlushContext). */
export function plainCommand<C extends AnyCommand>(def: C, args: CommandArgs<C>): Uint8Array {
  return encodeCommandFrame({
    code: def.code,
    handles: [],
    auths: [],
    parameters: encodeParameters(def, args as Record<string, unknown>),
  });
}

/** The response code of a response's header, or -1 when the header is not all there. */
export function responseCode(b: Uint8Array): number {
  return b.length >= 10 ? ((b[6]! << 24) | (b[7]! << 16) | (b[8]! << 8) | b[9]!) >>> 0 : -1;
}

/** PCR_Read's selection of sha256 PCRs 0 to 7. */
export const PCRS_0_7 = [pcrSelection(TPM_ALG.SHA256, [0, 1, 2, 3, 4, 5, 6, 7])];

// ---- reports -------------------------------------------------------------------------------------

/** A plain-text table: columns before `rightFrom` left-aligned, the rest right-aligned. */
export function table(header: string[], rows: string[][], rightFrom = 1): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i < rightFrom ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ").trimEnd();
  return [line(header), widths.map((w) => "-".repeat(w)).join("  "), ...rows.map(line)].join("\n");
}

/** Milliseconds to three significant digits or so; under 1 ms with `subMsDigits` decimals. */
export function formatMs(x: number, subMsDigits = 2): string {
  return x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x >= 1 ? x.toFixed(2) : x.toFixed(subMsDigits);
}

/** A ratio as "0.42x". */
export const formatRatio = (r: number) => `${r.toFixed(2)}x`;

/** A summary's median and p90 as two table cells. */
export const medianP90 = (s: LatencySummary, format: (x: number) => string): [string, string] => [
  format(s.median),
  format(s.p90),
];

/** Consecutive repeats folded: ["PCR_Read", "PCR_Read"] -> "PCR_Read x2". */
export function commandList(names: readonly string[]): string {
  const out: string[] = [];
  for (let i = 0; i < names.length;) {
    let j = i;
    while (j < names.length && names[j] === names[i]) j++;
    out.push(j - i > 1 ? `${names[i]} x${j - i}` : names[i]!);
    i = j;
  }
  return out.join(", ") || "(no TPM command)";
}

/**
 * Drop `file`'s pages from the page cache before a process maps it, so its RSS counts the pages it touches: a
 * file still cached (an executable just built) is mapped many pages around each one touched (the kernel's
 * fault-around), about 16 MiB more for the agent. `dd iflag=nocache` needs no privilege.
 */
export function dropFromPageCache(file: string): void {
  execFileSync("dd", [`if=${file}`, "iflag=nocache", "count=0", "status=none"]);
}

/** VmRSS of a process, MiB. */
export function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  if (!m) throw new Error(`no VmRSS for process ${pid}`);
  return Number(m[1]) / 1024;
}

/**
 * How long after it listens an idle agent has settled: it collects start-up's garbage once (v8_memory.ts),
 * and V8's memory reducer hands the freed pages back in the next ten seconds or so.
 */
export const SETTLE_MS = 20_000;

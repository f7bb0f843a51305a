/**
 * What attest remembers of an agent between runs, one file per agent under the state directory: the last
 * accepted quote's clock (a replayed or rolled-back quote then fails), the NK it saw bound (a swapped NK
 * fails), and where the IMA replay stands (later runs ask only for new entries). Written atomically, 0600.
 */
import { mkdir, readFile } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";
import type { PreviousClock } from "../protocol/quote.ts";
import type { NkPins } from "./nk_binding.ts";
import { writeFileAtomic } from "../util/atomic_file.ts";

export interface ImaState {
  readonly hashAlg: string;
  readonly entries: number;
  /** Hex PCR 10 after `entries` entries. */
  readonly pcr10: string;
  /** The TPM resetCount the position belongs to: after a reboot the list starts again. */
  readonly resetCount: number;
}

export interface AttestState {
  readonly time?: string;
  readonly clock?: PreviousClock;
  /** SHA-256 (hex) of the NK's SubjectPublicKeyInfo, per binding (pcr16: the payload key; certify: the mTLS key). */
  readonly nk?: NkPins;
  readonly ima?: ImaState;
}

export class StateFileError extends Error {
  readonly code = "ERR_STATE_FILE";
  constructor(file: string, reason: string) {
    super(`attest state ${file}: ${reason} (delete the file to start over)`);
    this.name = "StateFileError";
  }
}

/** $XDG_STATE_HOME/keylime-ts/attest, else ~/.local/state/keylime-ts/attest. */
export function defaultStateDir(env: Record<string, string | undefined> = process.env): string {
  const base = env.XDG_STATE_HOME || join(homedir(), ".local", "state");
  return join(base, "keylime-ts", "attest");
}

export function stateFile(dir: string, uuid: string): string {
  // The uuid was checked as an agent id (no path characters) before it gets here.
  return join(dir, `${uuid}.json`);
}

const isInt = (v: unknown, max = 0xffffffff): v is number =>
  Number.isInteger(v) && (v as number) >= 0 && (v as number) <= max;

function parseState(file: string, text: string): AttestState {
  let j: Record<string, unknown>;
  try {
    j = JSON.parse(text);
  } catch {
    throw new StateFileError(file, "not JSON");
  }
  if (typeof j !== "object" || j === null) throw new StateFileError(file, "not a JSON object");
  const out: { -readonly [K in keyof AttestState]: AttestState[K] } = {};
  if (typeof j.time === "string") out.time = j.time;
  if (j.clock !== undefined) {
    const c = j.clock as Record<string, unknown>;
    if (
      typeof c?.clock !== "string" || !/^[0-9]{1,20}$/.test(c.clock) || !isInt(c.resetCount) || !isInt(c.restartCount)
    ) {
      throw new StateFileError(file, "clock: expected {clock: decimal string, resetCount, restartCount}");
    }
    out.clock = { clock: BigInt(c.clock), resetCount: c.resetCount, restartCount: c.restartCount };
  }
  if (j.nk !== undefined) {
    const pins = j.nk as Record<string, unknown>;
    const ok = typeof pins === "object" && pins !== null &&
      Object.entries(pins).every(([k, v]) => (k === "pcr16" || k === "certify") && /^[0-9a-f]{64}$/.test(String(v)));
    if (!ok) throw new StateFileError(file, `nk: expected {"pcr16"?: 64 hex digits, "certify"?: 64 hex digits}`);
    out.nk = pins as NkPins;
  }
  if (j.ima !== undefined) {
    const m = j.ima as Record<string, unknown>;
    if (
      typeof m?.hashAlg !== "string" || !isInt(m.entries, Number.MAX_SAFE_INTEGER) ||
      typeof m.pcr10 !== "string" || !/^([0-9a-f]{2}){20,64}$/.test(m.pcr10) || !isInt(m.resetCount)
    ) {
      throw new StateFileError(file, "ima: expected {hashAlg, entries, pcr10 (hex), resetCount}");
    }
    out.ima = { hashAlg: m.hashAlg, entries: m.entries, pcr10: m.pcr10, resetCount: m.resetCount };
  }
  return out;
}

export async function loadState(dir: string, uuid: string): Promise<AttestState> {
  const file = stateFile(dir, uuid);
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return {};
    throw new StateFileError(file, (e as Error).message);
  }
  return parseState(file, text);
}

export async function saveState(dir: string, uuid: string, state: AttestState): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const json = {
    ...state,
    ...(state.clock ? { clock: { ...state.clock, clock: state.clock.clock.toString() } } : {}),
  };
  await writeFileAtomic(stateFile(dir, uuid), JSON.stringify(json, null, 2) + "\n");
}

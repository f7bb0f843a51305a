/**
 * The policy `keylime-ts attest --policy` checks quoted PCRs against: per bank, PCR index → the values
 * allowed (like upstream's tpm_policy, which allows a list per PCR, but per bank), and whether the UEFI
 * event log must replay to PCRs 0-7.
 *
 * ```json
 * { "pcrs": { "sha256": { "0": ["<64 hex>"], "7": ["<64 hex>", "<64 hex>"] } }, "uefi_log": true }
 * ```
 */
import { DIGEST_SIZE } from "../tpm/constants.ts";
import { algByName, algName } from "../tpm/crypto.ts";
import { fromHex, toHex } from "../util/encoding.ts";

/** PCRs the UEFI event log covers (TCG PC Client PFP §3.3.4: 0-7 are the firmware's). */
export const UEFI_PCRS: readonly number[] = [0, 1, 2, 3, 4, 5, 6, 7];
const MAX_VALUES_PER_PCR = 256;
const PCR_COUNT = 24;

export class PolicyError extends Error {
  readonly code = "ERR_POLICY";
  constructor(readonly path: string, reason: string) {
    super(path ? `policy ${path}: ${reason}` : `policy: ${reason}`);
    this.name = "PolicyError";
  }
}

export interface AttestPolicy {
  /** Allowed values by bank (TPM_ALG id), then PCR index. */
  readonly pcrs: ReadonlyMap<number, ReadonlyMap<number, readonly Uint8Array[]>>;
  /** Replay the UEFI event log against PCRs 0-7. */
  readonly uefiLog: boolean;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

function bankOf(name: string): number {
  const alg = algByName(name);
  if (alg === undefined || !/^sha(1|256|384|512)$/i.test(name)) {
    throw new PolicyError(`pcrs.${name}`, "not a PCR bank (sha1, sha256, sha384, sha512)");
  }
  return alg;
}

function valueOf(v: unknown, path: string, size: number): Uint8Array {
  const hex = typeof v === "string" ? v.replace(/^0x/i, "").toLowerCase() : undefined;
  if (hex === undefined || !new RegExp(`^[0-9a-f]{${2 * size}}$`).test(hex)) {
    throw new PolicyError(path, `not ${2 * size} hex digits`);
  }
  return fromHex(hex);
}

/** Parse a policy file's text; throws PolicyError naming the path at fault (`pcrs.sha256."7"[1]`). */
export function parseAttestPolicy(text: string): AttestPolicy {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new PolicyError("", `not JSON: ${(e as Error).message}`);
  }
  if (!isObject(json)) throw new PolicyError("", "not a JSON object");
  for (const k of Object.keys(json)) {
    if (k !== "pcrs" && k !== "uefi_log") throw new PolicyError(k, `unknown key (expected "pcrs", "uefi_log")`);
  }
  const uefiLog = json.uefi_log ?? false;
  if (typeof uefiLog !== "boolean") throw new PolicyError("uefi_log", "not true or false");
  const pcrsJson = json.pcrs ?? {};
  if (!isObject(pcrsJson)) throw new PolicyError("pcrs", "not an object of banks");
  const pcrs = new Map<number, Map<number, Uint8Array[]>>();
  for (const [bankName, bankJson] of Object.entries(pcrsJson)) {
    const alg = bankOf(bankName);
    if (pcrs.has(alg)) throw new PolicyError(`pcrs.${bankName}`, "the bank is named twice");
    if (!isObject(bankJson)) throw new PolicyError(`pcrs.${bankName}`, "not an object of PCR index → values");
    const bank = new Map<number, Uint8Array[]>();
    for (const [index, values] of Object.entries(bankJson)) {
      const path = `pcrs.${bankName}."${index}"`;
      if (!/^(0|[1-9][0-9]?)$/.test(index) || Number(index) >= PCR_COUNT) {
        throw new PolicyError(path, "not a PCR index 0-23");
      }
      if (!Array.isArray(values) || values.length === 0 || values.length > MAX_VALUES_PER_PCR) {
        throw new PolicyError(path, `not a list of 1 to ${MAX_VALUES_PER_PCR} allowed values`);
      }
      bank.set(Number(index), values.map((v, i) => valueOf(v, `${path}[${i}]`, DIGEST_SIZE[alg]!)));
    }
    pcrs.set(alg, bank);
  }
  return { pcrs, uefiLog };
}

/** The policy's JSON text (what `attest policy` prints), PCRs in ascending order. */
export function attestPolicyJson(policy: AttestPolicy): string {
  const pcrs: Record<string, Record<string, string[]>> = {};
  for (const [alg, bank] of policy.pcrs) {
    pcrs[algName(alg)] = Object.fromEntries(
      [...bank].sort((a, b) => a[0] - b[0]).map(([pcr, values]) => [String(pcr), values.map(toHex)]),
    );
  }
  return JSON.stringify({ pcrs, ...(policy.uefiLog ? { uefi_log: true } : {}) }, null, 2) + "\n";
}

/** A policy that allows exactly the given values. */
export function policyFromPcrs(
  hashAlg: number,
  values: ReadonlyMap<number, Uint8Array>,
  uefiLog = false,
): AttestPolicy {
  return { pcrs: new Map([[hashAlg, new Map([...values].map(([p, v]) => [p, [v]]))]]), uefiLog };
}

/** The PCRs a quote must include for this policy (any bank: checkPcrPolicy refuses a bank the agent does not quote). */
export function policyPcrs(policy: AttestPolicy): number[] {
  const set = new Set([...policy.pcrs.values()].flatMap((bank) => [...bank.keys()]));
  if (policy.uefiLog) UEFI_PCRS.forEach((p) => set.add(p));
  return [...set].sort((a, b) => a - b);
}

export interface PolicyMismatch {
  readonly pcr: number;
  /** The quoted value; undefined when the quote lacks the PCR. */
  readonly quoted: Uint8Array | undefined;
  readonly allowed: readonly Uint8Array[];
}

/**
 * The PCRs whose quoted value the policy does not allow. The agent quotes one bank (its hash_alg): a
 * policy for another bank cannot be checked and is refused with PolicyError.
 */
export function checkPcrPolicy(
  policy: AttestPolicy,
  hashAlg: number,
  quoted: ReadonlyMap<number, Uint8Array>,
): PolicyMismatch[] {
  for (const alg of policy.pcrs.keys()) {
    if (alg !== hashAlg && (policy.pcrs.get(alg)?.size ?? 0) > 0) {
      throw new PolicyError(
        `pcrs.${algName(alg)}`,
        `the agent quotes the ${algName(hashAlg)} bank; values for ${algName(alg)} cannot be checked`,
      );
    }
  }
  const out: PolicyMismatch[] = [];
  for (const [pcr, allowed] of policy.pcrs.get(hashAlg) ?? []) {
    const got = quoted.get(pcr);
    const hex = got && toHex(got);
    if (!got || !allowed.some((v) => toHex(v) === hex)) out.push({ pcr, quoted: got, allowed });
  }
  return out.sort((a, b) => a.pcr - b.pcr);
}

/**
 * The TCG crypto-agile firmware event log (`binary_bios_measurements`, the agent's `mb_measurement_list`)
 * and its replay against PCRs (keylime.md §5 verifier check 6). TCG PC Client Platform Firmware Profile
 * §10.2: a first TCG_PCClientPCREvent in the SHA-1 format holding the "Spec ID Event03" (the banks and
 * their digest sizes), then TCG_PCR_EVENT2 records, all little-endian. EV_NO_ACTION events are not
 * extended; the StartupLocality event sets PCR 0's initial value to the locality (§10.4.5.3).
 * Upstream: keylime/keylime keylime/tpm/tpm_main.py (parse_mb_bootlog), tpm2-tools tpm2_eventlog.
 */
import { DIGEST_SIZE } from "../tpm/constants.ts";
import { algName, hash } from "../tpm/crypto.ts";

export const EV_NO_ACTION = 0x00000003;
const SPEC_ID_SIGNATURE = "Spec ID Event03\0";
const STARTUP_LOCALITY = "StartupLocality\0";
const MAX_EVENTS = 100_000;
/** Largest event data accepted (a full db/dbx variable is under this). */
const MAX_EVENT_BYTES = 1024 * 1024;
const PCR_COUNT = 24;

export class EventLogError extends Error {
  readonly code = "ERR_EVENT_LOG";
  constructor(message: string, readonly offset: number) {
    super(`UEFI event log at byte ${offset}: ${message}`);
    this.name = "EventLogError";
  }
}

export interface LogEvent {
  /** Position in the log, the header event being 0. */
  readonly number: number;
  readonly pcr: number;
  readonly type: number;
  /** Digests by hash algorithm. */
  readonly digests: ReadonlyMap<number, Uint8Array>;
  readonly data: Uint8Array;
}

export interface EventLog {
  /** Banks the log declares, with their digest sizes. */
  readonly banks: ReadonlyMap<number, number>;
  /** Every TCG_PCR_EVENT2 (the header event is not included). */
  readonly events: readonly LogEvent[];
}

class Reader {
  at = 0;
  private readonly view: DataView;
  constructor(readonly bytes: Uint8Array) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  need(n: number, what: string): void {
    if (this.at + n > this.bytes.length) {
      throw new EventLogError(`${what}: needs ${n} bytes, ${this.bytes.length - this.at} left`, this.at);
    }
  }
  u8(what: string): number {
    this.need(1, what);
    return this.view.getUint8(this.at++);
  }
  u16(what: string): number {
    this.need(2, what);
    const v = this.view.getUint16(this.at, true);
    this.at += 2;
    return v;
  }
  u32(what: string): number {
    this.need(4, what);
    const v = this.view.getUint32(this.at, true);
    this.at += 4;
    return v;
  }
  take(n: number, what: string): Uint8Array {
    this.need(n, what);
    const out = this.bytes.subarray(this.at, this.at + n);
    this.at += n;
    return out;
  }
  get done(): boolean {
    return this.at >= this.bytes.length;
  }
}

const ascii = (b: Uint8Array) => String.fromCharCode(...b);

function pcrIndex(r: Reader): number {
  const at = r.at;
  const pcr = r.u32("pcrIndex");
  if (pcr >= PCR_COUNT) throw new EventLogError(`pcrIndex ${pcr} is not a PCR 0-23`, at);
  return pcr;
}

function eventData(r: Reader): Uint8Array {
  const at = r.at;
  const size = r.u32("eventSize");
  if (size > MAX_EVENT_BYTES) throw new EventLogError(`eventSize ${size} is larger than ${MAX_EVENT_BYTES}`, at);
  return r.take(size, "event");
}

/** The header event's Spec ID Event03: the banks and their digest sizes. */
function specIdBanks(data: Uint8Array, offset: number): Map<number, number> {
  const r = new Reader(data);
  if (ascii(r.take(16, "Spec ID signature")) !== SPEC_ID_SIGNATURE) {
    throw new EventLogError(`the first event is not a "Spec ID Event03" (not a crypto-agile log)`, offset);
  }
  r.take(4 + 4, "platformClass, specVersion, errata, uintnSize");
  const count = r.u32("numberOfAlgorithms");
  if (count === 0 || count > 16) throw new EventLogError(`numberOfAlgorithms ${count} is not 1-16`, offset);
  const banks = new Map<number, number>();
  for (let i = 0; i < count; i++) {
    const alg = r.u16("algorithmId");
    const size = r.u16("digestSize");
    if (size === 0 || size > 64) throw new EventLogError(`${algName(alg)}'s digestSize ${size} is not 1-64`, offset);
    banks.set(alg, size);
  }
  return banks;
}

/** Parse a whole log strictly; throws EventLogError naming the byte offset and the field. */
export function parseEventLog(bytes: Uint8Array): EventLog {
  const r = new Reader(bytes);
  // TCG_PCClientPCREvent: pcrIndex, eventType, SHA-1 digest, eventSize, event.
  pcrIndex(r);
  const headerAt = r.at;
  if (r.u32("eventType") !== EV_NO_ACTION) throw new EventLogError("the first event is not EV_NO_ACTION", headerAt);
  r.take(20, "digest");
  const dataAt = r.at;
  const banks = specIdBanks(eventData(r), dataAt);

  const events: LogEvent[] = [];
  while (!r.done) {
    if (events.length >= MAX_EVENTS) throw new EventLogError(`more than ${MAX_EVENTS} events`, r.at);
    const pcr = pcrIndex(r);
    const type = r.u32("eventType");
    const countAt = r.at;
    const count = r.u32("digests.count");
    if (count > banks.size) throw new EventLogError(`${count} digests, the log declares ${banks.size} banks`, countAt);
    const digests = new Map<number, Uint8Array>();
    for (let i = 0; i < count; i++) {
      const algAt = r.at;
      const alg = r.u16("hashAlg");
      const size = banks.get(alg);
      if (size === undefined) {
        throw new EventLogError(`digest of ${algName(alg)}, a bank the log does not declare`, algAt);
      }
      digests.set(alg, r.take(size, `${algName(alg)} digest`));
    }
    events.push({ number: events.length + 1, pcr, type, digests, data: eventData(r) });
  }
  return { banks, events };
}

/** PCR 0's value before the first extend: the locality of a StartupLocality event, else zeros. */
function initialValue(log: EventLog, pcr: number, size: number): Uint8Array {
  const v = new Uint8Array(size);
  if (pcr !== 0) return v;
  const ev = log.events.find((e) =>
    e.pcr === 0 && e.type === EV_NO_ACTION && e.data.length === 17 && ascii(e.data.subarray(0, 16)) === STARTUP_LOCALITY
  );
  if (ev) v[size - 1] = ev.data[16]!;
  return v;
}

/** The PCR values the log gives in the `hashAlg` bank, for every PCR it extends. */
export function replayEventLog(log: EventLog, hashAlg: number): Map<number, Uint8Array> {
  const size = DIGEST_SIZE[hashAlg];
  if (!log.banks.has(hashAlg) || size === undefined) {
    const have = [...log.banks.keys()].map(algName).join(", ");
    throw new EventLogError(`the log has no ${algName(hashAlg)} bank (it has ${have})`, 0);
  }
  const pcrs = new Map<number, Uint8Array>();
  for (const e of log.events) {
    if (e.type === EV_NO_ACTION) continue;
    const d = e.digests.get(hashAlg);
    if (!d) throw new EventLogError(`event ${e.number} has no ${algName(hashAlg)} digest`, 0);
    const value = pcrs.get(e.pcr) ?? initialValue(log, e.pcr, size);
    pcrs.set(e.pcr, hash(hashAlg, value, d));
  }
  return pcrs;
}

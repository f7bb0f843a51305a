/**
 * The IMA ASCII measurement list (`ascii_runtime_measurements`, what the agent sends as
 * `ima_measurement_list`) and its replay against PCR 10 (keylime.md §5 verifier check 6).
 *
 * A line is `PCR template-hash template-name field...`. The template hash printed is SHA-1; every other
 * bank is extended with that bank's hash of the same template data, so the data is rebuilt from the
 * fields as the kernel hashes it (security/integrity/ima/ima_crypto.c ima_calc_field_array_hash): each
 * field length-prefixed (u32 little-endian) except in the legacy `ima` template, whose name is
 * zero-padded to 256 bytes. A template hash of zeros is a measurement violation, extended as all 0xff.
 * Upstream: keylime/keylime keylime/ima/ast.py, keylime/ima/ima.py.
 */
import { DIGEST_SIZE, TPM_ALG } from "../tpm/constants.ts";
import { algName, concat, hash } from "../tpm/crypto.ts";
import { fromHex, toHex } from "../util/encoding.ts";

/** keylime/config.py IMA_PCR. */
export const IMA_PCR = 10;
/** IMA_EVENT_NAME_LEN_MAX + 1: the `ima` template's padded name. */
const LEGACY_NAME_BYTES = 256;
const MAX_LINE_CHARS = 64 * 1024;

export type ImaFault =
  /** A line that is not an IMA entry of a supported template. */
  | "parse"
  /** The printed SHA-1 template hash is not the hash of the entry's fields. */
  | "template-hash"
  /** No prefix of the list replays to the quoted PCR 10. */
  | "pcr-mismatch";

export class ImaReplayError extends Error {
  readonly code = "ERR_IMA_REPLAY";
  constructor(readonly reason: ImaFault, message: string, readonly line?: number) {
    super(line === undefined ? message : `IMA list line ${line}: ${message}`);
    this.name = "ImaReplayError";
  }
}

export interface ImaEntry {
  /** Entry number in the whole list (0 is the first entry the agent ever measured). */
  readonly index: number;
  readonly pcr: number;
  /** The printed SHA-1 template hash. */
  readonly templateHash: Uint8Array;
  readonly template: string;
  /** The template data as the kernel hashed it. */
  readonly data: Uint8Array;
  /** The file path or event name. */
  readonly name: string;
}

const le32 = (n: number) => new Uint8Array([n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff]);
const utf8 = (s: string) => new TextEncoder().encode(s);
const prefixed = (b: Uint8Array) => concat(le32(b.length), b);

/** `sha256:<hex>` as the d-ng field holds it: `sha256:\0` then the digest bytes. */
function digestNg(field: string, index: number): Uint8Array {
  const m = /^([a-z0-9_-]+):([0-9a-f]+)$/.exec(field);
  if (!m || m[2]!.length % 2 !== 0) {
    throw new ImaReplayError("parse", `"${field.slice(0, 80)}" is not <algorithm>:<hex digest>`, index);
  }
  return concat(utf8(`${m[1]}:\0`), fromHex(m[2]!));
}

function hexField(field: string, what: string, index: number): Uint8Array {
  if (!/^([0-9a-f]{2})*$/.test(field)) throw new ImaReplayError("parse", `${what} is not hex`, index);
  return fromHex(field);
}

/** The template data of one entry, from the fields after the template name. */
function templateData(template: string, rest: string, index: number): { data: Uint8Array; name: string } {
  const sp = rest.indexOf(" ");
  const first = sp < 0 ? rest : rest.slice(0, sp);
  const tail = sp < 0 ? "" : rest.slice(sp + 1);
  switch (template) {
    case "ima": {
      if (!/^[0-9a-f]{40}$/.test(first)) {
        throw new ImaReplayError("parse", "the ima template's digest is not SHA-1", index);
      }
      const name = utf8(tail);
      if (name.length >= LEGACY_NAME_BYTES) throw new ImaReplayError("parse", "the name is too long", index);
      const padded = new Uint8Array(LEGACY_NAME_BYTES);
      padded.set(name);
      return { data: concat(fromHex(first), padded), name: tail };
    }
    case "ima-ng":
      return { data: concat(prefixed(digestNg(first, index)), prefixed(utf8(tail + "\0"))), name: tail };
    case "ima-sig": {
      // The signature, when present, is the last space-separated hex field.
      const m = / ([0-9a-f]+)$/.exec(tail);
      const name = m ? tail.slice(0, m.index) : tail;
      const sig = m ? hexField(m[1]!, "the signature", index) : new Uint8Array();
      return { data: concat(prefixed(digestNg(first, index)), prefixed(utf8(name + "\0")), prefixed(sig)), name };
    }
    case "ima-buf": {
      const m = / ([0-9a-f]*)$/.exec(tail);
      if (!m) throw new ImaReplayError("parse", "the ima-buf entry has no buffer field", index);
      const name = tail.slice(0, m.index);
      const buf = hexField(m[1]!, "the buffer", index);
      return { data: concat(prefixed(digestNg(first, index)), prefixed(utf8(name + "\0")), prefixed(buf)), name };
    }
    default:
      throw new ImaReplayError("parse", `template "${template.slice(0, 40)}" is not supported`, index);
  }
}

/** Parse one line of the list; `index` is its entry number. */
export function parseImaLine(line: string, index: number): ImaEntry {
  if (line.length > MAX_LINE_CHARS) {
    throw new ImaReplayError("parse", `longer than ${MAX_LINE_CHARS} characters`, index);
  }
  const m = /^([0-9]{1,2}) ([0-9a-f]{40}) ([a-z0-9_-]+) (.+)$/.exec(line);
  if (!m) {
    throw new ImaReplayError("parse", `not "PCR template-hash template fields...": "${line.slice(0, 80)}"`, index);
  }
  const { data, name } = templateData(m[3]!, m[4]!, index);
  return { index, pcr: Number(m[1]), templateHash: fromHex(m[2]!), template: m[3]!, data, name };
}

/** The lines of a list text (a trailing newline ends the last line, it does not start an empty one). */
export function imaLines(text: string): string[] {
  if (text === "") return [];
  const lines = text.split("\n");
  if (lines[lines.length - 1] === "") lines.pop();
  return lines;
}

/** What an entry extends PCR 10's `hashAlg` bank with. Checks the printed SHA-1 template hash. */
export function imaExtendDigest(e: ImaEntry, hashAlg: number): Uint8Array {
  const size = DIGEST_SIZE[hashAlg]!;
  if (e.templateHash.every((b) => b === 0)) return new Uint8Array(size).fill(0xff);
  if (toHex(hash(TPM_ALG.SHA1, e.data)) !== toHex(e.templateHash)) {
    throw new ImaReplayError("template-hash", `the template hash is not the SHA-1 of the entry (${e.name})`, e.index);
  }
  return hashAlg === TPM_ALG.SHA1 ? e.templateHash : hash(hashAlg, e.data);
}

/** Where a replay stands: entries replayed so far and the PCR 10 value they give. */
export interface ImaPosition {
  readonly entries: number;
  readonly pcr10: Uint8Array;
}

export function imaStart(hashAlg: number): ImaPosition {
  return { entries: 0, pcr10: new Uint8Array(DIGEST_SIZE[hashAlg]!) };
}

export interface ImaReplay {
  /** The position where the replay matched the quoted PCR 10: the next request starts there. */
  readonly position: ImaPosition;
  /** Entries replayed in this call up to the match. */
  readonly replayed: number;
  /** Entries after the match (measured after the quote); they are replayed again next time. */
  readonly pending: number;
  /** The paths or event names of the entries replayed in this call. */
  readonly names: string[];
}

/**
 * Replay `text` (the list from entry `from.entries` on) over `from` and find where it gives the quoted PCR
 * 10. The list may have grown after the quote, so the last prefix that matches counts (as upstream's
 * verifier does). Throws ImaReplayError naming the line at fault or the mismatch.
 */
export function replayIma(text: string, from: ImaPosition, hashAlg: number, quotedPcr10: Uint8Array): ImaReplay {
  let value = from.pcr10;
  let found: { position: ImaPosition; replayed: number } | undefined = sameBytes(value, quotedPcr10)
    ? { position: from, replayed: 0 }
    : undefined;
  const lines = imaLines(text);
  const names: string[] = [];
  for (const [i, line] of lines.entries()) {
    const e = parseImaLine(line, from.entries + i);
    names.push(e.name);
    if (e.pcr !== IMA_PCR) continue;
    value = hash(hashAlg, value, imaExtendDigest(e, hashAlg));
    if (sameBytes(value, quotedPcr10)) {
      found = { position: { entries: from.entries + i + 1, pcr10: value }, replayed: i + 1 };
    }
  }
  if (!found) {
    throw new ImaReplayError(
      "pcr-mismatch",
      `replaying ${lines.length} entries from entry ${from.entries} gives ${algName(hashAlg)} PCR ${IMA_PCR} ` +
        `${toHex(value)}, the quote has ${toHex(quotedPcr10)}`,
    );
  }
  return {
    position: found.position,
    replayed: found.replayed,
    pending: lines.length - found.replayed,
    names: names.slice(0, found.replayed),
  };
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** An ima-ng line for a file digest, as the kernel prints it (tests and the demo build lists with it). */
export function imaNgLine(path: string, fileDigest: Uint8Array, digestAlg = "sha256"): string {
  const data = concat(prefixed(concat(utf8(`${digestAlg}:\0`), fileDigest)), prefixed(utf8(path + "\0")));
  return `${IMA_PCR} ${toHex(hash(TPM_ALG.SHA1, data))} ima-ng ${digestAlg}:${toHex(fileDigest)} ${path}`;
}

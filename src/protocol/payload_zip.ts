/**
 * The payload zip (keylime.md §8 step 6) read without trusting it: the central directory is checked entry by
 * entry before anything is inflated, and the plan of what to write is all-or-nothing.
 * Refused: paths with `..`, absolute or drive paths, backslashes, NUL; symlinks, devices, fifos and sockets
 * (the Unix type in the external attributes); encrypted entries, ZIP64, multi-disk archives, methods other
 * than stored and deflate; duplicate paths; more entries or more bytes than the limits, by the declared sizes
 * first and again while inflating (an entry that inflates past its declared size is refused as it happens).
 * Upstream extracts with libarchive (rust-keylime keylime-agent/src/payloads.rs, compress_tools); the zip
 * layout is PKWARE's APPNOTE.TXT (4.3.7 local header, 4.3.12 central directory, 4.3.16 end record).
 */
import { inflateRawSync } from "node:zlib";

export interface ZipLimits {
  /** Entries in the central directory, directories included. */
  maxEntries: number;
  /** Sum of the uncompressed sizes. */
  maxTotalBytes: number;
}

/** Generous for a payload that must fit the `secure` tmpfs (1 MiB by default). */
export const DEFAULT_ZIP_LIMITS: ZipLimits = { maxEntries: 4096, maxTotalBytes: 64 * 1024 * 1024 };

export type ZipEntryPlan =
  | { kind: "dir"; path: string }
  /** `executable`: the zip gave the owner execute permission (Unix mode). */
  | { kind: "file"; path: string; data: Uint8Array; executable: boolean };

/** A zip that is malformed or not safe to extract; names the entry at fault when there is one. */
export class ZipError extends Error {
  readonly code = "ERR_PAYLOAD_ZIP";
  constructor(message: string, readonly entry?: string) {
    super(entry === undefined ? `payload zip: ${message}` : `payload zip entry ${JSON.stringify(entry)}: ${message}`);
    this.name = "ZipError";
  }
}

const SIG_LOCAL = 0x04034b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_END = 0x06054b50;
const END_SIZE = 22;
export const HOST_UNIX = 3;
const HOST_MACOS = 19;
const S_IFMT = 0o170000;
export const S_IFREG = 0o100000;
const S_IFDIR = 0o040000;
const S_IFLNK = 0o120000;
const DOS_DIRECTORY = 0x10;

/** Does this look like a zip (local header, or the end record of an empty archive)? */
export function isZip(bytes: Uint8Array): boolean {
  if (bytes.length < 4) return false;
  const sig = view(bytes).getUint32(0, true);
  return sig === SIG_LOCAL || (sig === SIG_END && bytes.length >= END_SIZE);
}

const view = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, b.byteLength);
const utf8 = new TextDecoder("utf-8", { fatal: true });

interface CentralEntry {
  name: string;
  method: number;
  crc: number;
  compressedSize: number;
  size: number;
  localOffset: number;
  dir: boolean;
  executable: boolean;
}

function findEnd(bytes: Uint8Array, dv: DataView): number {
  const lowest = Math.max(0, bytes.length - END_SIZE - 0xffff);
  for (let i = bytes.length - END_SIZE; i >= lowest; i--) {
    if (dv.getUint32(i, true) === SIG_END && i + END_SIZE + dv.getUint16(i + 20, true) === bytes.length) return i;
  }
  throw new ZipError("no end of central directory record (not a zip, or truncated)");
}

/** A relative path of plain segments joined by "/", or a ZipError. */
export function safeEntryPath(name: string): string {
  const refuse = (why: string) => new ZipError(why, name);
  if (name.includes("\0")) throw refuse("has a NUL character");
  if (name.includes("\\")) throw refuse("has a backslash (not a portable path)");
  if (name.startsWith("/")) throw refuse("is an absolute path");
  if (/^[A-Za-z]:/.test(name)) throw refuse("starts with a drive letter");
  const segments = name.split("/").filter((s) => s !== "" && s !== ".");
  if (segments.includes("..")) throw refuse("has a '..' segment (would leave the extraction directory)");
  if (segments.length === 0) throw refuse("names no file");
  return segments.join("/");
}

function readCentral(bytes: Uint8Array, limits: ZipLimits): CentralEntry[] {
  const dv = view(bytes);
  const end = findEnd(bytes, dv);
  const disk = dv.getUint16(end + 4, true);
  const cdDisk = dv.getUint16(end + 6, true);
  const onDisk = dv.getUint16(end + 8, true);
  const count = dv.getUint16(end + 10, true);
  const cdSize = dv.getUint32(end + 12, true);
  const cdOffset = dv.getUint32(end + 16, true);
  if (disk !== 0 || cdDisk !== 0 || onDisk !== count) throw new ZipError("multi-disk archives are not supported");
  if (count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) {
    throw new ZipError("ZIP64 archives are not supported");
  }
  if (count > limits.maxEntries) throw new ZipError(`${count} entries is more than the limit of ${limits.maxEntries}`);
  if (cdOffset + cdSize > end) throw new ZipError("the central directory lies outside the archive");

  const entries: CentralEntry[] = [];
  let p = cdOffset;
  for (let i = 0; i < count; i++) {
    if (p + 46 > end || dv.getUint32(p, true) !== SIG_CENTRAL) {
      throw new ZipError(`central directory entry ${i} is malformed`);
    }
    const madeBy = dv.getUint16(p + 4, true);
    const flags = dv.getUint16(p + 8, true);
    const method = dv.getUint16(p + 10, true);
    const crc = dv.getUint32(p + 16, true);
    const compressedSize = dv.getUint32(p + 20, true);
    const size = dv.getUint32(p + 24, true);
    const nameLen = dv.getUint16(p + 28, true);
    const extraLen = dv.getUint16(p + 30, true);
    const commentLen = dv.getUint16(p + 32, true);
    const external = dv.getUint32(p + 38, true);
    const localOffset = dv.getUint32(p + 42, true);
    const next = p + 46 + nameLen + extraLen + commentLen;
    if (next > end) throw new ZipError(`central directory entry ${i} runs past the directory`);
    let name: string;
    try {
      name = utf8.decode(bytes.subarray(p + 46, p + 46 + nameLen));
    } catch {
      throw new ZipError(`central directory entry ${i} has a name that is not UTF-8`);
    }
    p = next;

    if (flags & 1) throw new ZipError("is encrypted", name);
    if (size === 0xffffffff || compressedSize === 0xffffffff || localOffset === 0xffffffff) {
      throw new ZipError("uses ZIP64 sizes", name);
    }
    const host = madeBy >>> 8;
    const mode = host === HOST_UNIX || host === HOST_MACOS ? external >>> 16 : 0;
    const type = mode & S_IFMT;
    if (type === S_IFLNK) throw new ZipError("is a symbolic link", name);
    if (type !== 0 && type !== S_IFREG && type !== S_IFDIR) {
      throw new ZipError("is a device, fifo or socket", name);
    }
    const dir = name.endsWith("/") || type === S_IFDIR || (host === 0 && (external & DOS_DIRECTORY) !== 0);
    if (method !== 0 && method !== 8) {
      throw new ZipError(`uses compression method ${method} (only stored and deflate)`, name);
    }
    entries.push({ name, method, crc, compressedSize, size, localOffset, dir, executable: (mode & 0o100) !== 0 });
  }
  return entries;
}

function entryData(bytes: Uint8Array, e: CentralEntry): Uint8Array {
  const dv = view(bytes);
  const p = e.localOffset;
  if (p + 30 > bytes.length || dv.getUint32(p, true) !== SIG_LOCAL) {
    throw new ZipError("local header is missing or malformed", e.name);
  }
  const start = p + 30 + dv.getUint16(p + 26, true) + dv.getUint16(p + 28, true);
  if (start + e.compressedSize > bytes.length) throw new ZipError("data runs past the archive", e.name);
  return bytes.subarray(start, start + e.compressedSize);
}

/**
 * Inflate with the runtime's zlib, which stops with ERR_BUFFER_TOO_LARGE as soon as the output would pass
 * `declared` bytes: a bomb costs at most its declared size, and the limits have already bounded that.
 */
function inflateBounded(data: Uint8Array, declared: number, name: string): Uint8Array {
  let out: Uint8Array;
  try {
    out = inflateRawSync(data, { maxOutputLength: Math.max(declared, 1) });
  } catch (e) {
    if ((e as { code?: unknown }).code === "ERR_BUFFER_TOO_LARGE") {
      throw new ZipError(`inflates to more than its declared ${declared} bytes`, name);
    }
    throw new ZipError(`does not inflate (${e instanceof Error ? e.message : String(e)})`, name);
  }
  if (out.length !== declared) {
    throw new ZipError(`inflates to ${out.length} bytes, not its declared ${declared}`, name);
  }
  return out;
}

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[i] = c >>> 0;
  }
  return t;
})();

/** CRC-32 (ISO-HDLC), as zip stores it. */
export function crc32(data: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of data) c = CRC_TABLE[(c ^ b) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/**
 * What extracting `bytes` would write, relative to the extraction directory, parents before children; or a
 * ZipError and nothing. Checks every entry (paths, types, sizes, CRC) before returning.
 */
export function planZipExtraction(bytes: Uint8Array, limits: ZipLimits = DEFAULT_ZIP_LIMITS): ZipEntryPlan[] {
  const entries = readCentral(bytes, limits);
  let declared = 0;
  for (const e of entries) declared += e.size;
  if (declared > limits.maxTotalBytes) {
    throw new ZipError(`declares ${declared} uncompressed bytes, more than the limit of ${limits.maxTotalBytes}`);
  }

  const kinds = new Map<string, "dir" | "file">();
  const plan: ZipEntryPlan[] = [];
  const addDir = (path: string) => {
    const kind = kinds.get(path);
    if (kind === "file") throw new ZipError("is both a file and a directory", path);
    if (kind === undefined) {
      kinds.set(path, "dir");
      plan.push({ kind: "dir", path });
    }
  };
  let written = 0;
  for (const e of entries) {
    const path = safeEntryPath(e.name);
    const parts = path.split("/");
    for (let i = 1; i < parts.length; i++) addDir(parts.slice(0, i).join("/"));
    if (e.dir) {
      addDir(path);
      continue;
    }
    if (kinds.has(path)) throw new ZipError("appears twice (or is also a directory)", e.name);
    kinds.set(path, "file");
    const raw = entryData(bytes, e);
    let data: Uint8Array;
    if (e.method === 0) {
      if (raw.length !== e.size) throw new ZipError("stored size differs from its declared size", e.name);
      data = raw.slice();
    } else {
      data = inflateBounded(raw, e.size, e.name);
    }
    written += data.length;
    if (written > limits.maxTotalBytes) throw new ZipError(`more than ${limits.maxTotalBytes} bytes in total`);
    if (crc32(data) !== e.crc) throw new ZipError("CRC-32 mismatch (corrupt archive)", e.name);
    plan.push({ kind: "file", path, data, executable: e.executable });
  }
  return plan;
}

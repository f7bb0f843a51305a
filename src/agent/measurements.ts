/**
 * The event logs a quote carries (keylime.md §4): the IMA ASCII measurement list from entry n, and the UEFI
 * event log as base64.
 *
 * The IMA list only grows (until reboot) and reaches hundreds of MB, and securityfs reports its size as 0,
 * so it is read to EOF, never trusted by stat. An index of the byte offset of every CHECKPOINT-th entry is
 * kept and extended by scanning only the bytes added since the last request; a request for entry n reads
 * from the nearest checkpoint to n and then only the tail. Entry numbering is rust-keylime's
 * (keylime/src/ima/measurement_list.rs): entries are complete lines; asking for the entry one past the last
 * gives an empty list at that entry (nothing new yet); asking beyond that gives the whole list from entry 0.
 */
import { Buffer } from "node:buffer";
import { type FileHandle, open } from "node:fs/promises";
import { SerialWork } from "./serial.ts";
import { toBase64 } from "../util/encoding.ts";

/** Entries between two index checkpoints: the index costs 8 bytes per CHECKPOINT entries. */
export const CHECKPOINT = 1024;
const CHUNK = 256 * 1024;
/**
 * Chunks of a streamed answer: each becomes short-lived strings; under V8's large-object size (~128 KB) they
 * die young, where 256 KB chunks left ~55 MB more RSS while a 100 MB list went out (tests/agent/ima_stream_test.ts).
 */
const STREAM_CHUNK = 64 * 1024;
const NEWLINE = 0x0a;

/** An event log that cannot be read, or is larger than allowed; names the path. */
export class MeasurementsError extends Error {
  readonly code = "ERR_MEASUREMENTS";
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "MeasurementsError";
  }
}

/** Where a request's part of the list lies: bytes [start, end) of the file hold entries entry.. onwards. */
export interface ImaSlice {
  /** The entry the text starts at (0 when the request was past the end). */
  entry: number;
  /** Complete entries in the list when it was read. */
  numEntries: number;
  start: number;
  end: number;
}

export interface ImaRead {
  text: string;
  entry: number;
  numEntries: number;
}

/** The IMA list of one path, indexed incrementally. One instance per agent; requests are serialised. */
export class ImaMeasurementList {
  /** checkpoints[i] = byte offset of entry i * CHECKPOINT. */
  #checkpoints: number[] = [0];
  /** Complete entries seen, and the byte offset just after the last one. */
  #entries = 0;
  #indexed = 0;
  #serial = new SerialWork();

  constructor(readonly path: string) {}

  /** Forget the index (e.g. the list was replaced). */
  reset(): void {
    this.#checkpoints = [0];
    this.#entries = 0;
    this.#indexed = 0;
  }

  /** Locate entry n (see the module comment for the rule), after indexing what was appended. */
  locate(nthEntry: number): Promise<ImaSlice> {
    return this.#serial.run(() => this.#withFile((fh) => this.#locate(fh, nthEntry)));
  }

  /** The list text from entry n, as the quote's ima_measurement_list; refused past maxBytes. */
  read(nthEntry: number, maxBytes = Number.MAX_SAFE_INTEGER): Promise<ImaRead> {
    return this.#serial.run(() =>
      this.#withFile(async (fh) => {
        const slice = await this.#locate(fh, nthEntry);
        const length = slice.end - slice.start;
        if (length > maxBytes) {
          throw new MeasurementsError(
            `${this.path}: ${length} bytes from entry ${slice.entry} is more than the ${maxBytes} allowed`,
          );
        }
        const buf = Buffer.alloc(length);
        let got = 0;
        while (got < length) {
          const { bytesRead } = await fh.read(buf, got, length - got, slice.start + got);
          if (bytesRead === 0) break;
          got += bytesRead;
        }
        return { text: buf.toString("utf8", 0, got), entry: slice.entry, numEntries: slice.numEntries };
      })
    );
  }

  /** The bytes of a located slice in chunks, for a streamed response. */
  async *chunks(slice: ImaSlice, chunkSize = STREAM_CHUNK): AsyncGenerator<Uint8Array> {
    const fh = await this.#open();
    try {
      for (let pos = slice.start; pos < slice.end;) {
        const buf = Buffer.alloc(Math.min(chunkSize, slice.end - pos));
        const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
        if (bytesRead === 0) return;
        pos += bytesRead;
        yield buf.subarray(0, bytesRead);
      }
    } finally {
      await fh.close();
    }
  }

  async #open(): Promise<FileHandle> {
    try {
      return await open(this.path, "r");
    } catch (e) {
      throw new MeasurementsError(`cannot open the IMA measurement list ${this.path}: ${(e as Error).message}`, {
        cause: e,
      });
    }
  }

  async #withFile<T>(f: (fh: FileHandle) => Promise<T>): Promise<T> {
    const fh = await this.#open();
    try {
      return await f(fh);
    } finally {
      await fh.close();
    }
  }

  /** Index entries appended since the last scan; returns the end of the file as read (partial line included). */
  async #scan(fh: FileHandle): Promise<number> {
    // The byte before the indexed end must still be a newline, or the list was replaced: start over.
    if (this.#indexed > 0) {
      const one = Buffer.alloc(1);
      const { bytesRead } = await fh.read(one, 0, 1, this.#indexed - 1);
      if (bytesRead !== 1 || one[0] !== NEWLINE) this.reset();
    }
    const buf = Buffer.alloc(CHUNK);
    let pos = this.#indexed;
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, CHUNK, pos);
      if (bytesRead === 0) return pos;
      for (let i = buf.indexOf(NEWLINE, 0); i >= 0 && i < bytesRead; i = buf.indexOf(NEWLINE, i + 1)) {
        this.#entries++;
        this.#indexed = pos + i + 1;
        if (this.#entries % CHECKPOINT === 0) this.#checkpoints.push(this.#indexed);
      }
      pos += bytesRead;
      // Back-to-back file reads can hold timers and sockets off for hundreds of ms on a large list.
      await yieldToEventLoop();
    }
  }

  async #locate(fh: FileHandle, nthEntry: number): Promise<ImaSlice> {
    const end = await this.#scan(fh);
    const numEntries = this.#entries;
    const entry = Number.isSafeInteger(nthEntry) && nthEntry >= 0 && nthEntry <= numEntries ? nthEntry : 0;
    if (entry === numEntries) return { entry, numEntries, start: this.#indexed, end };
    const c = Math.floor(entry / CHECKPOINT);
    let start = this.#checkpoints[c]!;
    let toSkip = entry - c * CHECKPOINT;
    const buf = Buffer.alloc(Math.min(CHUNK, 64 * 1024));
    while (toSkip > 0) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, start);
      if (bytesRead === 0) throw new MeasurementsError(`${this.path} shrank while it was read`);
      let i = -1;
      while (toSkip > 0) {
        i = buf.indexOf(NEWLINE, i + 1);
        if (i < 0 || i >= bytesRead) break;
        toSkip--;
      }
      start += toSkip === 0 ? i + 1 : bytesRead;
    }
    return { entry, numEntries, start, end };
  }
}

const yieldToEventLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

/** Default bound on the UEFI event log (real logs are tens of KB). */
export const DEFAULT_MAX_EVENT_LOG_BYTES = 8 * 1024 * 1024;

/**
 * The UEFI event log at `path` as base64 (mb_measurement_list); undefined when there is none (no file, as on
 * machines without measured boot). Read to EOF in chunks (securityfs reports size 0), refused past maxBytes.
 */
export async function readMeasuredBootLog(
  path: string,
  maxBytes = DEFAULT_MAX_EVENT_LOG_BYTES,
): Promise<string | undefined> {
  let fh: FileHandle;
  try {
    fh = await open(path, "r");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new MeasurementsError(`cannot open the UEFI event log ${path}: ${(e as Error).message}`, { cause: e });
  }
  try {
    const parts: Buffer[] = [];
    let total = 0;
    for (;;) {
      const buf = Buffer.alloc(Math.min(CHUNK, maxBytes + 1 - total));
      const { bytesRead } = await fh.read(buf, 0, buf.length, null);
      if (bytesRead === 0) break;
      total += bytesRead;
      if (total > maxBytes) throw new MeasurementsError(`the UEFI event log ${path} is larger than ${maxBytes} bytes`);
      parts.push(buf.subarray(0, bytesRead));
    }
    return toBase64(Buffer.concat(parts));
  } finally {
    await fh.close();
  }
}

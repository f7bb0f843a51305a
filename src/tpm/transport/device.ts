/**
 * Kernel TPM character devices (spec/tpm.md §1.5; `tpm2-software/tpm2-tss: src/tss2-tcti/tcti-device.c`).
 * One write() carries one complete command, one read() returns the whole response.
 */
import { Buffer } from "node:buffer";
import * as fsp from "node:fs/promises";
import * as path from "node:path";
import { TransportError, TransportTimeoutError } from "../errors.ts";
import { DEFAULT_TIMEOUT_MS, RESPONSE_HEADER_BYTES, type Transport, type TransportOptions } from "./transport.ts";
import { Watchdog } from "./socket_link.ts";

/** Read buffer: larger than any kernel TPM buffer (TPM_BUFSIZE is 4096). */
const READ_BUFFER_BYTES = 8192;

/** True for the kernel resource manager's devices (/dev/tpmrm0), which flush per open file. */
export function isResourceManagedDevice(devicePath: string): boolean {
  return /^tpmrm\d+$/.test(path.basename(devicePath));
}

function openError(devicePath: string, e: unknown): TransportError {
  const err = e as NodeJS.ErrnoException;
  let advice: string;
  switch (err?.code) {
    case "ENOENT":
      advice = "it does not exist: this machine has no TPM or its driver is not loaded (check `ls /dev/tpm*` " +
        "and dmesg); use swtpm:host=…,port=… or the embedded simulator instead";
      break;
    case "EACCES":
    case "EPERM":
      advice = "permission denied: run as root, or grant access to the device (e.g. the tss group via " +
        "tpm-udev rules)";
      break;
    case "EBUSY":
      advice = "it is busy: /dev/tpm0 admits one user at a time and another process (tpm2-abrmd, another " +
        "agent) has it open; use /dev/tpmrm0, which many processes may share";
      break;
    default:
      advice = err?.message ?? String(e);
  }
  return new TransportError(`Cannot open TPM device ${devicePath}: ${advice}`, { cause: e });
}

/** /dev/tpmrm0 (kernel resource manager) or /dev/tpm0 (raw, exclusive). */
export class DeviceTransport implements Transport {
  readonly uri: string;
  readonly resourceManaged: boolean;
  private handle: fsp.FileHandle | undefined;
  private opening: Promise<fsp.FileHandle> | undefined;
  private busy = false;
  private readonly timeoutMs: number;
  private readonly watchdog: Watchdog;
  private readonly warn: (message: string) => void;

  constructor(readonly path: string = "/dev/tpmrm0", options: TransportOptions = {}) {
    this.uri = `device:${path}`;
    this.resourceManaged = isResourceManagedDevice(path);
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.watchdog = new Watchdog(this.timeoutMs);
    this.warn = options.warn ?? ((m) => console.warn(m));
  }

  /** Open the device now (otherwise the first send does). */
  async open(): Promise<void> {
    await this.ensureOpen();
  }

  async send(command: Uint8Array): Promise<Uint8Array> {
    if (this.busy) throw new TransportError(`A command is already in flight on TPM ${this.uri}; send one at a time`);
    this.busy = true;
    let fh: fsp.FileHandle | undefined;
    try {
      return await this.watchdog.guard(
        () => {
          // The pending read cannot be cancelled: abandon the handle and let it close when the read ends.
          if (fh && this.handle === fh) this.handle = undefined;
          if (fh) void fh.close().catch(() => {});
          return new TransportTimeoutError(`TPM ${this.uri} did not answer within ${this.timeoutMs} ms`);
        },
        async (deadline) => {
          fh = await this.ensureOpen();
          // Timed out while opening: the caller has its answer, so the command must not go out.
          if (deadline.expired) return new Uint8Array(0);
          return await this.exchange(fh, command);
        },
      );
    } finally {
      this.busy = false;
    }
  }

  async close(): Promise<void> {
    this.watchdog.cancel();
    const fh = this.handle;
    this.handle = undefined;
    this.opening = undefined;
    if (fh) await fh.close().catch(() => {});
  }

  private ensureOpen(): Promise<fsp.FileHandle> {
    if (this.handle) return Promise.resolve(this.handle);
    this.opening ??= (async () => {
      try {
        const fh = await fsp.open(this.path, "r+");
        if (!this.resourceManaged) {
          this.warn(
            `TPM ${this.uri}: no resource manager is present, so transient objects and sessions outlive ` +
              `this process and must be flushed explicitly; prefer /dev/tpmrm0`,
          );
        }
        this.handle = fh;
        return fh;
      } catch (e) {
        throw openError(this.path, e);
      } finally {
        this.opening = undefined;
      }
    })();
    return this.opening;
  }

  private async exchange(fh: fsp.FileHandle, command: Uint8Array): Promise<Uint8Array> {
    try {
      // position null: plain write()/read(); character devices do not seek.
      const { bytesWritten } = await fh.write(command, 0, command.length, null);
      if (bytesWritten !== command.length) {
        throw new TransportError(
          `TPM ${this.uri} accepted ${bytesWritten} of ${command.length} command bytes; the kernel takes ` +
            `a command in one write`,
        );
      }
      const buf = Buffer.alloc(READ_BUFFER_BYTES);
      const { bytesRead } = await fh.read(buf, 0, buf.length, null);
      if (bytesRead < RESPONSE_HEADER_BYTES) {
        throw new TransportError(`Invalid response from TPM ${this.uri}: ${bytesRead} bytes, shorter than a header`);
      }
      const size = buf.readUInt32BE(2);
      if (size !== bytesRead) {
        throw new TransportError(
          `Invalid response from TPM ${this.uri}: responseSize ${size} but the device returned ${bytesRead} bytes`,
        );
      }
      return new Uint8Array(buf.subarray(0, bytesRead));
    } catch (e) {
      if (e instanceof TransportError) throw e;
      // A failed write/read leaves the device state unknown: reopen next time.
      if (this.handle === fh) {
        this.handle = undefined;
        void fh.close().catch(() => {});
      }
      const err = e as NodeJS.ErrnoException;
      throw new TransportError(`I/O error on TPM ${this.uri}: ${err?.message ?? String(e)}`, { cause: e });
    }
  }
}

/**
 * swtpm's control channel (`--ctrl`): one request per connection, as tcti-swtpm does.
 *
 * Mirrors `stefanberger/swtpm: src/swtpm/ctrlchannel.c, include/swtpm/tpm_ioctl.h` (spec/tpm.md §1.2).
 */
import type * as net from "node:net";
import { Buffer } from "node:buffer";
import { TransportError, TransportTimeoutError } from "../errors.ts";
import { MAX_RESPONSE_BYTES } from "./transport.ts";
import {
  ConnectionLost,
  describeAddress,
  Expired,
  type SocketAddress,
  StreamConnection,
  withDeadline,
} from "./socket_link.ts";

/** Control channel commands (`include/swtpm/tpm_ioctl.h`, CMD_*). */
export const PTM_CMD = {
  GET_CAPABILITY: 0x01,
  INIT: 0x02,
  SHUTDOWN: 0x03,
  GET_TPMESTABLISHED: 0x04,
  SET_LOCALITY: 0x05,
  HASH_START: 0x06,
  HASH_DATA: 0x07,
  HASH_END: 0x08,
  CANCEL_TPM_CMD: 0x09,
  STORE_VOLATILE: 0x0a,
  RESET_TPMESTABLISHED: 0x0b,
  GET_STATEBLOB: 0x0c,
  SET_STATEBLOB: 0x0d,
  STOP: 0x0e,
  GET_CONFIG: 0x0f,
  SET_DATAFD: 0x10,
  SET_BUFFERSIZE: 0x11,
  GET_INFO: 0x12,
  LOCK_STORAGE: 0x13,
} as const;

/** PTM_CAP_* bit positions of CMD_GET_CAPABILITY's answer. */
export const PTM_CAP_BIT = {
  INIT: 0,
  SHUTDOWN: 1,
  GET_TPMESTABLISHED: 2,
  SET_LOCALITY: 3,
  HASHING: 4,
  CANCEL_TPM_CMD: 5,
  STORE_VOLATILE: 6,
  RESET_TPMESTABLISHED: 7,
  GET_STATEBLOB: 8,
  SET_STATEBLOB: 9,
  STOP: 10,
  GET_CONFIG: 11,
  SET_DATAFD: 12,
  SET_BUFFERSIZE: 13,
  GET_INFO: 14,
  SEND_COMMAND_HEADER: 15,
  LOCK_STORAGE: 16,
} as const;

/** CMD_INIT flag: delete the volatile state file after reading it. */
export const PTM_INIT_FLAG_DELETE_VOLATILE = 1;

/** ptm_res values (TPM 1.2 codes) the control channel answers with. */
export const PTM_RES_NAMES: Readonly<Record<number, string>> = {
  0x03: "TPM_BAD_PARAMETER",
  0x09: "TPM_FAIL",
  0x0a: "TPM_BAD_ORDINAL",
  0x3d: "TPM_BAD_LOCALITY",
};

function ptmCmdName(cmd: number): string {
  for (const [k, v] of Object.entries(PTM_CMD)) if (v === cmd) return `CMD_${k}`;
  return `control command 0x${cmd.toString(16)}`;
}

/** The control channel answered with ptm_res != 0. */
export class SwtpmControlError extends TransportError {
  override readonly code = "ERR_TRANSPORT_SWTPM_CONTROL";
  constructor(readonly command: string, readonly result: number, where: string) {
    const name = PTM_RES_NAMES[result];
    super(
      `swtpm ${command} failed on ${where}: ptm_res 0x${result.toString(16)}${name ? ` (${name})` : ""}` +
        (result === 0x0a ? "; the TPM is not running (send CMD_INIT first)" : ""),
    );
    this.name = "SwtpmControlError";
  }
}

/** Shape of a control reply after ptm_res: `fixed` bytes, then optionally u32-length-prefixed data. */
export interface ControlReplyShape {
  /** Bytes that always follow ptm_res on success. */
  fixed: number;
  /** Offset within the fixed part of a u32 giving the number of data bytes that follow it. */
  lengthAt?: number;
}

export interface SwtpmControlOptions {
  /** Name of the TPM for messages (its data uri). */
  uri?: string;
  /** Per-request deadline; default 30 s (CMD_INIT may load a large state). */
  timeoutMs?: number;
}

/**
 * swtpm's control channel (spec §1.2). Like tcti-swtpm, every request uses a fresh connection and
 * a single write: swtpm closes a request that has not fully arrived within 500 ms.
 */
export class SwtpmControl {
  private readonly where: string;
  private readonly timeoutMs: number;

  constructor(readonly address: SocketAddress, options: SwtpmControlOptions = {}) {
    this.where = `${options.uri ?? "swtpm"} (control ${describeAddress(address)})`;
    this.timeoutMs = options.timeoutMs ?? 30_000;
  }

  /**
   * Send `u32 cmd ‖ payload`; return what follows ptm_res. `reply` is the number of fixed bytes
   * after ptm_res, or a shape with a length-prefixed tail. Rejects with SwtpmControlError when
   * ptm_res != 0.
   */
  request(
    cmd: number,
    payload: Uint8Array = new Uint8Array(0),
    reply: number | ControlReplyShape = 0,
  ): Promise<Uint8Array> {
    const shape = typeof reply === "number" ? { fixed: reply } : reply;
    const name = ptmCmdName(cmd);
    let socket: net.Socket | undefined;
    let conn: StreamConnection | undefined;
    return withDeadline(
      this.timeoutMs,
      () => {
        socket?.destroy();
        conn?.destroy();
        return new TransportTimeoutError(`swtpm ${name} on ${this.where} got no answer within ${this.timeoutMs} ms`);
      },
      async (deadline) => {
        conn = await StreamConnection.open(this.address, `swtpm control channel of ${this.where}`, (s) => (socket = s));
        const c = conn;
        if (deadline.expired) {
          c.destroy();
          throw new Expired();
        }
        try {
          const req = Buffer.alloc(4 + payload.length);
          req.writeUInt32BE(cmd >>> 0, 0);
          req.set(payload, 4);
          c.write(req);
          const res = (await c.read(4)).readUInt32BE(0);
          if (res !== 0) throw new SwtpmControlError(name, res, this.where);
          const fixed = shape.fixed ? await c.read(shape.fixed) : Buffer.alloc(0);
          if (shape.lengthAt === undefined) return new Uint8Array(fixed);
          const len = fixed.readUInt32BE(shape.lengthAt);
          if (len > MAX_RESPONSE_BYTES) {
            throw new TransportError(`swtpm ${name} on ${this.where}: reply length ${len} is implausible`);
          }
          const data = len ? await c.read(len) : Buffer.alloc(0);
          return new Uint8Array(Buffer.concat([fixed, data]));
        } catch (e) {
          if (e instanceof ConnectionLost) {
            throw new TransportError(
              `swtpm ${name} on ${this.where}: the connection closed before a full reply ` +
                `(${e.received} bytes; ${e.reason}). swtpm drops malformed or slow (>500 ms) requests.`,
              { cause: e },
            );
          }
          throw e;
        } finally {
          c.destroy();
        }
      },
    );
  }

  /** CMD_GET_CAPABILITY: the PTM_CAP_* bit mask (see PTM_CAP_BIT). */
  async getCapability(): Promise<number> {
    const r = await this.request(PTM_CMD.GET_CAPABILITY, undefined, 4);
    return Buffer.from(r).readUInt32BE(0);
  }

  /** CMD_INIT: (re)initialise the TPM; afterwards it needs TPM2_Startup. flags: PTM_INIT_FLAG_*. */
  async init(flags = 0): Promise<void> {
    await this.request(PTM_CMD.INIT, u32(flags));
  }

  /** CMD_SHUTDOWN: swtpm stores its state and exits. */
  async shutdown(): Promise<void> {
    await this.request(PTM_CMD.SHUTDOWN);
  }

  /** CMD_STOP: stop the TPM (the process stays; CMD_INIT restarts it). */
  async stop(): Promise<void> {
    await this.request(PTM_CMD.STOP);
  }

  /** CMD_SET_LOCALITY: locality of the following commands (swtpm accepts 0–4). */
  async setLocality(locality: number): Promise<void> {
    await this.request(PTM_CMD.SET_LOCALITY, Uint8Array.of(checkLocality(locality)));
  }

  /** CMD_GET_TPMESTABLISHED: the TPM-established bit. */
  async getTpmEstablished(): Promise<boolean> {
    const r = await this.request(PTM_CMD.GET_TPMESTABLISHED, undefined, 4);
    return (r[0]! & 1) === 1;
  }

  /** CMD_RESET_TPMESTABLISHED at the given locality. */
  async resetTpmEstablished(locality: number): Promise<void> {
    await this.request(PTM_CMD.RESET_TPMESTABLISHED, Uint8Array.of(checkLocality(locality)));
  }

  /** CMD_CANCEL_TPM_CMD. */
  async cancel(): Promise<void> {
    await this.request(PTM_CMD.CANCEL_TPM_CMD);
  }

  /** CMD_STORE_VOLATILE: write the volatile state to the state directory. */
  async storeVolatile(): Promise<void> {
    await this.request(PTM_CMD.STORE_VOLATILE);
  }

  /** CMD_GET_CONFIG: PTM_CONFIG_FLAG_* (1 file key, 2 migration key). */
  async getConfig(): Promise<number> {
    const r = await this.request(PTM_CMD.GET_CONFIG, undefined, 4);
    return Buffer.from(r).readUInt32BE(0);
  }

  /** CMD_SET_BUFFERSIZE: 0 queries. Returns the size in use and the supported range. */
  async setBufferSize(size = 0): Promise<{ bufferSize: number; minSize: number; maxSize: number }> {
    const r = Buffer.from(await this.request(PTM_CMD.SET_BUFFERSIZE, u32(size), 12));
    return { bufferSize: r.readUInt32BE(0), minSize: r.readUInt32BE(4), maxSize: r.readUInt32BE(8) };
  }

  /** CMD_GET_INFO: libtpms information as JSON text (flags: SWTPM_INFO_*, e.g. 1 = TPM specification). */
  async getInfo(flags: number): Promise<string> {
    const req = Buffer.alloc(16);
    req.writeBigUInt64BE(BigInt(flags), 0);
    const r = await this.request(PTM_CMD.GET_INFO, req, { fixed: 8, lengthAt: 4 });
    return Buffer.from(r.subarray(8)).toString("utf8").replace(/\0+$/, "");
  }
}

function u32(v: number): Uint8Array {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v >>> 0, 0);
  return b;
}

export function checkLocality(locality: number): number {
  if (!Number.isInteger(locality) || locality < 0 || locality > 255) {
    throw new TransportError(`Invalid locality ${locality}: expected an integer 0..255 (swtpm accepts 0..4)`);
  }
  return locality;
}

/**
 * The Microsoft TPM simulator protocol (`microsoft/ms-tpm-20-ref: TPMCmd/Simulator/src/TcpServer.c`,
 * `TpmTcpProtocol.h`; spec/tpm.md §1.4). TPM port: `u32 8 ‖ u8 locality ‖ u32 size ‖ cmd`, reply
 * `u32 size ‖ rsp ‖ u32 0`. Platform port (TPM port + 1, or `path.ctrl`): u32 signals answered by u32 0.
 */
import { Buffer } from "node:buffer";
import { TransportError } from "../errors.ts";
import { DEFAULT_TIMEOUT_MS, type Transport, type TransportOptions } from "./transport.ts";
import {
  checkResponseSize,
  companionAddress,
  type ReadExactly,
  type SocketAddress,
  SocketLink,
  socketUri,
} from "./socket_link.ts";

/** TPM port command codes. */
export const MSSIM_TPM_SEND_COMMAND = 8;
export const MSSIM_REMOTE_HANDSHAKE = 15;
export const MSSIM_SESSION_END = 20;
/** u32 TPM_SEND_COMMAND ‖ u8 locality ‖ u32 size, preceding each command. */
export const MSSIM_COMMAND_HEADER_BYTES = 9;

/** Platform port signals. */
export const MSSIM_SIGNAL = {
  POWER_ON: 1,
  POWER_OFF: 2,
  PHYS_PRES_ON: 3,
  PHYS_PRES_OFF: 4,
  CANCEL_ON: 9,
  CANCEL_OFF: 10,
  NV_ON: 11,
  NV_OFF: 12,
  KEY_CACHE_ON: 13,
  KEY_CACHE_OFF: 14,
  RESET: 17,
  RESTART: 18,
  SESSION_END: 20,
  STOP: 21,
} as const;

export interface MssimTransportOptions extends TransportOptions {
  /**
   * Send POWER_ON then NV_ON on the platform port before the first command, as tcti-mssim does
   * (default true). False talks to the TPM port only, e.g. swtpm's data port, whose port + 1 is
   * swtpm's control channel and not an mssim platform port.
   */
  platform?: boolean;
  /** Platform TCP port (default: TPM port + 1). */
  platformPort?: number;
  /** Platform unix socket (default: TPM path + ".ctrl"). */
  platformPath?: string;
  /** Keep the TPM connection between commands (default true). */
  persistent?: boolean;
  /** Locality put in each command header (default 0). */
  locality?: number;
}

function checkLocality(locality: number): number {
  if (!Number.isInteger(locality) || locality < 0 || locality > 255) {
    throw new TransportError(`Invalid locality ${locality}: expected an integer 0..255`);
  }
  return locality;
}

/** A TPM speaking the mssim protocol (ms-tpm-20-ref, IBM's tpm_server, our simulator, swtpm's data port). */
export class MssimTransport implements Transport {
  readonly uri: string;
  readonly resourceManaged = false;
  /** Where the platform signals go. */
  readonly platformAddress: SocketAddress;
  private readonly link: SocketLink;
  private readonly platformLink: SocketLink;
  private readonly usePlatform: boolean;
  private poweredOn = false;
  private loc: number;

  constructor(readonly address: SocketAddress, options: MssimTransportOptions = {}) {
    this.uri = socketUri("mssim", address);
    const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.link = new SocketLink(address, { uri: this.uri, timeoutMs, persistent: options.persistent ?? true });
    this.platformAddress = companionAddress(address, options.platformPort, options.platformPath);
    this.platformLink = new SocketLink(this.platformAddress, {
      uri: `${this.uri} (platform port)`,
      timeoutMs: Math.min(timeoutMs, 30_000),
      persistent: false,
    });
    this.usePlatform = options.platform ?? true;
    this.loc = checkLocality(options.locality ?? 0);
  }

  /** Locality carried in the header of each following command. */
  get locality(): number {
    return this.loc;
  }

  set locality(locality: number) {
    this.loc = checkLocality(locality);
  }

  /** Send one platform signal (MSSIM_SIGNAL.*) and require the u32 0 acknowledgement. */
  async signal(signal: number): Promise<void> {
    const req = Buffer.alloc(4);
    req.writeUInt32BE(signal >>> 0, 0);
    await this.platformLink.exchange(req, async (read) => {
      const ack = (await read(4)).readUInt32BE(0);
      if (ack !== 0) {
        throw new TransportError(
          `mssim platform signal ${signal} on ${this.uri} was refused (answer ${ack}); ` +
            `is this an mssim simulator? (swtpm's port + 1 is its control channel: use platform: false)`,
        );
      }
      return new Uint8Array(0);
    });
  }

  send(command: Uint8Array): Promise<Uint8Array> {
    const framed = Buffer.alloc(MSSIM_COMMAND_HEADER_BYTES + command.length);
    framed.writeUInt32BE(MSSIM_TPM_SEND_COMMAND, 0);
    framed.writeUInt8(this.loc, 4);
    framed.writeUInt32BE(command.length, 5);
    framed.set(command, MSSIM_COMMAND_HEADER_BYTES);
    const prepare = this.usePlatform && !this.poweredOn
      ? async () => {
        // POWER_ON is idempotent on the reference simulator; tcti-mssim sends both on every init.
        await this.signal(MSSIM_SIGNAL.POWER_ON);
        await this.signal(MSSIM_SIGNAL.NV_ON);
        this.poweredOn = true;
      }
      : undefined;
    return this.link.exchange(framed, (read) => this.readReply(read), prepare);
  }

  close(): Promise<void> {
    this.link.close();
    this.platformLink.close();
    this.poweredOn = false;
    return Promise.resolve();
  }

  private async readReply(read: ReadExactly): Promise<Uint8Array> {
    const size = (await read(4)).readUInt32BE(0);
    checkResponseSize(size, this.uri);
    const rsp = await read(size);
    const inner = rsp.readUInt32BE(2);
    if (inner !== size) {
      throw new TransportError(
        `Invalid response from TPM ${this.uri}: mssim frame of ${size} bytes holds a response whose ` +
          `responseSize is ${inner}`,
      );
    }
    const trailer = (await read(4)).readUInt32BE(0);
    if (trailer !== 0) {
      throw new TransportError(
        `Invalid response from TPM ${this.uri}: mssim trailer is ${trailer}, expected 0 (protocol out of step?)`,
      );
    }
    return new Uint8Array(rsp.subarray(0, size));
  }
}

/**
 * swtpm's raw data channel (`--server`): a TPM command in, the response out, no framing.
 *
 * Mirrors `stefanberger/swtpm: src/swtpm/mainloop.c` and `tpm2-software/tpm2-tss:
 * src/tss2-tcti/tcti-swtpm.c` (spec/tpm.md §1.1, §1.3).
 */
import { DEFAULT_TIMEOUT_MS, type Transport, type TransportOptions } from "./transport.ts";
import { companionAddress, readTpmResponse, type SocketAddress, SocketLink, socketUri } from "./socket_link.ts";
import { checkLocality, SwtpmControl } from "./swtpm_control.ts";

// ---------------------------------------------------------------------------------------------
// Data channel

export interface SwtpmTransportOptions extends TransportOptions {
  /**
   * Keep one connection open between commands (default true). swtpm serves one client at a time,
   * so a held connection blocks tpm2-tools; pass false to connect per command as tcti-swtpm does.
   */
  persistent?: boolean;
  /** Control channel TCP port (default: data port + 1). */
  ctrlPort?: number;
  /** Control channel unix socket (default: data path + ".ctrl"). */
  ctrlPath?: string;
}

/**
 * swtpm's raw data channel: a TPM command in, the response out, no framing. One command in
 * flight; each command is written in one piece (§1.1 10-byte read pitfall).
 */
export class SwtpmTransport implements Transport {
  readonly uri: string;
  readonly resourceManaged = false;
  /** The control channel (CMD_INIT, CMD_SET_LOCALITY, ...). */
  readonly control: SwtpmControl;
  private readonly link: SocketLink;
  private currentLocality = 0;
  private pendingLocality: number | undefined;

  constructor(readonly address: SocketAddress, options: SwtpmTransportOptions = {}) {
    this.uri = socketUri("swtpm", address);
    this.link = new SocketLink(address, {
      uri: this.uri,
      timeoutMs: options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
      persistent: options.persistent ?? true,
    });
    this.control = new SwtpmControl(companionAddress(address, options.ctrlPort, options.ctrlPath), {
      uri: this.uri,
      ...(options.timeoutMs !== undefined ? { timeoutMs: Math.min(options.timeoutMs, 30_000) } : {}),
    });
  }

  /** Locality of the following commands. */
  get locality(): number {
    return this.pendingLocality ?? this.currentLocality;
  }

  /** Takes effect through CMD_SET_LOCALITY before the next command; a refusal rejects that send. */
  set locality(locality: number) {
    this.pendingLocality = checkLocality(locality);
  }

  /** Change locality now (CMD_SET_LOCALITY). */
  async setLocality(locality: number): Promise<void> {
    await this.control.setLocality(locality);
    this.currentLocality = locality;
    this.pendingLocality = undefined;
  }

  send(command: Uint8Array): Promise<Uint8Array> {
    const prepare = this.pendingLocality === undefined ? undefined : async () => {
      const loc = this.pendingLocality!;
      this.pendingLocality = undefined;
      await this.control.setLocality(loc);
      this.currentLocality = loc;
    };
    return this.link.exchange(command, (read) => readTpmResponse(read, this.uri), prepare);
  }

  close(): Promise<void> {
    this.link.close();
    return Promise.resolve();
  }
}

/**
 * A Transport straight into a TpmEngine in this process: no sockets, no framing. The agent uses it
 * when the simulator is its TPM; the conformance suite uses it as the fastest backend.
 */
import { TpmUsageError, TransportError } from "../src/tpm/errors.ts";
import type { Transport } from "../src/tpm/transport/transport.ts";
import type { TpmEngine } from "./engine.ts";

export const IN_PROCESS_URI = "sim:in-process";

export interface InProcessTransportOptions {
  /** Name of this TPM in messages (default `sim:in-process`). */
  uri?: string;
  /** Locality of the commands sent (default 0). */
  locality?: number;
}

export class InProcessTransport implements Transport {
  readonly uri: string;
  /** The simulator keeps what a client loads until the client flushes it, like a TPM without a resource manager. */
  readonly resourceManaged = false;
  private loc: number;
  private closed = false;

  constructor(readonly engine: TpmEngine, options: InProcessTransportOptions = {}) {
    this.uri = options.uri ?? IN_PROCESS_URI;
    this.loc = checkLocality(options.locality ?? 0);
  }

  /** Locality passed with each following command. */
  get locality(): number {
    return this.loc;
  }

  set locality(locality: number) {
    this.loc = checkLocality(locality);
  }

  async send(command: Uint8Array): Promise<Uint8Array> {
    if (this.closed) throw new TransportError(`TPM ${this.uri} is closed; open a new transport to send commands`);
    // Copies both ways: the caller may reuse its buffer once send() returns, and it owns (and may
    // decode views into) the response while the engine may keep or reuse what it returned.
    const response = await this.engine.execute(command.slice(), this.loc);
    return response.slice();
  }

  /** Stops this transport only: the engine belongs to whoever created it. Idempotent. */
  close(): Promise<void> {
    this.closed = true;
    return Promise.resolve();
  }
}

function checkLocality(locality: number): number {
  if (!Number.isInteger(locality) || locality < 0 || locality > 255) {
    throw new TpmUsageError(`Invalid locality ${locality}: expected an integer 0..255`);
  }
  return locality;
}

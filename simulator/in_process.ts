/**
 * A Transport straight into a TpmEngine in this process: no sockets, no framing. The agent uses it
 * when the simulator is its TPM; the conformance suite uses it as the fastest backend.
 */
import { TpmUsageError } from "../src/tpm/errors.ts";
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
    // Copies both ways: the caller may reuse its buffer once send() returns, and it owns (and may
    // decode views into) the response while the engine may keep or reuse what it returned.
    const response = await this.engine.execute(command.slice(), this.loc);
    return response.slice();
  }

  /**
   * Releases nothing: there is no connection. A later send works, as the socket and device transports
   * reconnect after close() (the agent releases an idle TPM this way and sends again on the next request).
   * The engine belongs to whoever created it.
   */
  close(): Promise<void> {
    return Promise.resolve();
  }
}

function checkLocality(locality: number): number {
  if (!Number.isInteger(locality) || locality < 0 || locality > 255) {
    throw new TpmUsageError(`Invalid locality ${locality}: expected an integer 0..255`);
  }
  return locality;
}

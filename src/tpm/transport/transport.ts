/**
 * The byte pipe to a TPM. A transport moves one complete command in and one complete response out;
 * it knows nothing of command semantics. Implementations: device.ts (/dev/tpmrm0, /dev/tpm0),
 * swtpm.ts (swtpm's raw data channel plus its control channel), mssim.ts (the Microsoft simulator
 * protocol), and the embedded simulator's in-process transport.
 */
export interface Transport {
  /** Canonical TCTI-style string naming the TPM, e.g. `swtpm:host=127.0.0.1,port=2321`. */
  readonly uri: string;
  /**
   * True when a resource manager flushes this connection's transient objects and sessions for us
   * (the kernel's /dev/tpmrm0). Otherwise the client must flush what it creates.
   */
  readonly resourceManaged: boolean;
  /**
   * Send one complete command and resolve with one complete response (header included), in a
   * buffer the caller then owns: the client decodes views into it.
   * Callers send one command at a time; implementations may assume no overlap.
   * Rejects with TransportError, or TransportTimeoutError when no answer arrives in time.
   */
  send(command: Uint8Array): Promise<Uint8Array>;
  /** Release the connection or file handle. Idempotent. */
  close(): Promise<void>;
}

/** Options shared by every transport. */
export interface TransportOptions {
  /** How long to wait for a response before failing with TransportTimeoutError (ms). */
  timeoutMs?: number;
  /** Called with human-readable warnings (e.g. "no resource manager"). Defaults to console.warn. */
  warn?: (message: string) => void;
}

/** Default response timeout: generous, since RSA key generation on a hardware TPM can take many seconds. */
export const DEFAULT_TIMEOUT_MS = 120_000;

/** Largest response this library accepts from any transport (a TPM's MAX_RESPONSE_SIZE is 4 KiB typically). */
export const MAX_RESPONSE_BYTES = 65536;

/** Header of every TPM response: u16 tag, u32 size, u32 code. */
export const RESPONSE_HEADER_BYTES = 10;

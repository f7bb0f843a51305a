/**
 * The boundary between the simulated TPM and whatever carries its bytes (an in-process transport,
 * the swtpm protocol server, the mssim protocol server). Everything below this interface is the TPM;
 * everything above it is plumbing.
 */

/** Power and lifecycle signals, as swtpm's control channel and the mssim platform port send them. */
export interface TpmEngine {
  /**
   * Execute one command at `locality` and resolve with one well-formed response. Never rejects:
   * malformed input gets a TPM error response (TPM_RC_COMMAND_SIZE, TPM_RC_INSUFFICIENT ...).
   * Commands are executed one at a time in arrival order.
   */
  execute(command: Uint8Array, locality?: number): Promise<Uint8Array>;
  /**
   * Optional: start the slow work `command` will need that does not depend on the TPM's state (an
   * RSA key search), so a server can let other clients' commands run meanwhile; resolves when done,
   * or undefined when there is nothing to do. execute() works without it.
   */
  prepare?(command: Uint8Array): Promise<void> | undefined;
  /**
   * _TPM_Init: the TPM (re)starts: volatile state (loaded objects, sessions, PCRs) is lost unless a
   * TPM2_Shutdown(STATE) saved it, and only TPM2_Startup is accepted next (TPM_RC_INITIALIZE).
   * swtpm's CMD_INIT and the mssim POWER_ON (when off) send it. `deleteVolatile` drops saved state.
   */
  init(options?: { deleteVolatile?: boolean }): Promise<void>;
  /** Power off: persist what must persist; every command answers TPM_RC_FAILURE until init(). */
  powerOff(): Promise<void>;
  /** Whether the TPM is powered (init() since the last powerOff()). */
  readonly powered: boolean;
  /** Write the state file now (atomic). */
  save(): Promise<void>;
  /** Save and release resources. */
  close(): Promise<void>;
}

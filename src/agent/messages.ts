/**
 * The agent's log lines in one table. The registration, payload and revocation lines are rust-keylime's wording
 * (keylime/src/agent_registration.rs, keylime/src/registrar_client.rs, keylime-agent/src/{keys_handler,payloads,
 * revocation}.rs): operators and upstream's end-to-end tests look for them, e.g. "SUCCESS: Agent <uuid> activated".
 */

/** Where the agent's log lines go; the CLI decides the format. */
export interface AgentLog {
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

export const MSG = {
  // Registration, as rust-keylime words it.
  requestingVersion: (addr: string) => `Requesting registrar API version to ${addr}`,
  noVersionEndpoint: (addr: string) => `Registrar at '${addr}' does not support the '/version' endpoint`,
  tryingVersion: (v: string) => `Trying to register agent using API version ${v}`,
  requestingRegistration: (addr: string, uuid: string) => `Requesting agent registration from ${addr} for ${uuid}`,
  requestingActivation: (addr: string, uuid: string) => `Requesting agent activation from ${addr} for ${uuid}`,
  registered: (uuid: string) => `SUCCESS: Agent ${uuid} registered`,
  activated: (uuid: string) => `SUCCESS: Agent ${uuid} activated`,
  nkCertified: (uuid: string) => `Agent ${uuid}: the registrar verified the NK's certification by the AK (nk_certify)`,
  incompatible: (registrar: string, agent: string[], supported: string[]) =>
    `Registrar at '${registrar}' does not support any enabled API version: agent enabled versions = '[${
      agent.join(", ")
    }]', registrar supported versions = '[${supported.join(", ")}]'`,

  // Retries.
  retrying: (what: string, attempt: number, max: number, delayMs: number, why: string) =>
    `${what} failed (${why}); retry ${attempt} of ${max} in ${(delayMs / 1000).toFixed(1)} s`,
  gaveUp: (what: string, attempts: number, why: string) =>
    `${what} failed after ${attempts} attempt${
      attempts === 1 ? "" : "s"
    } (${why}); check that the registrar runs and that registrar_ip/registrar_port point to it`,

  // Refusals, with what the operator can do.
  identityChanged: (uuid: string, addr: string) =>
    `The registrar at ${addr} refused agent ${uuid} with 403: a record for this UUID exists with a different EK, EK certificate or AK. ` +
    `If the TPM or the AK really changed, delete the agent at the registrar (keylime_tenant -c regdelete -u ${uuid}) and register again; ` +
    `otherwise restore the previous agent_data.json so the agent uses its old AK`,
  badRequest: (uuid: string, addr: string, status: string) =>
    `The registrar at ${addr} refused agent ${uuid} with 400 (${status}): it could not use the EK, EK certificate or AK that was sent. ` +
    `Check that the EK certificate belongs to the EK (tpm_encryption_alg, ek_handle) and look at the registrar's log`,
  activationRejected: (uuid: string, addr: string, status: string) =>
    `The registrar at ${addr} rejected the activation of agent ${uuid} (${status}); it has deleted the record. ` +
    `Restart the agent to register again`,
  refused: (what: string, addr: string, code: number, status: string) =>
    `${what} at ${addr} answered ${code} (${status})`,

  // Identity.
  uuidGenerated: (uuid: string) => `Generated a new UUID: ${uuid}`,
  uuidHashEk: (uuid: string) => `Using hashed EK as UUID: ${uuid}`,
  uuidMisformatted: (given: string, uuid: string) => `Misformatted UUID: ${given}; using generated UUID: ${uuid}`,
  akLoaded: (path: string) => `Loaded the AK from ${path}`,
  akCreated: (path: string, why: string) => `Created a new AK (${why}) and saved it to ${path}`,
  noEkCert: (why: string) => `No EK certificate in the TPM (${why}); registering with an empty ekcert`,
  nkCreated: (path: string) => `Created the NK (payload key) ${path}`,
  mtlsCreated: (path: string) => `Created the mTLS certificate ${path}`,

  // Payloads and revocation, as rust-keylime words them (keys_handler.rs, payloads.rs, secure_mount.rs,
  // revocation.rs); lines upstream does not have say what the agent did instead.
  keyDerived: "Successfully derived symmetric payload decryption key",
  payloadsDisabled:
    "agent mTLS is disabled, and unless 'enable_insecure_payload' is set to 'True', payloads cannot be deployed",
  payloadFailed: (why: string) => `Failed to run encrypted payload: ${why}`,
  payloadDecrypted: "Successfully decrypted payload",
  mountinfoUnreadable: "Cannot read /proc/self/mountinfo; assuming the secure directory is not mounted",
  secureNotTmpfs: (path: string) =>
    `Not running as root: ${path} is a plain directory, not a tmpfs; payload secrets reach the disk`,
  mountingSecure: (path: string) => `Mounting secure storage location ${path} on tmpfs.`,
  mountFailed: (path: string, why: string) =>
    `Unable to mount tmpfs on ${path} (${why}); using it as a plain directory`,
  payloadNotZip: (file: string) => `extract_payload_zip is set but the payload is not a zip; storing it as ${file}`,
  wroteKey: (path: string) => `Wrote payload decryption key to ${path}`,
  wrotePayload: (path: string) => `Wrote decrypted payload to ${path}`,
  unzipping: (file: string, dir: string) => `Unzipping payload ${file} to ${dir}`,
  noPayloadScript: "No payload script specified, skipping",
  payloadScriptMissing: (script: string, dir: string) => `No payload script ${script} found in ${dir}`,
  executingPayloadScript: (path: string) => `Executing payload script: ${path}`,
  payloadScriptDone: (path: string) => `${path} ran successfully`,
  payloadScriptFailed: (path: string, how: string) => `${path} failed: ${how}`,
  actionPermission: (path: string) => `Permission set for action: ${path}`,
  noActionList: "WARNING: no action_list found in secure directory",
  noActions: "WARNING: no actions found in revocation action list",
  revocationCertMissing: (path: string) => `Revocation certificate not yet available (${path})`,
  revocationFailed: (why: string) => `Failed to process revocation: ${why}`,
  revocationBadSignature: "Invalid revocation message signature",
  actionError: (name: string, why: string) => `error executing revocation script ${name}: ${why}`,
  executingAction: (name: string) => `Executing revocation action ${name}`,
  actionStdout: (out: string) => `Action stdout: ${out}`,
  actionStderr: (err: string) => `Action stderr: ${err}`,
  actionDone: (name: string) => `INFO: revocation action ${name} successful`,
  revocationDone: "Revocation processed successfully",

  // Serving, as rust-keylime words it (keylime-agent/src/main.rs); upstream's tests match the first line's end.
  startingServer: (versions: readonly string[]) => `Starting server with API versions: ${versions.join(", ")}`,
  listening: (url: string) => `Listening on ${url}`,
  imaUnavailable: (path: string) => `IMA measurement list not available: ${path}`,
  mbUnavailable: (path: string) => `Measured boot measurement list not available: ${path}`,
  flushFailed: (e: unknown) => `Could not flush the TPM objects: ${(e as Error).message}`,
  shuttingDown: (signal: string) => `Received ${signal}, shutting down`,
  shutdownTimeout: (ms: number) => `Shutdown took longer than ${ms / 1000} s; exiting`,
  stopped: "Agent stopped",
} as const;

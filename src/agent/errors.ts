/** The agent's error classes: a stable `code` for programs, a message that says what to do for people. */

/** A configuration value that cannot be used: names the key, where it came from and what is allowed. */
export class ConfigError extends Error {
  readonly code = "ERR_CONFIG";
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "ConfigError";
  }
}

/** A state file (agent_data.json, keys, certificate) that exists but cannot be used. */
export class AgentStateError extends Error {
  readonly code = "ERR_AGENT_STATE";
  constructor(path: string, why: string, options?: { cause?: unknown }) {
    super(`${path}: ${why}`, options);
    this.name = "AgentStateError";
  }
}

/** The registrar refused the agent, or could not be reached within the retry budget. */
export class RegistrarError extends Error {
  readonly code = "ERR_REGISTRAR";
  /** HTTP status of the refusal; undefined when the registrar was not reachable. */
  readonly status: number | undefined;
  constructor(message: string, status?: number, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "RegistrarError";
    this.status = status;
  }
}

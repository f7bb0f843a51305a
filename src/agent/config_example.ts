/**
 * The example agent.conf (packaging/agent.conf), generated from the key declarations of config_keys.ts:
 * every key commented out at its default with its one-line doc, so an installed copy changes nothing until
 * a line is uncommented, and keys set in it are the ones an operator chose. A test keeps the committed file
 * equal to this output.
 */
import { AGENT_KEY_NAMES, AGENT_KEYS, envName, type KeyDecl } from "./config_keys.ts";

/** A value as TOML writes it (JSON's strings are TOML basic strings for the defaults here). */
function tomlValue(d: KeyDecl<unknown>): string {
  return Array.isArray(d.default)
    ? `[${d.default.map((x) => JSON.stringify(x)).join(", ")}]`
    : JSON.stringify(d.default);
}

export function exampleAgentConf(): string {
  const lines = [
    "# keylime-ts agent configuration: every key of the [agent] table at its default, commented out.",
    "# Generated from src/agent/config_keys.ts (`keylime-ts agent config --example`); docs/agent_config.md",
    "# explains the load order. Uncomment a line to change it; each key's environment variable still wins.",
    "# This file can hold passwords (tpm_ownerpassword, server_key_password...): keep it mode 0600.",
    "",
    "[agent]",
  ];
  for (const key of AGENT_KEY_NAMES) {
    const d = AGENT_KEYS[key] as KeyDecl<unknown>;
    const notes = [d.allowed, `env ${envName(key)}`, d.acted ? undefined : "accepted, not acted on yet"];
    lines.push("", `# ${d.doc} (${notes.filter(Boolean).join("; ")})`, `#${key} = ${tomlValue(d)}`);
  }
  return lines.join("\n") + "\n";
}

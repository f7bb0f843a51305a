/**
 * `keylime-ts agent config` (the effective configuration and where each value came from) and
 * `keylime-ts agent register` (register and activate the agent with the registrar, then exit 0).
 */
import type { Command } from "commander";
import { type AgentConfig, agentPaths, configReference, loadAgentConfig, type LoadedConfig } from "../agent/config.ts";
import { exampleAgentConf } from "../agent/config_example.ts";
import { AGENT_KEY_NAMES, AGENT_KEYS, envName } from "../agent/config_keys.ts";
import type { AgentLog } from "../agent/messages.ts";
import { openAndRegister } from "../agent/registration.ts";
import { agentMtlsCertCommand } from "./agent_mtls_cert.ts";
import { agentRunCommand } from "./agent_run.ts";
import { positiveInt } from "./options.ts";
import { print, printJson } from "./output.ts";
import { chooseTpmUri, withTpm } from "./select_tpm.ts";

/** Where /usr/etc and /etc are looked for; tests and image builds point it elsewhere. */
export const CONFIG_ROOT_ENV = "KEYLIME_TS_CONFIG_ROOT";

/** Log lines on stderr in rust-keylime's env_logger layout, so upstream's tests find them. */
export const stderrLog: AgentLog = {
  info: (m) => process.stderr.write(` INFO  keylime_agent > ${m}\n`),
  warn: (m) => process.stderr.write(` WARN  keylime_agent > ${m}\n`),
  error: (m) => process.stderr.write(` ERROR keylime_agent > ${m}\n`),
};

interface ConfigOptions {
  config?: string;
  json?: boolean;
}

function loadConfig(o: ConfigOptions): LoadedConfig {
  return loadAgentConfig({
    ...(o.config ? { file: o.config } : {}),
    ...(process.env[CONFIG_ROOT_ENV] ? { root: process.env[CONFIG_ROOT_ENV] } : {}),
    warn: (m) => stderrLog.warn(m),
  });
}

const shown = (key: keyof AgentConfig, v: unknown) =>
  (AGENT_KEYS[key] as { secret?: boolean }).secret && v !== "" ? "(set)" : v;

export function agentCommand(program: Command): void {
  const agent = program.command("agent").description(
    "the Keylime agent: register, then serve (the default); or show its configuration, only register, or make its mTLS certificate",
  );
  agentRunCommand(agent);
  agentMtlsCertCommand(agent);

  agent.command("config")
    .description("print the effective [agent] configuration and where each value came from")
    .option(
      "--config <file>",
      "read this file instead of /usr/etc/keylime and /etc/keylime (like KEYLIME_AGENT_CONFIG)",
    )
    .option("--json", "print as JSON")
    .option("--reference", "print the reference of every key (Markdown) instead")
    .option("--example", "print an example agent.conf, every key commented out at its default, instead")
    .action((o: ConfigOptions & { reference?: boolean; example?: boolean }) => {
      if (o.reference) return void process.stdout.write(configReference());
      if (o.example) return void process.stdout.write(exampleAgentConf());
      const { config, origin, files } = loadConfig(o);
      const tpm = chooseTpmUri({});
      if (o.json) {
        const keys = Object.fromEntries(AGENT_KEY_NAMES.map((k) => [k, {
          value: shown(k, config[k]),
          origin: origin[k],
          env: envName(k),
          actedOn: AGENT_KEYS[k].acted,
        }]));
        return printJson({ files, tpm, paths: agentPaths(config), keys });
      }
      print(`# files read: ${files.length ? files.join(", ") : "(none: built-in defaults)"}`);
      print(`# TPM: ${tpm.uri} (${tpm.source})`);
      print("[agent]");
      for (const k of AGENT_KEY_NAMES) {
        const note = AGENT_KEYS[k].acted ? "" : ", not acted on yet";
        print(`${k} = ${JSON.stringify(shown(k, config[k]))}  # ${origin[k]}${note}`);
      }
    });

  agent.command("register")
    .description("register the agent with the registrar and activate it; exit 0 once it is active")
    .option(
      "--config <file>",
      "read this file instead of /usr/etc/keylime and /etc/keylime (like KEYLIME_AGENT_CONFIG)",
    )
    .option("--tpm <uri>", "TPM to use (default: TCTI, then /dev/tpmrm0, /dev/tpm0, the embedded simulator)")
    .option("--json", "print the result as JSON")
    .option("--timeout <ms>", "give up when the TPM does not answer within this many ms", positiveInt("--timeout"))
    .action(async (o: ConfigOptions & { tpm?: string; timeout?: number }) => {
      const { config } = loadConfig(o);
      const selection = { ...(o.tpm ? { tpm: o.tpm } : {}), ...(o.timeout ? { timeoutMs: o.timeout } : {}) };
      const r = await withTpm(selection, async (tpm) => ({
        ...await openAndRegister(tpm, config, agentPaths(config), stderrLog),
        active: true,
      }));
      if (o.json) return printJson(r);
      print(`agent ${r.uuid} is active at ${r.registrar} (API ${r.apiVersion ?? "?"})`);
    });
}

#!/usr/bin/env node
/**
 * keylime-ts: the composition root. Parses the command line and wires configuration, the TPM and
 * the services together. Subcommands live in src/cli/, one file each.
 */
import { Command } from "commander";
import { basename } from "node:path";
import { agentCommand } from "./cli/agent.ts";
import { attestCommand } from "./cli/attest.ts";
import { AGENT_PROGRAM_NAME, ARGV0_ENV } from "./cli/agent_run.ts";
import { demoCommand } from "./cli/demo.ts";
import { registrarCommand } from "./cli/registrar.ts";
import { simulatorCommand } from "./cli/simulator.ts";
import { tpmCommand } from "./cli/tpm.ts";

export const VERSION = "0.1.0";

export function buildProgram(): Command {
  const program = new Command("keylime-ts")
    .description("Keylime-compatible attestation agent with its own TPM 2.0 stack")
    .version(VERSION)
    .showHelpAfterError()
    // `simulator --state` and `simulator ca --state` are different options of different commands.
    .enablePositionalOptions()
    .configureHelp({ sortSubcommands: true });
  tpmCommand(program);
  agentCommand(program);
  attestCommand(program);
  demoCommand(program);
  simulatorCommand(program);
  registrarCommand(program);
  return program;
}

export async function main(argv: string[]): Promise<void> {
  try {
    await buildProgram().parseAsync(argv, { from: "user" });
  } catch (e) {
    // Every error class of this project carries a stable ERR_* code; show it so scripts can match it.
    const errorCode = (e as { code?: unknown })?.code;
    const code = typeof errorCode === "string" && errorCode.startsWith("ERR_") ? ` [${errorCode}]` : "";
    process.stderr.write(`keylime-ts: ${e instanceof Error ? e.message : String(e)}${code}\n`);
    process.exitCode = 1;
  }
}

/** The name this executable was started as: a launcher's $0, the script, or the binary itself. */
function invokedAs(): string[] {
  const names = [process.env[ARGV0_ENV], process.argv[1], process.execPath].filter((n): n is string => !!n);
  return names.map((n) => basename(n));
}

/** Run as keylime_agent (a link or copy): the agent in the foreground, no arguments, as upstream's service. */
export function isAgentProgram(): boolean {
  return invokedAs().includes(AGENT_PROGRAM_NAME);
}

// No top-level await: the single-executable bundle loads this module as CommonJS.
if ((import.meta as { main?: boolean }).main) {
  const agentProgram = isAgentProgram();
  delete process.env[ARGV0_ENV];
  void main(agentProgram ? ["agent", "run"] : process.argv.slice(2));
}

#!/usr/bin/env node
/**
 * keylime-ts: the composition root. Parses the command line and wires configuration, the TPM and
 * the services together. Subcommands live in src/cli/, one file each.
 */
import { Command } from "commander";
import { agentCommand } from "./cli/agent.ts";
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

// No top-level await: the single-executable bundle loads this module as CommonJS.
if ((import.meta as { main?: boolean }).main) void main(process.argv.slice(2));

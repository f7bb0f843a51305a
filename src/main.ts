#!/usr/bin/env node
/**
 * keylime-ts: the composition root. Parses the command line and wires configuration, the TPM and
 * the services together. Subcommands live in src/cli/, one file each.
 */
import { Command } from "commander";
import { basename } from "node:path";
import { leaveOutOptimizingTiers } from "./util/v8_memory.ts";

export const VERSION = "0.1.0";
/** The name that makes the executable the agent (a link or copy named so). */
export const AGENT_PROGRAM_NAME = "keylime_agent";
/** Launcher scripts pass the name they were run as here (a shell script's $0). */
export const ARGV0_ENV = "KEYLIME_TS_ARGV0";

type Register = (program: Command) => void;
/**
 * Each subcommand's module, loaded only when that subcommand runs (or for help): a process evaluates only
 * what it uses, so the agent's idle memory and every start-up stay small (docs/binary.md).
 */
const SUBCOMMANDS: Record<string, () => Promise<Register>> = {
  tpm: async () => (await import("./cli/tpm.ts")).tpmCommand,
  agent: async () => (await import("./cli/agent.ts")).agentCommand,
  attest: async () => (await import("./cli/attest.ts")).attestCommand,
  demo: async () => (await import("./cli/demo.ts")).demoCommand,
  simulator: async () => (await import("./cli/simulator.ts")).simulatorCommand,
  registrar: async () => (await import("./cli/registrar.ts")).registrarCommand,
};

/** The subcommands `argv` needs: the one it names, none for --version alone, else all (help, errors). */
function needed(argv: readonly string[]): string[] {
  const first = argv.find((a) => !a.startsWith("-"));
  if (first !== undefined && first in SUBCOMMANDS) return [first];
  if (first === undefined && argv.length > 0 && argv.every((a) => a === "-V" || a === "--version")) return [];
  return Object.keys(SUBCOMMANDS);
}

export async function buildProgram(argv: readonly string[] = []): Promise<Command> {
  const program = new Command("keylime-ts")
    .description("Keylime-compatible attestation agent with its own TPM 2.0 stack")
    .version(VERSION)
    .showHelpAfterError()
    // `simulator --state` and `simulator ca --state` are different options of different commands.
    .enablePositionalOptions()
    .configureHelp({ sortSubcommands: true });
  for (const name of needed(argv)) (await SUBCOMMANDS[name]!())(program);
  return program;
}

export async function main(argv: string[]): Promise<void> {
  try {
    await (await buildProgram(argv)).parseAsync(argv, { from: "user" });
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
  const args = isAgentProgram() ? ["agent", "run"] : process.argv.slice(2);
  if (args[0] === "agent" && args[1] === "run") leaveOutOptimizingTiers();
  delete process.env[ARGV0_ENV];
  void main(args);
}

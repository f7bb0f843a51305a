/** Options and argument parsers shared by the CLI's subcommands. */
import { type Command, InvalidArgumentError, Option } from "commander";
import { envName } from "../agent/config_keys.ts";
import { ownerPasswordBytes } from "../agent/identity.ts";
import { TPM_RC } from "../tpm/constants.ts";
import { algByName } from "../tpm/crypto.ts";
import { TpmResponseError, TpmUsageError } from "../tpm/errors.ts";

export interface CommonOptions {
  tpm?: string;
  json?: boolean;
  timeout?: number;
}

export function positiveInt(what: string) {
  return (v: string) => {
    if (!/^\d+$/.test(v) || Number(v) <= 0) throw new InvalidArgumentError(`${what} must be a positive integer`);
    return Number(v);
  };
}

/** The options every `tpm` subcommand takes. */
export function common(cmd: Command): Command {
  return cmd
    .option(
      "--tpm <uri>",
      "TPM to use: device:/dev/tpmrm0, swtpm:host=H,port=P, swtpm:path=S, mssim:host=H,port=P, sim[:DIR] (embedded)",
    )
    .option("--json", "print the result as JSON")
    .option("--timeout <ms>", "give up when the TPM does not answer within this many ms", positiveInt("--timeout"));
}

/**
 * --owner-password: the endorsement hierarchy's password, as the agent's tpm_ownerpassword (text, or hex: and
 * hex digits), from the agent's environment variable when not given (a command line shows in ps).
 */
export function ownerPasswordOption(): Option {
  return new Option(
    "--owner-password <password>",
    "endorsement hierarchy password (tpm_ownerpassword; hex: for hex bytes)",
  )
    .env(envName("tpm_ownerpassword"))
    .argParser((v) => {
      try {
        return ownerPasswordBytes(v);
      } catch (e) {
        throw new InvalidArgumentError((e as Error).message);
      }
    });
}

/** EkOptions from --owner-password (an empty one is no password: ek.ts). */
export const endorsementAuthOf = (o: { ownerPassword?: Uint8Array }) =>
  o.ownerPassword ? { endorsementAuth: o.ownerPassword } : {};

/** The EK's creation refused for its authorization: say what to give (or that what was given is wrong). */
export async function explainEndorsementAuth<T>(o: { ownerPassword?: Uint8Array }, work: Promise<T>): Promise<T> {
  try {
    return await work;
  } catch (e) {
    if (!(e instanceof TpmResponseError && (e.is(TPM_RC.BAD_AUTH) || e.is(TPM_RC.AUTH_FAIL)))) throw e;
    const what = o.ownerPassword?.length
      ? "the owner password given is not the endorsement hierarchy's password"
      : `the endorsement hierarchy has a password: give it with --owner-password or ${envName("tpm_ownerpassword")}`;
    throw new TpmUsageError(`${e.message}: ${what}`, { cause: e });
  }
}

export const selection = (o: CommonOptions) => ({
  ...(o.tpm ? { tpm: o.tpm } : {}),
  ...(o.timeout ? { timeoutMs: o.timeout } : {}),
});

export function parsePcrList(v: string): number[] {
  const out = new Set<number>();
  for (const part of v.split(",")) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
    if (!m) throw new InvalidArgumentError(`"${part}" is not a PCR index or range (e.g. 0,1,2 or 0-7)`);
    const lo = Number(m[1]);
    const hi = m[2] === undefined ? lo : Number(m[2]);
    if (hi < lo || hi > 23) throw new InvalidArgumentError(`PCR range "${part}" must lie within 0-23`);
    for (let p = lo; p <= hi; p++) out.add(p);
  }
  return [...out].sort((a, b) => a - b);
}

export function parseBanks(v: string): number[] {
  return v.split(",").map((name) => {
    const alg = algByName(name.trim());
    if (alg === undefined || !/^sha/i.test(name.trim())) {
      throw new InvalidArgumentError(`"${name}" is not a PCR bank (sha1, sha256, sha384, sha512)`);
    }
    return alg;
  });
}

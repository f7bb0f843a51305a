/** Options and argument parsers shared by the CLI's subcommands. */
import { type Command, InvalidArgumentError } from "commander";
import { algByName } from "../tpm/crypto.ts";

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

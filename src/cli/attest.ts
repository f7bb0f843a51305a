/**
 * `keylime-ts attest` (run one attestation, or one every --watch seconds) and `keylime-ts attest policy`
 * (a policy from the agent's quoted PCRs). Builds the inputs (TLS files, the TPM CA store, the policy, the
 * state) and hands them to src/attest; exit status 0 only when every check passed.
 */
import { type Command, InvalidArgumentError } from "commander";
import { readFile } from "node:fs/promises";
import { attestPolicyJson, parseAttestPolicy, policyFromPcrs } from "../protocol/attest_policy.ts";
import { agentId } from "../protocol/registrar_api.ts";
import { parseField } from "../protocol/schema.ts";
import { defaultTpmCaFiles } from "../registrar/default_tpm_ca.ts";
import { EkTrustStore, readCaFiles } from "../registrar/ek_trust.ts";
import { currentPcrs } from "../attest/current_pcrs.ts";
import { readTenantTls } from "../attest/tls_dir.ts";
import { parseBanks, parsePcrList, positiveInt } from "./options.ts";
import { progress } from "./output.ts";
import { runAttest } from "./attest_run.ts";

export interface PeerOptions {
  registrar: string;
  tlsDir: string;
  uuid: string;
}

const collect = (v: string, prev: string[] = []) => [...prev, v];

export function hostPort(v: string): string {
  const m = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):([0-9]{1,5})$/.exec(v);
  if (!m || Number(m[2]) < 1 || Number(m[2]) > 65535) {
    throw new InvalidArgumentError(`"${v}" is not HOST:PORT (the registrar's TLS port, e.g. 127.0.0.1:8891)`);
  }
  return v;
}

function uuidOption(v: string): string {
  try {
    return parseField("--uuid", agentId, v);
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message);
  }
}

/** The options both subcommands take to reach the registrar and the agent. */
function peerOptions(cmd: Command): Command {
  return cmd
    .requiredOption("--registrar <host:port>", "the registrar's TLS (tenant) port", hostPort)
    .requiredOption(
      "--tls-dir <dir>",
      "cacert.crt, client-cert.crt, client-private.pem (upstream's layout): the client certificate for the " +
        "registrar and the agent",
    )
    .requiredOption("--uuid <uuid>", "the agent's UUID", uuidOption);
}

export async function readPolicyFile(file: string) {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (e) {
    throw new Error(`--policy ${file}: ${(e as Error).message}`);
  }
  try {
    return parseAttestPolicy(text);
  } catch (e) {
    (e as Error).message = `--policy ${file}: ${(e as Error).message}`;
    throw e;
  }
}

export async function ekTrustFrom(dirs: readonly string[] = []): Promise<EkTrustStore> {
  // The same store as the registrar's (data/tpm-ca, embedded in the single executable) plus --tpm-ca-dir.
  return EkTrustStore.fromFiles([...await defaultTpmCaFiles(), ...await readCaFiles(dirs)]);
}

export function attestCommand(program: Command): void {
  const attest = program
    .command("attest")
    .description("attest an agent: registrar record, EK certificate, NK binding, quote, policy, IMA and UEFI logs");

  peerOptions(attest.command("run", { isDefault: true }))
    .description("attest the agent once (or every --watch seconds); exit 0 only when every check passed")
    .option("--policy <file>", 'JSON: {"pcrs": {"sha256": {"<pcr>": ["<hex>", ...]}}, "uefi_log": true|false}')
    .option("--uefi-log", "replay the UEFI event log against PCRs 0-7 (also when the policy says uefi_log)")
    .option("--tpm-ca-dir <dir>", "more TPM manufacturer CA certificates besides data/tpm-ca (repeatable)", collect)
    .option(
      "--state-dir <dir>",
      "where the last clock, NK and IMA position are kept (default ~/.local/state/keylime-ts/attest)",
    )
    .option("--json", "print the report as JSON (one line per round with --watch)")
    .option("--watch <seconds>", "attest again every so many seconds and report what changed", positiveInt("--watch"))
    .option("--count <n>", "with --watch: stop after this many rounds", positiveInt("--count"))
    .action(runAttest);

  peerOptions(attest.command("policy"))
    .description("print a policy allowing the PCR values the agent quotes now (the quote is verified first)")
    .requiredOption("--pcrs <list>", "PCRs to include, e.g. 0-7,23", parsePcrList)
    .option("--bank <alg>", "the PCR bank (the agent quotes its tpm_hash_alg bank; default: that one)")
    .option("--uefi-log", "also ask attest to replay the UEFI log (uefi_log: true)")
    .action(async (o: PeerOptions & { pcrs: number[]; bank?: string; uefiLog?: boolean }) => {
      const tls = await readTenantTls(o.tlsDir);
      progress("quoting the agent's PCRs...");
      const bank = o.bank === undefined ? undefined : parseBanks(o.bank)[0];
      const { hashAlg, values } = await currentPcrs({
        registrar: o.registrar,
        uuid: o.uuid,
        pcrs: o.pcrs,
        tls,
        ...(bank !== undefined ? { bank } : {}),
      });
      process.stdout.write(attestPolicyJson(policyFromPcrs(hashAlg, values, !!o.uefiLog)));
    });
}

/** `keylime-ts tpm ...`: look at and use a TPM (info, pcrs, ek, random, startup, ak, quote). */
import { type Command, Option } from "commander";
import { getTpmInfo } from "../tpm/capabilities.ts";
import { GetRandom, Startup } from "../tpm/commands.ts";
import { TPM_RC, TPM_SU } from "../tpm/constants.ts";
import { algName } from "../tpm/crypto.ts";
import { TpmResponseError } from "../tpm/errors.ts";
import { ekReport } from "../tpm/ek.ts";
import { EK_ALGS, type EkAlg } from "../tpm/templates.ts";
import { pcrRead, pcrSelection } from "../tpm/pcrs.ts";
import { handleHex, hex, print, printJson, progress } from "./output.ts";
import { withTpm } from "./select_tpm.ts";
import {
  common,
  type CommonOptions,
  endorsementAuthOf,
  explainEndorsementAuth,
  ownerPasswordOption,
  parseBanks,
  parsePcrList,
  positiveInt,
  selection,
} from "./options.ts";
import { tpmAkCommand, tpmQuoteCommand } from "./tpm_keys.ts";
import { toPem } from "../util/encoding.ts";

export function tpmCommand(program: Command): void {
  const tpm = program.command("tpm").description("inspect and use a TPM 2.0");

  common(tpm.command("info").description("manufacturer, vendor strings, firmware, PCR banks, algorithms, handles"))
    .action(async (o: CommonOptions) => {
      const info = await withTpm(selection(o), getTpmInfo);
      if (o.json) return printJson(info);
      print(`manufacturer:      ${info.manufacturer}`);
      print(`vendor:            ${info.vendorString}`);
      print(`family / revision: ${info.family} / ${info.revision} (level ${info.level}, ${info.specDate})`);
      print(`firmware:          ${info.firmwareVersion}`);
      print(
        `buffers:           command ${info.maxCommandSize}, response ${info.maxResponseSize}, NV ${info.nvBufferMax}`,
      );
      print(`transient slots:   ${info.transientSlots}, sessions ${info.activeSessionsMax}, PCRs ${info.pcrCount}`);
      for (const b of info.pcrBanks) {
        print(`PCR bank ${b.name.padEnd(8)} ${b.pcrs.length ? b.pcrs.join(",") : "(not allocated)"}`);
      }
      print(`algorithms:        ${info.algorithms.map((a) => a.name).join(" ")}`);
      print(`persistent:        ${info.persistentHandles.map(handleHex).join(" ") || "(none)"}`);
      print(`NV indices:        ${info.nvIndices.map(handleHex).join(" ") || "(none)"}`);
    });

  common(tpm.command("pcrs").description("read PCR values"))
    .addOption(
      new Option("--bank <names>", "PCR bank(s), comma separated").default([0x000b], "sha256").argParser(parseBanks),
    )
    .addOption(
      new Option("--pcrs <list>", "PCR indices, e.g. 0,1,2 or 0-7").default(parsePcrList("0-23"), "0-23").argParser(
        parsePcrList,
      ),
    )
    .action(async (o: CommonOptions & { bank: number[]; pcrs: number[] }) => {
      const r = await withTpm(selection(o), (t) => pcrRead(t, o.bank.map((b) => pcrSelection(b, o.pcrs))));
      if (o.json) {
        const banks = Object.fromEntries(
          [...r.values].map(([alg, m]) => [algName(alg), Object.fromEntries([...m].map(([i, d]) => [i, hex(d)]))]),
        );
        return printJson({ updateCounter: r.updateCounter, ...banks });
      }
      for (const [alg, m] of r.values) {
        print(`  ${algName(alg)}:`);
        for (const [i, d] of m) print(`    ${String(i).padEnd(2)}: 0x${hex(d).toUpperCase()}`); // tpm2_pcrread's layout
      }
    });

  common(tpm.command("ek").description("EK public key (PEM), EK certificate (PEM) from NV, and whether they match"))
    .addOption(
      new Option("--alg <alg>", "EK template: rsa (L-1 RSA-2048), ecc (L-2 P-256), rsa3072, rsa4096, ecc384, ecc521")
        .choices([...EK_ALGS])
        .default("rsa"),
    )
    .addOption(ownerPasswordOption())
    .action(async (o: CommonOptions & { alg: EkAlg; ownerPassword?: Uint8Array }) => {
      progress(`Creating the ${o.alg.toUpperCase()} EK from its template (seconds on a hardware TPM)...`);
      const r = await withTpm(selection(o), (t) => explainEndorsementAuth(o, ekReport(t, o.alg, endorsementAuthOf(o))));
      if (o.json) {
        return printJson({
          alg: r.alg,
          name: r.name,
          publicKeyPem: r.publicKeyPem,
          certificate: r.certificate && {
            pem: r.certificate.pem,
            subject: r.certificate.subject,
            issuer: r.certificate.issuer,
            notAfter: r.certificate.notAfter.toISOString(),
            matchesEk: r.certificate.matchesEk,
          },
          chain: r.chain.map((der: Uint8Array) => toPem("CERTIFICATE", der)),
        });
      }
      print(`# EK (${r.alg}) name ${hex(r.name)}`);
      process.stdout.write(r.publicKeyPem);
      if (r.chain.length) print(`# EK CA chain in NV: ${r.chain.length} certificate(s)`);
      if (!r.certificate) return print("# no EK certificate in NV");
      print(`# EK certificate: subject "${r.certificate.subject}", issuer "${r.certificate.issuer}"`);
      print(`# certificate key matches the EK: ${r.certificate.matchesEk ? "yes" : "NO"}`);
      process.stdout.write(r.certificate.pem);
      if (!r.certificate.matchesEk) process.exitCode = 2;
    });

  common(tpm.command("random").description("N random bytes from the TPM, as hex"))
    .argument("<N>", "number of bytes", positiveInt("N"))
    .action(async (n: number, o: CommonOptions) => {
      const bytes = await withTpm(selection(o), async (t) => {
        const out: Uint8Array[] = [];
        for (let have = 0; have < n;) {
          const r = await t.execute(GetRandom, { bytesRequested: Math.min(n - have, 64) });
          if (r.randomBytes.length === 0) throw new Error("TPM2_GetRandom returned no bytes");
          out.push(r.randomBytes);
          have += r.randomBytes.length;
        }
        return Buffer.concat(out).subarray(0, n);
      });
      if (o.json) return printJson({ bytes: new Uint8Array(bytes) });
      print(hex(bytes));
    });

  common(tpm.command("startup").description("send TPM2_Startup (needed once after a simulator powers on)"))
    .option("--state", "TPM_SU_STATE (resume) instead of TPM_SU_CLEAR")
    .action(async (o: CommonOptions & { state?: boolean }) => {
      const already = await withTpm(selection(o), async (t) => {
        try {
          await t.execute(Startup, { startupType: o.state ? TPM_SU.STATE : TPM_SU.CLEAR });
          return false;
        } catch (e) {
          if (e instanceof TpmResponseError && e.is(TPM_RC.INITIALIZE)) return true;
          throw e;
        }
      });
      if (o.json) return printJson({ started: true, alreadyStarted: already });
      print(already ? "TPM was already started" : "TPM started");
    });
  tpmAkCommand(tpm);
  tpmQuoteCommand(tpm);
}

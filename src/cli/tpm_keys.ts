/** `keylime-ts tpm ak` and `keylime-ts tpm quote`: the AK under the EK, and Keylime quotes with it. */
import { type Command, InvalidArgumentError, Option } from "commander";
import { encodePcrBlob } from "../protocol/pcr_blob.ts";
import { encodeQuote } from "../protocol/quote.ts";
import { loadOrCreateAk } from "../agent/identity.ts";
import { createAk, loadAk } from "../tpm/ak.ts";
import { type AkAlgorithms, parseAkKey } from "../tpm/templates.ts";
import type { Tpm } from "../tpm/client.ts";
import { TPM_ALG } from "../tpm/constants.ts";
import { algByName, algName, publicKeyPem } from "../tpm/crypto.ts";
import { createEk, type Ek, persistentEk, releaseEk } from "../tpm/ek.ts";
import { EK_ALGS, type EkAlg } from "../tpm/templates.ts";
import { encode } from "../tpm/marshal.ts";
import { flush, type LoadedKey } from "../tpm/objects.ts";
import { quote } from "../tpm/quote.ts";
import { TPM2B_PUBLIC } from "../tpm/structures.ts";
import { writeQuoteFiles } from "../tpm/tpm2_tools_files.ts";
import {
  common,
  type CommonOptions,
  endorsementAuthOf,
  explainEndorsementAuth,
  ownerPasswordOption,
  parsePcrList,
  selection,
} from "./options.ts";
import { hex, print, printJson, progress, warn } from "./output.ts";
import { withTpm } from "./select_tpm.ts";
import { toBase64 } from "../util/encoding.ts";

interface AkOptions extends CommonOptions {
  ekAlg: EkAlg;
  ekHandle?: number;
  key: string;
  hash: number;
  sign?: number;
  akFile?: string;
  ownerPassword?: Uint8Array;
}

const SIGN_SCHEMES: Record<string, number> = {
  rsassa: TPM_ALG.RSASSA,
  rsapss: TPM_ALG.RSAPSS,
  ecdsa: TPM_ALG.ECDSA,
  ecschnorr: TPM_ALG.ECSCHNORR,
};

function parseHash(v: string): number {
  const alg = algByName(v.trim());
  if (alg === undefined || ![TPM_ALG.SHA1, TPM_ALG.SHA256, TPM_ALG.SHA384, TPM_ALG.SHA512].includes(alg as 4)) {
    throw new InvalidArgumentError(`"${v}" is not a hash algorithm (sha1, sha256, sha384, sha512)`);
  }
  return alg;
}

function parseHandle(v: string): number {
  if (!/^0x81[0-9a-f]{6}$/i.test(v)) throw new InvalidArgumentError(`"${v}" is not a persistent handle (0x81xxxxxx)`);
  return Number(v);
}

/** The options that choose the EK and the AK, as Keylime's agent configuration names them. */
function akOptions(cmd: Command): Command {
  return common(cmd)
    .addOption(new Option("--ek-alg <alg>", "EK template (tpm_encryption_alg)").choices([...EK_ALGS]).default("rsa"))
    .option(
      "--ek-handle <handle>",
      "use the EK persisted at this handle (ek_handle) instead of a template",
      parseHandle,
    )
    .option("--key <alg>", "AK key: rsa, rsa2048..rsa4096, ecc, ecc256..ecc521", "rsa")
    .option("--hash <alg>", "AK name and signing hash (tpm_hash_alg)", parseHash, TPM_ALG.SHA256)
    .addOption(
      new Option("--sign <scheme>", "AK signing scheme (tpm_signing_alg); default rsassa or ecdsa")
        .choices(Object.keys(SIGN_SCHEMES))
        .argParser((v) => SIGN_SCHEMES[v]!),
    )
    .option(
      "--ak-file <file>",
      "agent_data.json (rust-keylime's format) to load the AK from, or to create it and save it in (mode 0600)",
    )
    .addOption(ownerPasswordOption());
}

interface OpenedAk {
  readonly ek: Ek;
  readonly ak: LoadedKey;
  readonly created: boolean;
}

/**
 * The EK, and the AK: with --ak-file, loaded from that agent_data.json (rust-keylime's format) when
 * it was made for this EK and these algorithms, else created and saved there; without, a fresh AK.
 */
async function openAk(tpm: Tpm, o: AkOptions): Promise<OpenedAk> {
  progress(o.ekHandle ? `Using the EK at 0x${o.ekHandle.toString(16)}...` : `Creating the ${o.ekAlg} EK...`);
  const auth = endorsementAuthOf(o);
  const ek = await explainEndorsementAuth(
    o,
    o.ekHandle !== undefined ? persistentEk(tpm, o.ekHandle, auth) : createEk(tpm, o.ekAlg, auth),
  );
  try {
    const key = parseAkKey(o.key);
    const algs: Required<AkAlgorithms> = {
      key,
      hashAlg: o.hash,
      signAlg: o.sign ?? (key.type === "rsa" ? TPM_ALG.RSASSA : TPM_ALG.ECDSA),
    };
    if (o.akFile) return { ek, ...await loadOrCreateAk(tpm, ek, algs, o.akFile) };
    progress("Creating the AK under the EK...");
    const made = await createAk(tpm, ek, algs);
    return { ek, ak: await loadAk(tpm, ek, made), created: true };
  } catch (e) {
    await releaseEk(tpm, ek);
    throw e;
  }
}

async function closeAk(tpm: Tpm, opened: OpenedAk): Promise<void> {
  await flush(tpm, opened.ak.handle);
  await releaseEk(tpm, opened.ek);
}

/** Keylime's aik_tpm: base64 of the TPM2B_PUBLIC, size included. */
const aikTpm = (ak: LoadedKey) => toBase64(encode(TPM2B_PUBLIC, ak.public));

export function tpmAkCommand(tpm: Command): void {
  akOptions(tpm.command("ak").description("create (or load from --ak-file) the AK under the EK; print its public part"))
    .action(async (o: AkOptions) => {
      const r = await withTpm(selection(o), async (t) => {
        const opened = await openAk(t, o);
        try {
          return { created: opened.created, ak: opened.ak, ek: opened.ek };
        } finally {
          await closeAk(t, opened);
        }
      });
      const out = {
        created: r.created,
        name: hex(r.ak.name),
        aikTpm: aikTpm(r.ak),
        nameAlg: algName(r.ak.public.nameAlg),
        publicKeyPem: publicKeyPem(r.ak.public),
        ekName: hex(r.ek.name),
      };
      if (o.json) return printJson(out);
      print(`# AK ${r.created ? "created" : "loaded"}${o.akFile ? ` (${o.akFile})` : ""}, name ${out.name}`);
      print(`# aik_tpm ${out.aikTpm}`);
      process.stdout.write(out.publicKeyPem);
    });
}

export function tpmQuoteCommand(tpm: Command): void {
  akOptions(tpm.command("quote").description("quote PCRs with the AK and print the Keylime quote string"))
    .requiredOption("--nonce <nonce>", "the verifier's nonce; its ASCII bytes are the quote's qualifyingData")
    .requiredOption("--pcrs <list>", "PCR indices of the --hash bank, e.g. 0,1,10", parsePcrList)
    .option("--out-dir <dir>", "also write ak.pub, quote.msg, quote.sig, quote.pcrs for tpm2_checkquote")
    .action(async (o: AkOptions & { nonce: string; pcrs: number[]; outDir?: string }) => {
      if (!o.akFile) warn("no --ak-file: quoting with a fresh AK that is not kept");
      const nonce = new TextEncoder().encode(o.nonce);
      const r = await withTpm(selection(o), async (t) => {
        const opened = await openAk(t, o);
        try {
          return { ak: opened.ak, q: await quote(t, opened.ak, { nonce, pcrs: o.pcrs, hashAlg: o.hash }) };
        } finally {
          await closeAk(t, opened);
        }
      });
      const pcrBlob = encodePcrBlob([r.q.selection], [[...r.q.pcrs.values()]]);
      const quoteString = encodeQuote({ attest: r.q.attest, signature: r.q.signature, pcrBlob });
      if (o.outDir) {
        await writeQuoteFiles(o.outDir, {
          akPublic: r.ak.public,
          attest: r.q.attest,
          signature: r.q.signature,
          pcrs: pcrBlob,
        });
      }
      if (o.json) {
        return printJson({
          quote: quoteString,
          aikTpm: aikTpm(r.ak),
          nonce: o.nonce,
          hashAlg: algName(o.hash),
          pcrs: Object.fromEntries([...r.q.pcrs].map(([i, v]) => [i, hex(v)])),
        });
      }
      print(quoteString);
    });
}

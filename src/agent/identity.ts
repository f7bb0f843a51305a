/**
 * The agent's identity, from its configuration and its TPM (keylime.md §3): the EK (template of
 * tpm_encryption_alg, or the persistent ek_handle), the EK certificate and the CA chain in NV, the AK
 * (loaded from agent_data.json when it fits, else created and saved: rust-keylime's reuse rule), the
 * UUID, the NK and the mTLS key and certificate. Upstream: keylime/rust-keylime keylime-agent/src/main.rs,
 * keylime/src/agent_data.rs, keylime/src/hash_ek.rs, keylime/src/config/base.rs (get_uuid).
 */
import { Buffer } from "node:buffer";
import { createHash, type KeyObject, randomUUID, X509Certificate as NodeX509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { hostname } from "node:os";
import { createAk, loadAk } from "../tpm/ak.ts";
import type { Tpm } from "../tpm/client.ts";
import { TPM_ALG } from "../tpm/constants.ts";
import { algByName, publicKeyOf, publicKeyPem, sameKey } from "../tpm/crypto.ts";
import { createEk, type Ek, persistentEk, readEkCertChain, readEkCertificate, releaseEk } from "../tpm/ek.ts";
import type { ExternalKeyUse } from "../tpm/external_key.ts";
import { encode } from "../tpm/marshal.ts";
import { flush, type LoadedKey } from "../tpm/objects.ts";
import { TPM2B_PUBLIC, type TPMT_PUBLIC } from "../tpm/structures.ts";
import { type AkAlgorithms, EK_TEMPLATES, type EkAlg, parseAkKey } from "../tpm/templates.ts";
import { toPem } from "../util/encoding.ts";
import type { AgentConfig, AgentPaths } from "./config.ts";
import { ConfigError } from "./errors.ts";
import { type AgentLog, MSG } from "./messages.ts";
import {
  type AgentData,
  agentDataFits,
  type CertificateMaker,
  type KeyFile,
  loadAgentData,
  loadOrCreateMtls,
  loadOrCreateNk,
  type MtlsIdentity,
  saveAgentData,
} from "./state.ts";

/** tpm_encryption_alg spellings that have a TCG EK template here (rust-keylime algorithms.rs names). */
const EK_FOR: Readonly<Record<string, EkAlg>> = {
  rsa: "rsa",
  rsa2048: "rsa",
  rsa3072: "rsa3072",
  rsa4096: "rsa4096",
  ecc: "ecc",
  ecc256: "ecc",
  ecc_nist_p256: "ecc",
  ecc384: "ecc384",
  ecc_nist_p384: "ecc384",
  ecc521: "ecc521",
  ecc_nist_p521: "ecc521",
};

const SIGN_FOR: Readonly<Record<string, number>> = {
  rsassa: TPM_ALG.RSASSA,
  rsapss: TPM_ALG.RSAPSS,
  ecdsa: TPM_ALG.ECDSA,
  ecschnorr: TPM_ALG.ECSCHNORR,
};

/** The AK algorithms of a configuration; a signing scheme that does not fit the key is ERR_CONFIG. */
export function akAlgorithms(c: AgentConfig): Required<AkAlgorithms> {
  const key = parseAkKey(c.tpm_encryption_alg);
  const signAlg = SIGN_FOR[c.tpm_signing_alg]!;
  const hashAlg = algByName(c.tpm_hash_alg)!;
  const rsaScheme = signAlg === TPM_ALG.RSASSA || signAlg === TPM_ALG.RSAPSS;
  if ((key.type === "rsa") !== rsaScheme) {
    const fit = key.type === "rsa" ? `"rsassa" or "rsapss"` : `"ecdsa" or "ecschnorr"`;
    throw new ConfigError(
      `tpm_signing_alg = "${c.tpm_signing_alg}" does not fit tpm_encryption_alg = "${c.tpm_encryption_alg}"; set tpm_signing_alg to ${fit}`,
    );
  }
  return { key, signAlg, hashAlg };
}

/** The EK template of tpm_encryption_alg, or ERR_CONFIG when there is none. */
export function ekAlgOf(c: AgentConfig): EkAlg {
  const alg = EK_FOR[c.tpm_encryption_alg];
  if (!alg) {
    throw new ConfigError(
      `tpm_encryption_alg = "${c.tpm_encryption_alg}" has no TCG EK template; use one of ${
        Object.keys(EK_FOR).join(", ")
      }, or set ek_handle to a persistent EK`,
    );
  }
  return alg;
}

/** tpm_ownerpassword as bytes: `hex:` and hex digits, else the text's UTF-8 (rust-keylime keylime-agent main.rs). */
export function ownerPasswordOf(c: AgentConfig): Uint8Array {
  return ownerPasswordBytes(c.tpm_ownerpassword);
}

/** A tpm_ownerpassword value as bytes (also the CLI's --owner-password); ConfigError naming the key. */
export function ownerPasswordBytes(v: string): Uint8Array {
  const hex = v.startsWith("hex:") ? v.slice(4) : undefined;
  if (hex !== undefined && !/^(?:[0-9a-fA-F]{2})*$/.test(hex)) {
    throw new ConfigError("tpm_ownerpassword: after hex: an even number of hex digits is expected");
  }
  const bytes = hex !== undefined ? Buffer.from(hex, "hex") : Buffer.from(v, "utf8");
  // TPM2B_AUTH holds at most the largest digest (SHA-512).
  if (bytes.length > 64) throw new ConfigError(`tpm_ownerpassword: ${bytes.length} bytes, at most 64 are allowed`);
  return new Uint8Array(bytes);
}

/**
 * The EK the configuration names: the persistent one at ek_handle, or the one created from the template of
 * tpm_encryption_alg; its uses authorize the endorsement hierarchy with tpm_ownerpassword.
 */
export async function openEk(tpm: Tpm, c: AgentConfig): Promise<Ek> {
  const o = { endorsementAuth: ownerPasswordOf(c) };
  const persistent = c.ek_handle !== "" && c.ek_handle !== "generate";
  return persistent ? await persistentEk(tpm, Number(c.ek_handle), o) : await createEk(tpm, ekAlgOf(c), o);
}

/** The EK template kind whose NV certificate index belongs to this EK public area (a persistent EK). */
export function ekAlgOfPublic(pub: TPMT_PUBLIC): EkAlg | undefined {
  for (const [alg, t] of Object.entries(EK_TEMPLATES) as [EkAlg, TPMT_PUBLIC][]) {
    if (t.type !== pub.type || t.nameAlg !== pub.nameAlg) continue;
    const a = t.parameters as { keyBits?: number; curveID?: number };
    const b = pub.parameters as { keyBits?: number; curveID?: number };
    if (a.keyBits === b.keyBits && a.curveID === b.curveID) return alg;
  }
  return undefined;
}

/** rust-keylime hash_ek: lowercase hex SHA-256 of the EK's SubjectPublicKeyInfo PEM (OpenSSL's layout). */
export function hashEk(ek: TPMT_PUBLIC): string {
  return createHash("sha256").update(publicKeyPem(ek)).digest("hex");
}

const UUID_RE = /^(?:urn:uuid:)?\{?([0-9a-f]{8})-?([0-9a-f]{4})-?([0-9a-f]{4})-?([0-9a-f]{4})-?([0-9a-f]{12})\}?$/i;

/**
 * The agent UUID of the `uuid` key: a UUID as given (normalized as uuid::Uuid prints it), generate,
 * hash_ek, dmidecode (the SMBIOS system UUID), hostname; anything else becomes a random UUID with a
 * warning (rust-keylime get_uuid).
 */
export function resolveUuid(value: string, ek: TPMT_PUBLIC, log: AgentLog): string {
  switch (value) {
    case "generate": {
      const uuid = randomUUID();
      log.info(MSG.uuidGenerated(uuid));
      return uuid;
    }
    case "hash_ek": {
      const uuid = hashEk(ek);
      log.info(MSG.uuidHashEk(uuid));
      return uuid;
    }
    case "dmidecode":
      try {
        return readFileSync("/sys/class/dmi/id/product_uuid", "utf8").trim().toLowerCase();
      } catch (e) {
        throw new ConfigError(`uuid = "dmidecode": cannot read the system UUID (${(e as Error).message})`, {
          cause: e,
        });
      }
    case "hostname":
      return hostname();
  }
  const m = UUID_RE.exec(value);
  if (m) return m.slice(1).join("-").toLowerCase();
  const uuid = randomUUID();
  log.warn(MSG.uuidMisformatted(value, uuid));
  return uuid;
}

/** Everything the agent registers with. */
export interface AgentIdentity {
  readonly uuid: string;
  readonly ek: Ek;
  /** base64 of this is `ek_tpm`: TPM2B_PUBLIC, size included. */
  readonly ekTpm: Uint8Array;
  /** The EK certificate then the NV chain, as PEM; "" when the TPM holds no EK certificate. */
  readonly ekCertPem: string;
  readonly ekHash: string;
  readonly ak: LoadedKey;
  /** base64 of this is `aik_tpm`. */
  readonly akTpm: Uint8Array;
  readonly akCreated: boolean;
  readonly nk: KeyFile;
  /** null when enable_agent_mtls is false (the registrar is sent "disabled"). */
  readonly mtls: MtlsIdentity | null;
}

const certPem = (der: Uint8Array) => toPem("CERTIFICATE", der);

/** EK certificate and chain as PEM, or "" with a one-line notice when there is none or it cannot be read. */
async function ekCertificates(tpm: Tpm, ek: Ek, alg: EkAlg | undefined, log: AgentLog): Promise<string> {
  if (!alg) {
    log.warn(MSG.noEkCert("no TCG EK certificate index for this EK's key type"));
    return "";
  }
  let cert: Uint8Array | null;
  let chain: Uint8Array[];
  try {
    cert = await readEkCertificate(tpm, alg);
    chain = cert ? await readEkCertChain(tpm) : [];
  } catch (e) {
    log.warn(MSG.noEkCert(`reading NV failed: ${(e as Error).message}`));
    return "";
  }
  if (!cert) {
    log.warn(MSG.noEkCert("its NV index is not defined"));
    return "";
  }
  try {
    // node:crypto's native parser: the EK certificate is read on every start.
    if (!sameKey(new NodeX509Certificate(cert).publicKey, publicKeyOf(ek.public))) {
      log.warn(MSG.noEkCert("the certificate in NV is for another key than this EK"));
      return "";
    }
    return [cert, ...chain].map(certPem).join("");
  } catch (e) {
    log.warn(MSG.noEkCert(`the NV contents are not a DER certificate: ${(e as Error).message}`));
    return "";
  }
}

/**
 * The AK of agent_data.json at `path` when it fits the algorithms and the EK (rust-keylime's reuse
 * rule); else a new AK under the EK, saved there (0600). Loaded either way.
 */
export async function loadOrCreateAk(
  tpm: Tpm,
  ek: Ek,
  algs: Required<AkAlgorithms>,
  path: string,
  log?: AgentLog,
  /** agent_data.json already being read (an agent reads it while the TPM makes the EK). */
  reading: Promise<AgentData | null> = loadAgentData(path),
): Promise<{ ak: LoadedKey; created: boolean }> {
  const ekHash = hashEk(ek.public);
  const saved = await reading;
  if (saved && agentDataFits(saved, algs.hashAlg, algs.signAlg, ekHash)) {
    const ak = await loadAk(tpm, ek, saved.ak);
    log?.info(MSG.akLoaded(path));
    return { ak, created: false };
  }
  const made = await createAk(tpm, ek, algs);
  const data: AgentData = { akHashAlg: algs.hashAlg, akSignAlg: algs.signAlg, ak: made, ekHash };
  await saveAgentData(path, data);
  log?.info(
    MSG.akCreated(path, saved ? "agent_data.json was made for another EK or algorithms" : "no agent_data.json"),
  );
  return { ak: await loadAk(tpm, ek, made), created: true };
}

/** Open the whole identity; the EK and AK stay loaded until closeIdentity. */
export async function openIdentity(
  tpm: Tpm,
  c: AgentConfig,
  paths: AgentPaths,
  log: AgentLog,
  o: { makeCertificate?: CertificateMaker | undefined } = {},
): Promise<AgentIdentity> {
  const persistent = c.ek_handle !== "" && c.ek_handle !== "generate";
  const ekAlg = persistent ? undefined : ekAlgOf(c);
  ownerPasswordOf(c);
  akAlgorithms(c); // configuration errors before any TPM work
  // The files need no TPM: read them while the TPM works (awaited, and so reported, below).
  const dirReady = mkdir(paths.keylimeDir, { recursive: true, mode: 0o700 });
  // With mTLS on, U and V stay RSA-OAEP (upstream tenants); without it, transport_key_alg chooses.
  const nkAlg = c.enable_agent_mtls ? "rsa" : c.transport_key_alg as "rsa" | "ecc";
  const nkFile = dirReady.then(() => loadOrCreateNk(paths.payloadKey, c.payload_key_password, nkAlg));
  const savedAk = loadAgentData(paths.agentData);
  nkFile.catch(() => {});
  savedAk.catch(() => {});
  dirReady.catch(() => {});
  const ek = await openEk(tpm, c);
  let ak: LoadedKey | undefined;
  try {
    await dirReady;
    const ekHash = hashEk(ek.public);
    const uuid = resolveUuid(c.uuid, ek.public, log);
    const mtlsFiles = c.enable_agent_mtls
      ? loadOrCreateMtls(paths.serverKey, paths.serverCert, {
        password: c.server_key_password,
        uuid,
        contactIp: c.contact_ip,
        warn: (m) => log.warn(m),
        makeCertificate: o.makeCertificate,
      })
      : Promise.resolve(null);
    mtlsFiles.catch(() => {});
    const opened = await loadOrCreateAk(tpm, ek, akAlgorithms(c), paths.agentData, log, savedAk);
    ak = opened.ak;
    const ekCertPem = await ekCertificates(tpm, ek, ekAlg ?? ekAlgOfPublic(ek.public), log);
    const nk = await nkFile;
    if (nk.created) log.info(MSG.nkCreated(paths.payloadKey));
    const mtls = await mtlsFiles;
    if (mtls?.certCreated) log.info(MSG.mtlsCreated(paths.serverCert));
    return {
      uuid,
      ek,
      ekTpm: encode(TPM2B_PUBLIC, ek.public),
      ekCertPem,
      ekHash,
      ak,
      akTpm: encode(TPM2B_PUBLIC, ak.public),
      akCreated: opened.created,
      nk,
      mtls,
    };
  } catch (e) {
    if (ak) await flush(tpm, ak.handle).catch(() => {});
    await releaseEk(tpm, ek).catch(() => {});
    throw e;
  }
}

/** The key TPM2_Certify binds (spec/nk-certify.md, Terms), as LoadExternal takes it. */
export interface CertifiedNk {
  readonly privateKey: KeyObject;
  /** Its SubjectPublicKeyInfo PEM: `transport_key`, and `pubkey` of an identity proof by certification. */
  readonly pem: string;
  /** sign for a signing NK (the mTLS key, an EC transport key); decrypt for an RSA transport key. */
  readonly use: ExternalKeyUse;
}

/** The NK the AK certifies: the mTLS key when mTLS is on, else the NK file sent as transport_key. */
export function certifiedNk(id: Pick<AgentIdentity, "nk" | "mtls">): CertifiedNk {
  const key = id.mtls?.key ?? id.nk;
  const use = !id.mtls && key.privateKey.asymmetricKeyType === "rsa" ? "decrypt" : "sign";
  return { privateKey: key.privateKey, pem: key.publicKey.export({ format: "pem", type: "spki" }).toString(), use };
}

/** Flush the AK and a created EK (a persistent EK stays). */
export async function closeIdentity(tpm: Tpm, id: AgentIdentity): Promise<void> {
  await flush(tpm, id.ak.handle);
  await releaseEk(tpm, id.ek);
}

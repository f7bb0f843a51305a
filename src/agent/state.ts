/**
 * What the agent keeps under keylime_dir between runs (keylime.md §3): agent_data.json in
 * rust-keylime's format (so a file written by the Rust agent loads unchanged and the registrar sees
 * the same AK), the NK (payload_key, RSA-2048) and the mTLS key (EC P-256) with its self-signed
 * certificate. Every file is written atomically with mode 0600; every file read is untrusted input.
 * Upstream: keylime/rust-keylime keylime/src/agent_data.rs, keylime/src/algorithms.rs,
 * keylime/src/crypto/x509.rs, keylime-agent/src/main.rs.
 */
import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  randomBytes,
  webcrypto,
  X509Certificate as NodeX509Certificate,
} from "node:crypto";
import { readFile } from "node:fs/promises";
import { isIP } from "node:net";
import type { SavedAk } from "../tpm/ak.ts";
import { TPM_ALG } from "../tpm/constants.ts";
import { decode, encode } from "../tpm/marshal.ts";
import { TPM2B_PRIVATE, TPMT_PUBLIC } from "../tpm/structures.ts";
import { writeFileAtomic } from "../util/atomic_file.ts";
import { AgentStateError } from "./errors.ts";

/** serde names of rust-keylime's HashAlgorithm and SignAlgorithm enums. */
const HASH_NAMES: Readonly<Record<string, number>> = {
  Sha1: TPM_ALG.SHA1,
  Sha256: TPM_ALG.SHA256,
  Sha384: TPM_ALG.SHA384,
  Sha512: TPM_ALG.SHA512,
  Sm3_256: TPM_ALG.SM3_256,
};
const SIGN_NAMES: Readonly<Record<string, number>> = {
  RsaSsa: TPM_ALG.RSASSA,
  RsaPss: TPM_ALG.RSAPSS,
  EcDsa: TPM_ALG.ECDSA,
  EcSchnorr: TPM_ALG.ECSCHNORR,
};
const nameOf = (table: Readonly<Record<string, number>>, alg: number) =>
  Object.entries(table).find(([, v]) => v === alg)?.[0];

/** agent_data.json: the AK and what it was made for. */
export interface AgentData {
  /** tpm_hash_alg the AK was made with (TPM_ALG_*). */
  readonly akHashAlg: number;
  /** tpm_signing_alg the AK was made with (TPM_ALG_*). */
  readonly akSignAlg: number;
  readonly ak: SavedAk;
  /** Lowercase hex SHA-256 of the EK's SubjectPublicKeyInfo PEM (rust-keylime hash_ek.rs). */
  readonly ekHash: string;
}

/** rust-keylime's reuse rule (AgentData::valid): same hash alg, sign alg and EK; else a new AK. */
export function agentDataFits(d: AgentData, hashAlg: number, signAlg: number, ekHash: string): boolean {
  return d.akHashAlg === hashAlg && d.akSignAlg === signAlg && d.ekHash === ekHash;
}

/** serde_json::to_writer_pretty of AgentData: byte vectors as arrays of numbers, two-space indent. */
export function encodeAgentData(d: AgentData): string {
  const hashName = nameOf(HASH_NAMES, d.akHashAlg);
  const signName = nameOf(SIGN_NAMES, d.akSignAlg);
  if (!hashName || !signName) {
    throw new AgentStateError(
      "agent_data.json",
      `no rust-keylime name for hash 0x${d.akHashAlg.toString(16)} or sign 0x${d.akSignAlg.toString(16)}`,
    );
  }
  const doc = {
    ak_hash_alg: hashName,
    ak_sign_alg: signName,
    ak_public: [...encode(TPMT_PUBLIC, d.ak.public)],
    ak_private: [...d.ak.private],
    ek_hash: [...new TextEncoder().encode(d.ekHash)],
  };
  return JSON.stringify(doc, null, 2);
}

function byteArray(path: string, doc: Record<string, unknown>, field: string): Uint8Array {
  const v = doc[field];
  if (!Array.isArray(v) || !v.every((x) => Number.isInteger(x) && x >= 0 && x <= 255)) {
    throw new AgentStateError(path, `field "${field}" must be an array of bytes (0-255)`);
  }
  return Uint8Array.from(v as number[]);
}

/** Parse agent_data.json text; every field is checked, the AK public area fully decoded. */
export function decodeAgentData(text: string, path = "agent_data.json"): AgentData {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new AgentStateError(path, "is not JSON", { cause: e });
  }
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) {
    throw new AgentStateError(path, "is not a JSON object");
  }
  const o = doc as Record<string, unknown>;
  const akHashAlg = HASH_NAMES[o.ak_hash_alg as string];
  if (typeof o.ak_hash_alg !== "string" || akHashAlg === undefined) {
    throw new AgentStateError(path, `"ak_hash_alg" must be one of ${Object.keys(HASH_NAMES).join(", ")}`);
  }
  const akSignAlg = SIGN_NAMES[o.ak_sign_alg as string];
  if (typeof o.ak_sign_alg !== "string" || akSignAlg === undefined) {
    throw new AgentStateError(path, `"ak_sign_alg" must be one of ${Object.keys(SIGN_NAMES).join(", ")}`);
  }
  const ekHashBytes = byteArray(path, o, "ek_hash");
  const ekHash = new TextDecoder().decode(ekHashBytes);
  if (!/^[0-9a-f]{64}$/.test(ekHash)) throw new AgentStateError(path, `"ek_hash" is not 64 lowercase hex characters`);
  const priv = byteArray(path, o, "ak_private");
  let pub;
  try {
    pub = decode(TPMT_PUBLIC, byteArray(path, o, "ak_public"));
    decode(TPM2B_PRIVATE, encode(TPM2B_PRIVATE, priv)); // within TPM2B_PRIVATE's size limit
  } catch (e) {
    if (e instanceof AgentStateError) throw e;
    throw new AgentStateError(path, `AK: ${(e as Error).message}`, { cause: e });
  }
  return { akHashAlg, akSignAlg, ak: { public: pub, private: priv }, ekHash };
}

async function readIfExists(path: string): Promise<string | null> {
  try {
    return await readFile(path, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw new AgentStateError(path, (e as Error).message, { cause: e });
  }
}

/** agent_data.json at `path`, or null when there is none. */
export async function loadAgentData(path: string): Promise<AgentData | null> {
  const text = await readIfExists(path);
  return text === null ? null : decodeAgentData(text, path);
}

export async function saveAgentData(path: string, d: AgentData): Promise<void> {
  await writeFileAtomic(path, encodeAgentData(d));
}

/** A private key kept in a PEM file, created when missing. */
export interface KeyFile {
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
  readonly created: boolean;
}

function exportPem(key: KeyObject, password: string): string {
  return password
    ? key.export({ type: "pkcs8", format: "pem", cipher: "aes-256-cbc", passphrase: password }).toString()
    : key.export({ type: "pkcs8", format: "pem" }).toString();
}

async function keyFile(
  path: string,
  password: string,
  what: string,
  make: () => KeyObject,
  fits: (k: KeyObject) => boolean,
): Promise<KeyFile> {
  const text = await readIfExists(path);
  if (text !== null) {
    let privateKey: KeyObject;
    try {
      privateKey = createPrivateKey(password ? { key: text, passphrase: password } : { key: text });
    } catch (e) {
      throw new AgentStateError(path, `cannot read the ${what} (wrong password or not a PEM private key)`, {
        cause: e,
      });
    }
    if (!fits(privateKey)) throw new AgentStateError(path, `is not a usable ${what}`);
    return { privateKey, publicKey: createPublicKey(privateKey), created: false };
  }
  const privateKey = make();
  await writeFileAtomic(path, exportPem(privateKey, password));
  return { privateKey, publicKey: createPublicKey(privateKey), created: true };
}

/**
 * The NK (payload_key), generated once and reused: RSA-2048, or EC P-256 for `ecc` (an NK without mTLS
 * whose U and V come by ECIES, spec/nk-certify.md). An existing file of the other type is refused.
 */
export function loadOrCreateNk(path: string, password = "", alg: "rsa" | "ecc" = "rsa"): Promise<KeyFile> {
  if (alg === "ecc") {
    return keyFile(
      path,
      password,
      "NK (EC P-256 private key, as transport_key_alg = ecc asks)",
      () => generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey,
      (k) => k.asymmetricKeyType === "ec" && k.asymmetricKeyDetails?.namedCurve === "prime256v1",
    );
  }
  return keyFile(
    path,
    password,
    "NK (RSA private key)",
    () => generateKeyPairSync("rsa", { modulusLength: 2048, publicExponent: 65537 }).privateKey,
    (k) => k.asymmetricKeyType === "rsa" && (k.asymmetricKeyDetails?.modulusLength ?? 0) >= 2048,
  );
}

/** The mTLS key (server_key): EC P-256 when generated; an existing RSA or EC key is used as it is. */
export function loadOrCreateMtlsKey(path: string, password = ""): Promise<KeyFile> {
  return keyFile(
    path,
    password,
    "mTLS private key (EC or RSA)",
    () => generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey,
    (k) => k.asymmetricKeyType === "ec" || k.asymmetricKeyType === "rsa",
  );
}

/** WebCrypto algorithm for signing with a KeyObject's key type. */
function signingAlgorithm(k: KeyObject): EcKeyImportParams | RsaHashedImportParams {
  if (k.asymmetricKeyType === "ec") {
    const curve = k.asymmetricKeyDetails?.namedCurve;
    const namedCurve = curve === "secp384r1" ? "P-384" : curve === "secp521r1" ? "P-521" : "P-256";
    return { name: "ECDSA", namedCurve };
  }
  return { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" };
}

/** Subject alternative names of the agent's certificate (keylime.md §3), contact_ip added once. */
export function mtlsNames(contactIp: string): { type: "dns" | "ip"; value: string }[] {
  const names: { type: "dns" | "ip"; value: string }[] = [
    { type: "dns", value: "localhost" },
    { type: "dns", value: "localhost.domain" },
    { type: "ip", value: "127.0.0.1" },
    { type: "ip", value: "::1" },
  ];
  const type = isIP(contactIp) ? "ip" : "dns";
  if (contactIp && !names.some((n) => n.type === type && n.value === contactIp)) names.push({ type, value: contactIp });
  return names;
}

const DAY_MS = 86_400_000;

/** A self-signed certificate for the agent: CN = uuid, 365 days, SHA-256, the SANs of mtlsNames. */
export async function selfSignedCertificate(key: KeyFile, uuid: string, contactIp: string): Promise<string> {
  const alg = signingAlgorithm(key.privateKey);
  const subtle = webcrypto.subtle;
  const keys = {
    privateKey: await subtle.importKey("pkcs8", key.privateKey.export({ type: "pkcs8", format: "der" }), alg, false, [
      "sign",
    ]),
    publicKey: await subtle.importKey("spki", key.publicKey.export({ type: "spki", format: "der" }), alg, true, [
      "verify",
    ]),
  } as CryptoKeyPair;
  const now = Date.now();
  const serial = randomBytes(16);
  serial[0]! &= 0x7f; // a positive INTEGER
  // Loaded here only: a restart with its certificate in place never loads @peculiar/x509 (idle RSS).
  const { x509lib } = await import("../tpm/x509.ts");
  const cert = await x509lib.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: serial.toString("hex"),
      name: [{ CN: [uuid] }],
      notBefore: new Date(now - 60_000),
      notAfter: new Date(now + 365 * DAY_MS),
      signingAlgorithm: alg.name === "ECDSA" ? { name: "ECDSA", hash: "SHA-256" } : alg,
      keys,
      extensions: [new x509lib.SubjectAlternativeNameExtension(mtlsNames(contactIp))],
    },
    webcrypto as unknown as Crypto,
  );
  return cert.toString("pem") + "\n";
}

/** Makes the self-signed certificate for a key: selfSignedCertificate, or the same in another process. */
export type CertificateMaker = (key: KeyFile, uuid: string, contactIp: string) => Promise<string>;

export interface MtlsIdentity {
  readonly key: KeyFile;
  readonly certPem: string;
  readonly certCreated: boolean;
}

/**
 * The mTLS key and certificate: reused when both exist and belong together; a certificate that is
 * missing (or made for another key) is generated again.
 */
export async function loadOrCreateMtls(
  keyPath: string,
  certPath: string,
  opts: {
    password?: string;
    uuid: string;
    contactIp: string;
    warn?: (m: string) => void;
    /** Default: selfSignedCertificate, in this process. */
    makeCertificate?: CertificateMaker | undefined;
  },
): Promise<MtlsIdentity> {
  const key = await loadOrCreateMtlsKey(keyPath, opts.password ?? "");
  const existing = await readIfExists(certPath);
  if (existing !== null && !key.created) {
    let cert: NodeX509Certificate;
    try {
      // node:crypto's native parser: the certificate is read on every start.
      cert = new NodeX509Certificate(existing);
    } catch (e) {
      throw new AgentStateError(certPath, "is not a PEM certificate", { cause: e });
    }
    const spki = (k: KeyObject) => k.export({ type: "spki", format: "der" });
    if (Buffer.compare(spki(cert.publicKey), spki(key.publicKey)) === 0) {
      return { key, certPem: existing, certCreated: false };
    }
    opts.warn?.(`${certPath} does not belong to ${keyPath}; making a new self-signed certificate`);
  }
  const certPem = await (opts.makeCertificate ?? selfSignedCertificate)(key, opts.uuid, opts.contactIp);
  await writeFileAtomic(certPath, certPem);
  return { key, certPem, certCreated: true };
}

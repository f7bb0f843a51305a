/**
 * Every key of the `[agent]` table, declared once: type, default, one-line doc, allowed values, and
 * whether this agent acts on it yet. The config type, the environment overrides (KEYLIME_AGENT_<KEY>),
 * validation and the generated reference (docs/agent_config.md) all come from this table.
 * Keys and defaults: keylime/rust-keylime keylime/src/config/base.rs, keylime-agent.conf (keylime.md §10).
 */
import { NK_BINDING_MODES } from "../protocol/agent_api.ts";

export type KeyKind = "string" | "bool" | "int" | "list";

export interface KeyDecl<T> {
  readonly kind: KeyKind;
  readonly default: T;
  readonly doc: string;
  /** False: accepted, validated and reported, but this agent does not act on it yet. */
  readonly acted: boolean;
  /** What is allowed, for error messages and the reference; absent when any value of the kind is. */
  readonly allowed?: string;
  /** True when the value is allowed. */
  check?(v: T): boolean;
  /** Secrets are shown as "(set)" by `agent config`. */
  readonly secret?: boolean;
}

interface Opts<T> {
  acted?: boolean;
  allowed?: string;
  check?: (v: T) => boolean;
  secret?: boolean;
}

function decl<T>(kind: KeyKind, def: T, doc: string, o: Opts<T> = {}): KeyDecl<T> {
  return {
    kind,
    default: def,
    doc,
    acted: o.acted ?? false,
    ...(o.allowed ? { allowed: o.allowed } : {}),
    ...(o.check ? { check: o.check } : {}),
    ...(o.secret ? { secret: true } : {}),
  };
}
const str = (def: string, doc: string, o?: Opts<string>) => decl("string", def, doc, o);
const bool = (def: boolean, doc: string, o?: Opts<boolean>) => decl("bool", def, doc, o);
const int = (def: number, doc: string, min: number, max: number, o: Opts<number> = {}) =>
  decl("int", def, doc, { allowed: `an integer from ${min} to ${max}`, check: (v) => v >= min && v <= max, ...o });
const port = (def: number, doc: string, o?: Opts<number>) => int(def, doc, 1, 65535, o);
const list = (def: readonly string[], doc: string, o?: Opts<readonly string[]>) => decl("list", def, doc, o);
const oneOf = (values: readonly string[], def: string, doc: string, o: Opts<string> = {}) =>
  str(def, doc, {
    allowed: `one of ${values.map((v) => `"${v}"`).join(", ")}`,
    check: (v) => values.includes(v),
    ...o,
  });

const ACTED = { acted: true };
const HASH_ALGS = ["sha1", "sha256", "sha384", "sha512", "sm3_256"];
/** rust-keylime keylime/src/algorithms.rs EncryptionAlgorithm::try_from. */
export const ENCRYPTION_ALGS = [
  "rsa",
  "rsa1024",
  "rsa2048",
  "rsa3072",
  "rsa4096",
  "ecc",
  "ecc192",
  "ecc224",
  "ecc256",
  "ecc384",
  "ecc521",
  "ecc_nist_p192",
  "ecc_nist_p224",
  "ecc_nist_p256",
  "ecc_nist_p384",
  "ecc_nist_p521",
  "ecc_sm2",
  "ecc_sm2_p256",
];
const SIGN_ALGS = ["rsassa", "rsapss", "ecdsa", "ecschnorr"];
const isHost = (v: string) => /^[0-9A-Za-z.:[\]_-]+$/.test(v);
const HOST = { allowed: "an IP address or a host name", check: isHost };
const API_LIST = /^\s*\[?\s*\d+\.\d+(\s*,\s*\d+\.\d+)*\s*\]?\s*$/;

export const AGENT_KEYS = {
  version: str("2.0", "configuration file version (informational)"),
  uuid: str("d432fbb3-d2f1-4a97-9ef7-75bd81c00000", "agent UUID; generate, hash_ek, dmidecode, hostname or a UUID", {
    ...ACTED,
    allowed: "a non-empty string",
    check: (v) => v.length > 0,
  }),
  ip: str("127.0.0.1", "address the agent's HTTPS server binds to", { ...ACTED, ...HOST }),
  port: port(9002, "port the agent's HTTPS server listens on", ACTED),
  contact_ip: str("127.0.0.1", "address the verifier and tenant reach the agent at (sent to the registrar)", {
    ...ACTED,
    ...HOST,
  }),
  contact_port: port(9002, "port the verifier and tenant reach the agent at (sent to the registrar)", ACTED),
  registrar_ip: str("127.0.0.1", "registrar address (plain HTTP)", { ...ACTED, ...HOST }),
  registrar_port: port(8890, "registrar port (plain HTTP)", ACTED),
  registrar_tls_enabled: bool(false, "talk to the registrar over HTTPS (push model)"),
  registrar_tls_port: port(8891, "registrar HTTPS port (push model)"),
  registrar_tls_ca_cert: str("default", "CA certificate for the registrar's HTTPS server (push model)"),
  registrar_api_versions: str("default", "registrar API versions of the push model"),
  api_versions: str("default", "enabled API versions: default (all supported), latest, or a list such as 2.1, 2.2", {
    ...ACTED,
    allowed: `"default", "latest" or a comma-separated list of versions like "2.1, 2.2"`,
    check: (v) => v === "default" || v === "latest" || API_LIST.test(v),
  }),
  enable_agent_mtls: bool(true, 'serve the agent API over mTLS; false sends mtls_cert "disabled"', ACTED),
  keylime_dir: str("/var/lib/keylime", "working directory for keys and state (KEYLIME_DIR overrides)", {
    ...ACTED,
    allowed: "a non-empty path",
    check: (v) => v.length > 0,
  }),
  server_key: str("default", "mTLS private key file (default server-private.pem, EC P-256 when generated)", ACTED),
  server_key_password: str("", "password of the mTLS private key file", { ...ACTED, secret: true }),
  server_cert: str("default", "mTLS certificate file (default server-cert.crt, self-signed when generated)", ACTED),
  payload_key: str("default", "NK private key file (default payload-private.pem, RSA-2048)", ACTED),
  transport_key_alg: oneOf(
    ["rsa", "ecc"],
    "rsa",
    "with enable_agent_mtls = false, the NK's type when payload_key is generated, sent as transport_key: " +
      "rsa (RSA-2048, U and V by RSA-OAEP) or ecc (EC P-256, U and V by ECIES)",
    ACTED,
  ),
  nk_binding: oneOf(
    NK_BINDING_MODES,
    "both",
    "how the NK is bound to the TPM: pcr16 (PCR 16, upstream), certify (TPM2_Certify by the AK; PCR 16 " +
      "untouched, the classic identity quote refused) or both",
    ACTED,
  ),
  payload_key_password: str("", "password of the NK private key file", { ...ACTED, secret: true }),
  trusted_client_ca: str(
    "default",
    "CA(s) of verifier and tenant client certificates (default cv_ca/cacert.crt)",
    ACTED,
  ),
  enc_keyname: str("derived_tci_key", "file name of the derived payload key under secure/", ACTED),
  dec_payload_file: str("decrypted_payload", "file name of the decrypted payload under secure/", ACTED),
  secure_size: str("1m", "size of the tmpfs mounted at secure/", ACTED),
  extract_payload_zip: bool(true, "unzip the decrypted payload", ACTED),
  payload_script: str("autorun.sh", "script run from the unzipped payload", ACTED),
  enable_insecure_payload: bool(false, "allow payloads when mTLS is disabled", ACTED),
  allow_payload_revocation_actions: bool(true, "allow revocation actions delivered in the payload", ACTED),
  enable_revocation_notifications: bool(false, "listen for revocation notifications (ZeroMQ)"),
  revocation_notification_ip: str("127.0.0.1", "address of the revocation notifier", HOST),
  revocation_notification_port: port(8992, "port of the revocation notifier"),
  revocation_cert: str("default", "certificate that signs revocation messages", ACTED),
  revocation_actions: str("", "comma-separated revocation actions to run", ACTED),
  revocation_actions_dir: str("/usr/libexec/keylime", "directory of pre-installed revocation actions", ACTED),
  tpm_hash_alg: oneOf(HASH_ALGS, "sha256", "AK name and signing hash; the quoted PCR bank", ACTED),
  tpm_encryption_alg: oneOf(ENCRYPTION_ALGS, "rsa", "EK template and AK key type", ACTED),
  tpm_signing_alg: oneOf(SIGN_ALGS, "rsassa", "AK signing scheme (only rsassa and ecdsa pass verification)", ACTED),
  ek_handle: str("generate", "EK: generate (from the template) or a persistent handle such as 0x81010001", {
    ...ACTED,
    allowed: `"generate", "" or a persistent handle 0x81000000-0x81ffffff`,
    check: (v) => v === "generate" || v === "" || /^0x81[0-9a-fA-F]{6}$/.test(v),
  }),
  tpm_ownerpassword: str("", "endorsement hierarchy password (for the EK); hex: prefix for hex", {
    ...ACTED,
    secret: true,
  }),
  agent_data_path: str("default", "AK state file (default agent_data.json under keylime_dir)", ACTED),
  run_as: str("keylime:tss", "user:group to drop privileges to when started as root"),
  ima_ml_path: str(
    "default",
    "IMA measurement list (default /sys/kernel/security/ima/ascii_runtime_measurements)",
    ACTED,
  ),
  measuredboot_ml_path: str(
    "default",
    "UEFI event log (default /sys/kernel/security/tpm0/binary_bios_measurements)",
    ACTED,
  ),
  ima_ml_count_file: str("/sys/kernel/security/ima/measurements", "IMA entry count file (push model)"),
  enable_iak_idevid: bool(false, "use IAK and IDevID"),
  iak_idevid_template: oneOf(
    ["", "default", "detect", "H-1", "H-2", "H-3", "H-4", "H-5", "manual"],
    "detect",
    "IAK/IDevID template, or detect from the certificates",
  ),
  iak_idevid_asymmetric_alg: oneOf(["rsa", "ecc"], "rsa", "IAK/IDevID key type when the template is manual"),
  iak_idevid_name_alg: oneOf(["sha256", "sm3_256", "sha384", "sha512"], "sha256", "IAK/IDevID name algorithm (manual)"),
  iak_handle: str("", "persistent IAK handle"),
  iak_password: str("", "IAK password; hex: prefix for hex", { secret: true }),
  iak_cert: str("default", "IAK certificate file (default iak-cert.crt)"),
  idevid_handle: str("", "persistent IDevID handle"),
  idevid_password: str("", "IDevID password; hex: prefix for hex", { secret: true }),
  idevid_cert: str("default", "IDevID certificate file (default idevid-cert.crt)"),
  disabled_signing_algorithms: list(["ecschnorr"], "signing algorithms never offered (push model)"),
  exponential_backoff_initial_delay: int(10000, "first registrar retry delay in ms", 0, 3_600_000, ACTED),
  exponential_backoff_max_retries: int(5, "registrar retries before giving up", 0, 1000, ACTED),
  exponential_backoff_max_delay: int(300000, "longest registrar retry delay in ms", 0, 86_400_000, ACTED),
  verifier_url: str("https://localhost:8881", "verifier URL (push model)"),
  attestation_interval_seconds: int(60, "seconds between attestations (push model)", 1, 86400),
  certification_keys_server_identifier: str("ak", "identifier of the certification key (push model)"),
  uefi_logs_evidence_version: str("2.1", "UEFI log evidence version (push model)"),
  tls_accept_invalid_certs: bool(false, "accept any registrar/verifier certificate (push model; insecure)"),
  tls_accept_invalid_hostnames: bool(false, "accept any registrar/verifier host name (push model; insecure)"),
} as const satisfies Record<string, KeyDecl<unknown>>;

export type AgentKey = keyof typeof AGENT_KEYS;
type ValueOf<D> = D extends KeyDecl<infer T> ? T : never;
/** The effective `[agent]` configuration: one typed field per declared key. */
export type AgentConfig = { -readonly [K in AgentKey]: ValueOf<(typeof AGENT_KEYS)[K]> };

/** The environment variable that overrides a key. */
export const envName = (key: string) => `KEYLIME_AGENT_${key.toUpperCase()}`;

export const AGENT_KEY_NAMES = Object.keys(AGENT_KEYS) as AgentKey[];

/**
 * The registrar's settings: one declaration per key (type, default, doc) from which the type, the
 * `[registrar]` table of a TOML config file, and its validation come. Command-line options override it.
 */
import { readFile } from "node:fs/promises";
import { parse as parseToml } from "smol-toml";

type Kind = "string" | "port" | "seconds" | "boolean" | "strings" | "sync";
type ValueOf<K extends Kind> = K extends "sync" ? "normal" | "full"
  : K extends "string" ? string
  : K extends "port" | "seconds" ? number
  : K extends "boolean" ? boolean
  : string[];

interface KeyDecl<K extends Kind> {
  kind: K;
  default: ValueOf<K>;
  doc: string;
}

const key = <K extends Kind>(kind: K, dflt: ValueOf<K>, doc: string): KeyDecl<K> => ({ kind, default: dflt, doc });

export const REGISTRAR_KEYS = {
  ip: key("string", "127.0.0.1", "address both ports listen on"),
  port: key("port", 8890, "plain HTTP port: /version, registration and activation (0: any free port)"),
  tls_port: key("port", 8891, "HTTPS port with client certificates: list, show, delete (0: any free port)"),
  database: key("string", "registrar.sqlite", "SQLite file of the records"),
  database_sync: key(
    "sync",
    "normal",
    "normal: a committed change survives a crash or restart of the registrar; full: also a power loss (one fsync per change)",
  ),
  tls_dir: key(
    "string",
    "",
    "cacert.crt, server-cert.crt, server-private.pem; generated when absent (default: tls/ beside the database)",
  ),
  tpm_ca_dir: key("strings", [], "more directories of TPM manufacturer CA certificates, besides data/tpm-ca"),
  allow_untrusted_ek: key(
    "boolean",
    false,
    "store EK certificates that do not chain to the trust store, flagged untrusted",
  ),
  require_nk_certify: key(
    "boolean",
    false,
    "refuse registrations without nk_certify: every agent's NK must be certified by its AK (spec/nk-certify.md)",
  ),
  certify_nonce_ttl: key("seconds", 300, "seconds a certify nonce stays valid between registration and activation"),
} as const;

type Keys = typeof REGISTRAR_KEYS;
export type RegistrarConfig = { -readonly [K in keyof Keys]: ValueOf<Keys[K]["kind"]> };

export class ConfigError extends Error {
  readonly code = "ERR_CONFIG";
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

function check(name: string, kind: Kind, v: unknown): unknown {
  const bad = (what: string) => new ConfigError(`[registrar] ${name}: expected ${what}, got ${JSON.stringify(v)}`);
  switch (kind) {
    case "string":
      if (typeof v !== "string") throw bad("a string");
      return v;
    case "port": {
      const n = typeof v === "string" && /^[0-9]+$/.test(v) ? Number(v) : v;
      if (typeof n !== "number" || !Number.isInteger(n) || n < 0 || n > 65535) throw bad("a port number (0-65535)");
      return n;
    }
    case "seconds": {
      const n = typeof v === "string" && /^[0-9]+$/.test(v) ? Number(v) : v;
      if (typeof n !== "number" || !Number.isInteger(n) || n < 1 || n > 86400) throw bad("seconds (1-86400)");
      return n;
    }
    case "sync":
      if (v !== "normal" && v !== "full") throw bad('"normal" or "full"');
      return v;
    case "boolean":
      if (typeof v !== "boolean") throw bad("true or false");
      return v;
    case "strings":
      if (typeof v === "string") return [v];
      if (!Array.isArray(v) || v.some((x) => typeof x !== "string")) throw bad("a string or a list of strings");
      return v;
  }
}

/** Defaults, then the `[registrar]` table of `file`, then `overrides` (command-line options). */
export async function loadRegistrarConfig(
  file: string | undefined,
  overrides: Partial<RegistrarConfig> = {},
): Promise<RegistrarConfig> {
  const out: Record<string, unknown> = {};
  for (const [name, decl] of Object.entries(REGISTRAR_KEYS)) out[name] = decl.default;
  if (file) {
    let table: Record<string, unknown>;
    try {
      const doc = parseToml(await readFile(file, "utf8"));
      table = (doc.registrar ?? {}) as Record<string, unknown>;
    } catch (e) {
      throw new ConfigError(`cannot read the registrar config ${file}: ${(e as Error).message}`);
    }
    for (const [name, v] of Object.entries(table)) {
      const decl = REGISTRAR_KEYS[name as keyof Keys];
      if (!decl) throw new ConfigError(`[registrar] ${name}: unknown key in ${file}`);
      out[name] = check(name, decl.kind, v);
    }
  }
  for (const [name, v] of Object.entries(overrides)) {
    if (v !== undefined) out[name] = check(name, REGISTRAR_KEYS[name as keyof Keys].kind, v);
  }
  return out as RegistrarConfig;
}

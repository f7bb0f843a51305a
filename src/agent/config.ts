/**
 * The agent's configuration (keylime.md §10): built-in defaults, then /usr/etc/keylime/agent.conf,
 * its agent.conf.d/*, /etc/keylime/agent.conf, its agent.conf.d/* (later wins), or instead of all
 * files the one named by --config or KEYLIME_AGENT_CONFIG; then KEYLIME_AGENT_<KEY> and KEYLIME_DIR.
 * Every value remembers where it came from. Keys are declared once in config_keys.ts.
 * Upstream: keylime/rust-keylime keylime/src/config/{base,env,file_config}.rs.
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { isAbsolute, join } from "node:path";
import { parse as parseToml } from "smol-toml";
import { AGENT_KEY_NAMES, AGENT_KEYS, type AgentConfig, type AgentKey, envName, type KeyDecl } from "./config_keys.ts";
import { ConfigError } from "./errors.ts";

export { type AgentConfig, type AgentKey } from "./config_keys.ts";

/** Replaces the configuration files (rust-keylime file_config.rs GLOBAL_CONFIG_OVERRIDE_ENV_VAR). */
export const CONFIG_OVERRIDE_ENV = "KEYLIME_AGENT_CONFIG";

export interface LoadOptions {
  /** Prefix of /usr/etc and /etc, for tests and images built in a directory (default "/"). */
  root?: string;
  /** The --config file: replaces the files like KEYLIME_AGENT_CONFIG does, and wins over it. */
  file?: string;
  env?: Record<string, string | undefined>;
  /** Unknown keys and keys not acted on yet. */
  warn?: (message: string) => void;
}

export interface LoadedConfig {
  readonly config: AgentConfig;
  /** Per key: "default", a file path, or "env NAME". */
  readonly origin: Record<AgentKey, string>;
  /** The files read, in order. */
  readonly files: string[];
}

/** The configuration files in load order under `root`. */
export function defaultConfigFiles(root = "/"): string[] {
  const out: string[] = [];
  for (const base of ["usr/etc/keylime", "etc/keylime"]) {
    const file = join(root, base, "agent.conf");
    if (existsSync(file)) out.push(file);
    const dir = `${file}.d`;
    // rust-keylime globs dir/* (sorted by name), every file read as TOML.
    if (existsSync(dir) && statSync(dir).isDirectory()) {
      for (const name of readdirSync(dir).sort()) {
        const p = join(dir, name);
        if (statSync(p).isFile()) out.push(p);
      }
    }
  }
  return out;
}

const BOOL_WORDS: Record<string, boolean> = {
  true: true,
  false: false,
  yes: true,
  no: false,
  on: true,
  off: false,
  "1": true,
  "0": false,
};

/** Convert a TOML value or an environment string to the key's kind; undefined when it does not fit. */
function convert(decl: KeyDecl<unknown>, raw: unknown): unknown {
  switch (decl.kind) {
    case "string":
      return typeof raw === "string" ? raw : typeof raw === "number" ? String(raw) : undefined;
    case "bool":
      if (typeof raw === "boolean") return raw;
      return typeof raw === "string" ? BOOL_WORDS[raw.trim().toLowerCase()] : undefined;
    case "int":
      if (typeof raw === "number" && Number.isSafeInteger(raw)) return raw;
      if (typeof raw === "bigint") return undefined;
      return typeof raw === "string" && /^\s*\d+\s*$/.test(raw) ? Number(raw) : undefined;
    case "list":
      if (Array.isArray(raw)) return raw.every((x) => typeof x === "string") ? raw : undefined;
      return typeof raw === "string" ? parseList(raw) : undefined;
  }
}

const KIND_TEXT = { string: "a string", bool: "true or false", int: "an integer", list: "a list of strings" };

/** A value checked against its declaration, or ERR_CONFIG naming key, source and what is allowed. */
function checked(key: AgentKey, raw: unknown, source: string): unknown {
  const decl = AGENT_KEYS[key] as KeyDecl<unknown>;
  const value = convert(decl, raw);
  if (value === undefined || (decl.check && !decl.check(value))) {
    const shown = decl.secret ? "(hidden)" : JSON.stringify(raw);
    throw new ConfigError(
      `${source}: ${key} = ${shown} is not allowed; expected ${decl.allowed ?? KIND_TEXT[decl.kind]}`,
    );
  }
  return value;
}

/** "a, b", "[a, b]" or '["a", "b"]' as a list (rust-keylime keylime/src/list_parser.rs). */
export function parseList(s: string): string[] {
  return s.trim().replace(/^\[/, "").replace(/\]$/, "").split(",").map((x) => x.trim().replace(/^"(.*)"$/, "$1"))
    .filter((x) => x.length > 0);
}

function readAgentTable(file: string): Record<string, unknown> {
  let doc: Record<string, unknown>;
  try {
    doc = parseToml(readFileSync(file, "utf8")) as Record<string, unknown>;
  } catch (e) {
    throw new ConfigError(`${file}: not valid TOML: ${(e as Error).message.split("\n")[0]}`, { cause: e });
  }
  const agent = doc.agent;
  if (agent === undefined) return {};
  if (typeof agent !== "object" || agent === null || Array.isArray(agent)) {
    throw new ConfigError(`${file}: "agent" must be a table ([agent])`);
  }
  return agent as Record<string, unknown>;
}

const isKey = (k: string): k is AgentKey => Object.hasOwn(AGENT_KEYS, k);

/** Load the effective configuration and where each value came from. */
export function loadAgentConfig(options: LoadOptions = {}): LoadedConfig {
  const env = options.env ?? process.env;
  const warn = options.warn ?? (() => {});
  const config = Object.fromEntries(AGENT_KEY_NAMES.map((k) => [k, AGENT_KEYS[k].default])) as AgentConfig;
  const origin = Object.fromEntries(AGENT_KEY_NAMES.map((k) => [k, "default"])) as Record<AgentKey, string>;
  const set = (key: AgentKey, raw: unknown, source: string) => {
    (config as Record<string, unknown>)[key] = checked(key, raw, source);
    origin[key] = source;
  };

  const override = options.file ?? (env[CONFIG_OVERRIDE_ENV] || undefined);
  if (override !== undefined && !existsSync(override)) {
    const via = options.file !== undefined ? "--config" : CONFIG_OVERRIDE_ENV;
    throw new ConfigError(`${override} (from ${via}): configuration file not found`);
  }
  const files = override !== undefined ? [override] : defaultConfigFiles(options.root);
  for (const file of files) {
    for (const [key, raw] of Object.entries(readAgentTable(file))) {
      if (!isKey(key)) {
        warn(`${file}: unknown key "${key}" in [agent] is ignored`);
        continue;
      }
      set(key, raw, file);
    }
  }
  for (const key of AGENT_KEY_NAMES) {
    const name = envName(key);
    const raw = env[name];
    if (raw !== undefined) set(key, raw, `env ${name}`);
  }
  // KEYLIME_DIR wins over keylime_dir from anywhere (rust-keylime base.rs config_translate_keywords).
  if (env.KEYLIME_DIR) set("keylime_dir", env.KEYLIME_DIR, "env KEYLIME_DIR");

  for (const key of AGENT_KEY_NAMES) {
    if (!AGENT_KEYS[key].acted && origin[key] !== "default") {
      warn(`${origin[key]}: ${key} is accepted but this agent does not act on it yet`);
    }
  }
  return { config, origin, files };
}

/**
 * A file option resolved as rust-keylime's config_get_file_path does: "default" or "" is the
 * built-in name under `dir`, a relative path is taken from `dir`, an absolute path stays.
 */
export function resolvePath(value: string, dir: string, builtIn: string): string {
  if (value === "default" || value === "") return join(dir, builtIn);
  return isAbsolute(value) ? value : join(dir, value);
}

/** The agent's files under keylime_dir (keylime.md §3, §10). */
export interface AgentPaths {
  readonly keylimeDir: string;
  readonly agentData: string;
  readonly serverKey: string;
  readonly serverCert: string;
  readonly payloadKey: string;
}

export function agentPaths(c: AgentConfig): AgentPaths {
  const dir = c.keylime_dir;
  return {
    keylimeDir: dir,
    agentData: resolvePath(c.agent_data_path, dir, "agent_data.json"),
    serverKey: resolvePath(c.server_key, dir, "server-private.pem"),
    serverCert: resolvePath(c.server_cert, dir, "server-cert.crt"),
    payloadKey: resolvePath(c.payload_key, dir, "payload-private.pem"),
  };
}

/**
 * The enabled API versions, oldest first (rust-keylime base.rs): "default" = all supported,
 * "latest" = the newest, a list = its supported members (unsupported ones are skipped with a warning;
 * none left means all supported).
 */
export function enabledApiVersions(
  c: AgentConfig,
  supported: readonly string[],
  warn: (message: string) => void = () => {},
): string[] {
  if (c.api_versions === "default") return [...supported];
  if (c.api_versions === "latest") return supported.slice(-1);
  const listed = parseList(c.api_versions);
  for (const v of listed) if (!supported.includes(v)) warn(`api_versions: skipping unsupported API version "${v}"`);
  const kept = supported.filter((v) => listed.includes(v));
  if (kept.length === 0) warn("api_versions: no supported version listed; using all supported versions");
  return kept.length ? kept : [...supported];
}

/** The reference of every key, generated from the declarations (docs/agent_config.md). */
export function configReference(): string {
  const lines = [
    "# Agent configuration reference",
    "",
    "Generated from `src/agent/config_keys.ts` (`keylime-ts agent config --reference`); do not edit by hand.",
    "",
    "The `[agent]` table of `agent.conf` (TOML). Load order, later wins: built-in defaults,",
    "`/usr/etc/keylime/agent.conf`, `/usr/etc/keylime/agent.conf.d/*`, `/etc/keylime/agent.conf`,",
    "`/etc/keylime/agent.conf.d/*`; `--config FILE` or `KEYLIME_AGENT_CONFIG=FILE` replaces all files;",
    "then the environment variable of each key; `KEYLIME_DIR` overrides `keylime_dir`. Path options take",
    "`default` (the built-in name under `keylime_dir`), a path relative to `keylime_dir`, or an absolute path.",
    "Keys marked *not yet* are accepted and validated, and reported when set, but this agent does not act on them.",
    "",
    "| key | type | default | environment | acted on | allowed | meaning |",
    "| --- | --- | --- | --- | --- | --- | --- |",
  ];
  for (const key of AGENT_KEY_NAMES) {
    const d = AGENT_KEYS[key] as KeyDecl<unknown>;
    const def = Array.isArray(d.default) ? d.default.join(", ") : String(d.default);
    const cells = [
      `\`${key}\``,
      d.kind,
      def === "" ? '`""`' : `\`${def}\``,
      `\`${envName(key)}\``,
      d.acted ? "yes" : "*not yet*",
      (d.allowed ?? "").replaceAll("|", "\\|"),
      d.doc.replaceAll("|", "\\|"),
    ];
    lines.push(`| ${cells.join(" | ")} |`);
  }
  return lines.join("\n") + "\n";
}

/**
 * Keylime API versions: what the registrar serves, `/vX.Y` path prefixes, and the agent's choice of a
 * registrar version as rust-keylime makes it (keylime.md §1.1; keylime/rust-keylime
 * keylime/src/registrar_client.rs).
 */

/** "2.6" and the like. */
export type ApiVersion = `${number}.${number}`;

/** The newest registrar API version (keylime 7.14's CURRENT_VERSION). */
export const REGISTRAR_CURRENT_VERSION: ApiVersion = "2.6";

/** Versions the reference registrar serves: the whole v2 scope. Upstream also lists 1.0 and 3.0. */
export const REGISTRAR_SUPPORTED_VERSIONS: readonly ApiVersion[] = ["2.0", "2.1", "2.2", "2.3", "2.4", "2.5", "2.6"];

/** The agent API versions rust-keylime 0.2.9 implements (keylime.md baseline), oldest first. */
export const AGENT_SUPPORTED_VERSIONS: readonly ApiVersion[] = ["2.1", "2.2", "2.3", "2.4", "2.5", "2.6"];

const VERSION = /^([0-9]{1,3})\.([0-9]{1,3})$/;

export function parseVersion(s: string): { major: number; minor: number } | undefined {
  const m = VERSION.exec(s);
  return m ? { major: Number(m[1]), minor: Number(m[2]) } : undefined;
}

export function isApiVersion(s: unknown): s is ApiVersion {
  return typeof s === "string" && parseVersion(s) !== undefined;
}

/** Numeric order: "2.10" is newer than "2.9". */
export function compareVersions(a: ApiVersion, b: ApiVersion): number {
  const x = parseVersion(a)!;
  const y = parseVersion(b)!;
  return x.major - y.major || x.minor - y.minor;
}

/** Newest first. */
export function newestFirst(versions: readonly ApiVersion[]): ApiVersion[] {
  return [...versions].sort((a, b) => compareVersions(b, a));
}

/**
 * The version prefix of a path: `/v2.6/agents/x` gives {major 2, minor 6, rest "/agents/x"};
 * `/v2/agents` gives minor undefined. Not a version prefix: undefined.
 */
export function parseVersionPrefix(
  path: string,
): { major: number; minor: number | undefined; rest: string } | undefined {
  const m = /^\/v([0-9]{1,3})(?:\.([0-9]{1,3}))?(?=\/|$)/.exec(path);
  if (!m) return undefined;
  return { major: Number(m[1]), minor: m[2] === undefined ? undefined : Number(m[2]), rest: path.slice(m[0].length) };
}

/** What `GET /version` answers (results of the registrar's and the verifier's version route). */
export interface VersionInfo {
  current_version: string;
  supported_versions: string[];
}

/**
 * The registrar version an agent uses, as rust-keylime chooses it: `current_version` if the agent has it
 * enabled, else the newest enabled version the registrar lists. Never a 3.x (the v3 registrar routes are
 * not an agent path upstream). undefined: nothing in common.
 */
export function negotiateVersion(enabled: readonly ApiVersion[], info: VersionInfo): ApiVersion | undefined {
  const usable = enabled.filter((v) => parseVersion(v)!.major < 3);
  const current = info.current_version;
  if (isApiVersion(current) && usable.includes(current)) return current;
  const offered = new Set(info.supported_versions);
  return newestFirst(usable).find((v) => offered.has(v));
}

/** When `/version` cannot be read: the enabled 2.x versions to try, newest first. */
export function fallbackVersions(enabled: readonly ApiVersion[]): ApiVersion[] {
  return newestFirst(enabled.filter((v) => parseVersion(v)!.major < 3));
}

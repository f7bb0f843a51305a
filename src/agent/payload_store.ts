/**
 * Where a delivered payload lands (keylime.md §8 steps 4-8): the `secure` directory under keylime_dir (a tmpfs
 * of `secure_size` when the agent can mount one), `secure/unzipped/` rebuilt for each payload with K and the
 * plaintext written atomically 0600, the zip extracted inside `unzipped/` only after payload_zip.ts has
 * checked all of it, the payload script run with a timeout and its output logged, and the scripts named in
 * `action_list` made executable.
 * Upstream: keylime/rust-keylime keylime-agent/src/{payloads,secure_mount}.rs.
 */
import { execFile } from "node:child_process";
import { chmod, lstat, mkdir, readFile, rm, stat } from "node:fs/promises";
import { isAbsolute, join, relative, resolve, sep } from "node:path";
import { promisify } from "node:util";
import { decryptPayload, type DerivedKey } from "../protocol/payload.ts";
import type { ZipEntryPlan, ZipLimits } from "../protocol/payload_zip.ts";
import { writeFileAtomic } from "../util/atomic_file.ts";
import { type AgentLog, MSG } from "./messages.ts";
import { describeEnd, outputLines, runScript } from "./run_script.ts";

export const SECURE_DIR = "secure";
export const UNZIPPED_DIR = "unzipped";
export const ACTION_LIST = "action_list";
/** Default payload script timeout: upstream waits forever, which would stall the next payload. */
export const DEFAULT_SCRIPT_TIMEOUT_MS = 5 * 60_000;

/** A payload that cannot be stored or run; the message says what and where. */
export class PayloadStoreError extends Error {
  readonly code = "ERR_PAYLOAD_STORE";
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "PayloadStoreError";
  }
}

const execFileP = promisify(execFile);

/** How `dir` is mounted, from /proc/self/mountinfo text: its file system type, or undefined when not a mount point. */
export function mountTypeOf(mountinfo: string, dir: string): string | undefined {
  let found: string | undefined;
  for (const line of mountinfo.split("\n")) {
    const fields = line.split(" ");
    const sepAt = fields.indexOf("-");
    if (fields.length < 5 || sepAt < 0) continue;
    // Octal escapes (\040 for a space) as the kernel writes them.
    const point = fields[4]!.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
    // The last mount on a point is the visible one.
    if (point === dir) found = fields[sepAt + 1];
  }
  return found;
}

export interface SecureDirOptions {
  keylimeDir: string;
  /** tmpfs size as mount(8) takes it, e.g. "1m". */
  secureSize: string;
  log: AgentLog;
  /** Try to mount a tmpfs when not mounted (default: when running as root, as upstream). */
  mount?: boolean;
  /** For tests: where the mount table is read and which program mounts. */
  mountinfoPath?: string;
  mountProgram?: string;
}

export interface SecureDir {
  path: string;
  /** Is it a tmpfs (already, or mounted now)? */
  tmpfs: boolean;
}

/**
 * The secure directory, created 0700. If it is a mount point of another file system type the agent refuses,
 * as rust-keylime does (secure_mount.rs). If it is not mounted and the agent may mount, a tmpfs of
 * `secureSize` is mounted on it; a failed mount leaves a warning and a plain 0700 directory.
 */
export async function prepareSecureDir(o: SecureDirOptions): Promise<SecureDir> {
  const path = resolve(o.keylimeDir, SECURE_DIR);
  if (!/^[0-9]+[kmgKMG%]?$/.test(o.secureSize)) {
    throw new PayloadStoreError(`secure_size ${JSON.stringify(o.secureSize)} is not a size such as 1m`);
  }
  let mountinfo = "";
  try {
    mountinfo = await readFile(o.mountinfoPath ?? "/proc/self/mountinfo", "utf8");
  } catch {
    o.log.warn(MSG.mountinfoUnreadable);
  }
  const type = mountTypeOf(mountinfo, path);
  if (type === "tmpfs") {
    await chmod(path, 0o700);
    return { path, tmpfs: true };
  }
  if (type !== undefined) {
    throw new PayloadStoreError(
      `Secure storage location ${path} already mounted on wrong file system type: ${type}. Unmount to continue.`,
    );
  }
  // A symlink here would put K and the payload wherever it points.
  const existing = await lstat(path).catch(() => undefined);
  if (existing && !existing.isDirectory()) {
    throw new PayloadStoreError(`${path} exists and is not a directory (a symlink or a file); remove it`);
  }
  await mkdir(path, { recursive: true, mode: 0o700 });
  await chmod(path, 0o700);
  const mayMount = o.mount ?? process.getuid?.() === 0;
  if (!mayMount) {
    o.log.warn(MSG.secureNotTmpfs(path));
    return { path, tmpfs: false };
  }
  o.log.info(MSG.mountingSecure(path));
  try {
    await execFileP(o.mountProgram ?? "mount", ["-t", "tmpfs", "-o", `size=${o.secureSize},mode=0700`, "tmpfs", path]);
    return { path, tmpfs: true };
  } catch (e) {
    const why = (e as { stderr?: string }).stderr?.trim() || (e as Error).message;
    o.log.warn(MSG.mountFailed(path, why));
    return { path, tmpfs: false };
  }
}

/** A file name from the config (enc_keyname, dec_payload_file, payload_script): relative, no `..`. */
function inside(dir: string, name: string, key: string): string {
  const full = resolve(dir, name);
  const rel = relative(dir, full);
  if (name === "" || rel === "" || rel === ".." || rel.startsWith(`..${sep}`) || isAbsolute(rel)) {
    throw new PayloadStoreError(`${key} ${JSON.stringify(name)} must name a file inside ${dir}`);
  }
  return full;
}

export interface PayloadStoreOptions {
  /** The secure directory (prepareSecureDir). */
  secureDir: string;
  encKeyname: string;
  decPayloadFile: string;
  extractPayloadZip: boolean;
  /** "" runs nothing. */
  payloadScript: string;
  log: AgentLog;
  zipLimits?: ZipLimits;
  scriptTimeoutMs?: number;
}

export interface ScriptRun {
  path: string;
  code: number | null;
  timedOut: boolean;
  output: string[];
}

export interface StoredPayload {
  unzipped: string;
  /** Paths written, relative to `unzipped`. */
  written: string[];
  script?: ScriptRun;
  /** action_list scripts made executable (relative). */
  actions: string[];
}

/**
 * Store and run a decrypted payload with its key K (payloads.rs run_encrypted_payload). A zip is checked in
 * full before anything is written: a refused zip leaves `unzipped/` untouched. A payload that is not a zip
 * is stored without extraction, with a warning.
 */
export async function storePayload(
  o: PayloadStoreOptions,
  k: Uint8Array,
  plaintext: Uint8Array,
): Promise<StoredPayload> {
  const unzipped = join(o.secureDir, UNZIPPED_DIR);
  const keyPath = inside(unzipped, o.encKeyname, "enc_keyname");
  const payloadPath = inside(unzipped, o.decPayloadFile, "dec_payload_file");
  let plan: ZipEntryPlan[] = [];
  if (o.extractPayloadZip) {
    // Loaded when a payload arrives: the zip reader (and node:zlib) stays out of an idle agent.
    const { isZip, planZipExtraction } = await import("../protocol/payload_zip.ts");
    if (isZip(plaintext)) plan = planZipExtraction(plaintext, o.zipLimits);
    else o.log.warn(MSG.payloadNotZip(o.decPayloadFile));
  }

  await rm(unzipped, { recursive: true, force: true });
  await mkdir(unzipped, { mode: 0o700 });
  const written: string[] = [];
  await writeFileAtomic(keyPath, k);
  o.log.info(MSG.wroteKey(keyPath));
  await writeFileAtomic(payloadPath, plaintext);
  o.log.info(MSG.wrotePayload(payloadPath));
  written.push(o.encKeyname, o.decPayloadFile);

  if (plan.length) o.log.info(MSG.unzipping(o.decPayloadFile, unzipped));
  for (const entry of plan) {
    const target = inside(unzipped, entry.path, "zip entry");
    if (entry.kind === "dir") await mkdir(target, { recursive: true, mode: 0o700 });
    else {
      await writeFileAtomic(target, entry.data, entry.executable ? 0o700 : 0o600);
      written.push(entry.path);
    }
  }

  const result: StoredPayload = { unzipped, written, actions: [] };
  if (o.payloadScript === "") o.log.info(MSG.noPayloadScript);
  else {
    const script = await runPayloadScript(unzipped, o);
    if (script) result.script = script;
  }
  result.actions = await enableActions(unzipped, o.log);
  return result;
}

function exists(path: string): Promise<boolean> {
  return stat(path).then(() => true, () => false);
}

async function runPayloadScript(unzipped: string, o: PayloadStoreOptions): Promise<ScriptRun | undefined> {
  const path = inside(unzipped, o.payloadScript, "payload_script");
  if (!(await exists(path))) {
    o.log.info(MSG.payloadScriptMissing(o.payloadScript, unzipped));
    return undefined;
  }
  await chmod(path, 0o700);
  o.log.info(MSG.executingPayloadScript(path));
  const timeoutMs = o.scriptTimeoutMs ?? DEFAULT_SCRIPT_TIMEOUT_MS;
  const r = await runScript("sh", ["-c", path], { cwd: unzipped, timeoutMs });
  const output = outputLines(r);
  for (const line of output) o.log.info(line);
  if (r.code === 0) o.log.info(MSG.payloadScriptDone(path));
  else o.log.warn(MSG.payloadScriptFailed(path, describeEnd(r, timeoutMs)));
  return { path, code: r.code, timedOut: r.timedOut, output };
}

/** chmod 0700 each script named in `unzipped/action_list` that exists (one name per line). */
async function enableActions(unzipped: string, log: AgentLog): Promise<string[]> {
  let list: string;
  try {
    list = await readFile(join(unzipped, ACTION_LIST), "utf8");
  } catch {
    return [];
  }
  const done: string[] = [];
  for (const name of list.split("\n").map((l) => l.trim()).filter((l) => l !== "")) {
    let path: string;
    try {
      path = inside(unzipped, name, "action_list entry");
    } catch (e) {
      log.warn((e as Error).message);
      continue;
    }
    if (!(await exists(path))) continue;
    await chmod(path, 0o700);
    log.info(MSG.actionPermission(path));
    done.push(name);
  }
  return done;
}

/**
 * What the agent does once U and V pair up: with a payload, decrypt it with K and store it; without one,
 * nothing is written (rust-keylime writes K only alongside a payload).
 */
export async function storeDerivedPayload(
  o: PayloadStoreOptions,
  derived: DerivedKey,
): Promise<StoredPayload | undefined> {
  if (!derived.payload) return undefined;
  const plaintext = await decryptPayload(derived.k, derived.payload);
  o.log.info(MSG.payloadDecrypted);
  return storePayload(o, derived.k, plaintext);
}

/**
 * Acting on a revocation notification (keylime.md §9), as rust-keylime's revocation worker does
 * (keylime-agent/src/revocation.rs): verify the signature with `revocation_cert`; only then run the
 * configured `revocation_actions` and the payload's `action_list`, in that order, each as
 * `<script> <file holding the message JSON>` in the work directory, stopping at the first that fails.
 * Each action is looked up in `revocation_actions_dir` first, then (only if `allow_payload_revocation_actions`)
 * in the payload's `unzipped/`. The HTTP answer does not wait for any of this (upstream answers 200 at once).
 */
import { randomBytes } from "node:crypto";
import { readFile, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import {
  parseActionList,
  parseRevocationMessage,
  revocationKeyFromCert,
  verifyRevocation,
} from "../protocol/revocation.ts";
import { writeFileAtomic } from "../util/atomic_file.ts";
import { ACTION_LIST } from "./payload_store.ts";
import { type AgentLog, MSG } from "./messages.ts";
import { describeEnd, outputLines, runScript } from "./run_script.ts";
import { SerialWork } from "./serial.ts";
import { toHex } from "../util/encoding.ts";

/** Default time an action may run: upstream waits forever. */
export const DEFAULT_ACTION_TIMEOUT_MS = 60_000;

export interface RevocationOptions {
  /** The revocation certificate (PEM), usually secure/unzipped/RevocationNotifier-cert.crt. */
  certPath: string;
  /** revocation_actions_dir: the operator's pre-installed actions. */
  actionsDir: string;
  /** revocation_actions: names, in order (parseActionList reads the config's text). */
  actions: readonly string[];
  allowPayloadActions: boolean;
  /** secure/unzipped: where the payload's action_list and scripts are. */
  unzippedDir: string;
  /** Where the message file is written and actions run (rust-keylime: keylime_dir). */
  workDir: string;
  log: AgentLog;
  timeoutMs?: number;
}

export interface ActionRun {
  name: string;
  path: string;
  fromPayload: boolean;
  code: number | null;
  timedOut: boolean;
  output: string[];
}

export type RevocationOutcome =
  | { status: "no-certificate" | "invalid-signature" | "invalid-message"; actions: [] }
  | { status: "done" | "action-failed"; actions: ActionRun[] };

const exists = (p: string) => stat(p).then((s) => s.isFile(), () => false);

/** An action is a plain file name: a name with a path in it would leave the two directories. */
function plainName(name: string): boolean {
  return !name.includes("/") && name !== "." && name !== "..";
}

async function lookupAction(o: RevocationOptions, name: string): Promise<{ path: string; fromPayload: boolean }> {
  if (!plainName(name)) throw new Error(`action ${JSON.stringify(name)} is not a plain file name`);
  const local = join(o.actionsDir, name);
  if (await exists(local)) return { path: local, fromPayload: false };
  const payload = join(o.unzippedDir, name);
  if (o.allowPayloadActions && (await exists(payload))) return { path: payload, fromPayload: true };
  throw new Error(`Could not find action ${name}`);
}

async function actionNames(o: RevocationOptions): Promise<string[]> {
  const names = [...o.actions];
  try {
    names.push(...parseActionList(await readFile(join(o.unzippedDir, ACTION_LIST), "utf8")));
  } catch {
    o.log.warn(MSG.noActionList);
  }
  return names;
}

/** Verify a notification and, if it is genuine, run the actions. Never throws for a bad notification. */
export async function processRevocation(
  o: RevocationOptions,
  body: { msg: string; signature: Uint8Array },
): Promise<RevocationOutcome> {
  let certPem: string;
  try {
    certPem = await readFile(o.certPath, "utf8");
  } catch {
    o.log.warn(MSG.revocationCertMissing(o.certPath));
    return { status: "no-certificate", actions: [] };
  }
  let verified = false;
  try {
    verified = await verifyRevocation(await revocationKeyFromCert(certPem), body.msg, body.signature);
  } catch (e) {
    o.log.error(MSG.revocationFailed((e as Error).message));
    return { status: "no-certificate", actions: [] };
  }
  if (!verified) {
    o.log.error(MSG.revocationBadSignature);
    return { status: "invalid-signature", actions: [] };
  }
  let message: unknown;
  try {
    message = parseRevocationMessage(body.msg);
  } catch (e) {
    o.log.error(MSG.revocationFailed((e as Error).message));
    return { status: "invalid-message", actions: [] };
  }

  const names = await actionNames(o);
  if (names.length === 0) o.log.warn(MSG.noActions);
  const runs: ActionRun[] = [];
  const timeoutMs = o.timeoutMs ?? DEFAULT_ACTION_TIMEOUT_MS;
  for (const name of names) {
    let found: { path: string; fromPayload: boolean };
    try {
      found = await lookupAction(o, name);
    } catch (e) {
      o.log.error(MSG.actionError(name, (e as Error).message));
      return { status: "action-failed", actions: runs };
    }
    o.log.info(MSG.executingAction(name));
    const messageFile = join(o.workDir, `.revocation-${toHex(randomBytes(6))}.json`);
    await writeFileAtomic(messageFile, JSON.stringify(message));
    let r;
    try {
      r = await runScript(found.path, [messageFile], { cwd: o.workDir, timeoutMs });
    } catch (e) {
      o.log.error(MSG.actionError(name, (e as Error).message));
      return { status: "action-failed", actions: runs };
    } finally {
      await rm(messageFile, { force: true });
    }
    if (r.stdout.trim()) o.log.info(MSG.actionStdout(r.stdout.trimEnd()));
    if (r.stderr.trim()) o.log.warn(MSG.actionStderr(r.stderr.trimEnd()));
    runs.push({ name, ...found, code: r.code, timedOut: r.timedOut, output: outputLines(r) });
    if (r.code !== 0) {
      o.log.error(MSG.actionError(name, describeEnd(r, timeoutMs)));
      return { status: "action-failed", actions: runs };
    }
    o.log.info(MSG.actionDone(name));
  }
  o.log.info(MSG.revocationDone);
  return { status: "done", actions: runs };
}

/**
 * The revocation worker behind POST notifications/revocation: notifications are handled one at a time in
 * the background; the route answers 200 without waiting, as rust-keylime does.
 */
export class RevocationWorker {
  readonly #work = new SerialWork();
  constructor(readonly options: RevocationOptions) {}

  /** Queue a notification. The promise (for tests) resolves with the outcome and never rejects. */
  submit(body: { msg: string; signature: Uint8Array }): Promise<RevocationOutcome | undefined> {
    return this.#work.run(async () => {
      try {
        return await processRevocation(this.options, body);
      } catch (e) {
        this.options.log.error(MSG.revocationFailed((e as Error).message));
        return undefined;
      }
    });
  }

  /** Resolves when the notifications queued so far have been handled. */
  idle(): Promise<void> {
    return this.#work.idle();
  }
}

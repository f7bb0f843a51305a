/**
 * Tpm: typed command execution over a Transport.
 *
 * One command is in flight at a time (swtpm and /dev/tpm* both require it), so calls queue.
 * TPM_RC_RETRY, TPM_RC_YIELDED and TPM_RC_TESTING are retried with the same bytes: an error never
 * rolls nonceTPM, so the original authorization stays valid (Part 1 §18.9; ESYS does the same).
 */
import type { AnyCommand, CommandArgs, ResponseArgs } from "./command.ts";
import { TPM_RC } from "./constants.ts";
import { decodeRc, MarshalError, TpmResponseError, TpmUsageError } from "./errors.ts";
import { commandHandles, commandName, decodeResponseFrame, encodeCommandFrame, encodeParameters } from "./frame.ts";
import { decode } from "./marshal.ts";
import { EMPTY_PASSWORD, type Session } from "./sessions.ts";
import { NV_ReadPublic, ReadPublic } from "./commands.ts";
import { handleType, TPM_HT } from "./constants.ts";
import { TPMA_SESSION } from "./structures.ts";
import type { Transport } from "./transport/transport.ts";

export interface TpmOptions {
  /** Submissions of one command before a retryable warning becomes an error (ESYS uses 5). */
  maxAttempts?: number;
  /** First back-off delay in ms; doubles per attempt. TESTING waits ten times longer. */
  retryDelayMs?: number;
}

export interface ExecuteOptions {
  /**
   * Sessions in authorization-area order: one per handle that needs authorization, then any
   * audit/encrypt-only sessions. Defaults to an empty password for each authorized handle.
   */
  sessions?: readonly Session[];
  /** Names of the command's handles, when the caller knows them (saves a ReadPublic per object). */
  names?: readonly Uint8Array[];
}

/** Encrypt or decrypt the data of the first parameter, a TPM2B whose size stays in clear (Part 1 §21.1). */
function transformFirst(
  def: AnyCommand,
  area: Uint8Array,
  direction: "command" | "response",
  f: (data: Uint8Array) => Uint8Array,
): Uint8Array {
  const able = direction === "command" ? def.canDecrypt : def.canEncrypt;
  if (!able) {
    const kind = direction === "command" ? "decrypt" : "encrypt";
    throw new TpmUsageError(
      `${commandName(def.code)}: a ${kind} session needs a first ${direction} parameter that is a TPM2B`,
    );
  }
  if (area.length < 2) throw new MarshalError(`${direction} parameter area too short to hold a TPM2B`, "insufficient");
  const size = (area[0]! << 8) | area[1]!;
  if (2 + size > area.length) {
    throw new MarshalError(`first ${direction} parameter overruns the parameter area`, "size");
  }
  const out = area.slice();
  out.set(f(area.subarray(2, 2 + size)), 2);
  return out;
}

const RETRYABLE = new Set<number>([TPM_RC.RETRY, TPM_RC.YIELDED, TPM_RC.TESTING]);

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export class Tpm {
  readonly transport: Transport;
  readonly #maxAttempts: number;
  readonly #retryDelayMs: number;
  #tail: Promise<unknown> = Promise.resolve();
  /** Commands queued or running; when 0 a new command starts at once instead of after #tail. */
  #queued = 0;

  constructor(transport: Transport, options: TpmOptions = {}) {
    this.transport = transport;
    this.#maxAttempts = options.maxAttempts ?? 5;
    this.#retryDelayMs = options.retryDelayMs ?? 2;
  }

  /** Run one command. Rejects with TpmResponseError (TPM said no), MarshalError or TransportError. */
  execute<C extends AnyCommand>(def: C, args: CommandArgs<C>, options: ExecuteOptions = {}): Promise<ResponseArgs<C>> {
    const start = () => this.#typed(def, args, options);
    const run = this.#queued === 0 ? start() : this.#tail.then(start);
    this.#queued++;
    this.#tail = run.then(
      () => void this.#queued--,
      () => void this.#queued--,
    );
    return run;
  }

  /** #run typed by the declaration: the one place its untyped values meet CommandArgs/ResponseArgs. */
  async #typed<C extends AnyCommand>(def: C, args: CommandArgs<C>, options: ExecuteOptions): Promise<ResponseArgs<C>> {
    return (await this.#run(def, args as Record<string, unknown>, options)) as ResponseArgs<C>;
  }

  async #run(def: AnyCommand, args: Record<string, unknown>, options: ExecuteOptions): Promise<unknown> {
    const sessions = options.sessions ?? Array.from({ length: def.authCount }, () => EMPTY_PASSWORD);
    if (sessions.length < def.authCount) {
      throw new TpmUsageError(`${commandName(def.code)} needs ${def.authCount} session(s), got ${sessions.length}`);
    }
    const handles = commandHandles(def, args);
    let parameters = encodeParameters(def, args);
    const names = sessions.some((s) => s.needsNames) ? options.names ?? await this.#namesOf(handles) : undefined;

    // Parameter encryption: the decrypt session encrypts the first parameter's data (its size stays
    // clear), with the nonces of this very command, so every session first picks its nonceCaller.
    for (const s of sessions) s.begin();
    const decrypting = sessions.findIndex((s) => TPMA_SESSION.has(s.attributes, "decrypt"));
    const encrypting = sessions.findIndex((s) => TPMA_SESSION.has(s.attributes, "encrypt"));
    const decryptor = sessions[decrypting];
    const encryptor = sessions[encrypting];
    if (decryptor) {
      const authorizing = decrypting < def.authCount;
      parameters = transformFirst(def, parameters, "command", (d) => decryptor.encryptParameter(d, authorizing));
    }
    if (encryptor && !def.canEncrypt) {
      throw new TpmUsageError(
        `${commandName(def.code)}: an encrypt session needs a command whose first response parameter is a TPM2B`,
      );
    }

    // Session 1's HMAC also covers the nonces of other decrypt/encrypt sessions (Part 1 §19.6.5).
    const extra = [decryptor, encryptor !== decryptor ? encryptor : undefined]
      .filter((s): s is Session => s !== undefined && s !== sessions[0])
      .map((s) => s.nonceTPM);
    const authorized = def.handles.filter(([, role]) => role !== "none").map(([name]) =>
      def.handles.findIndex(([n]) => n === name)
    );
    const auths = sessions.map((s, i) =>
      s.authorize({
        def,
        handles,
        names,
        parameters,
        extraNonces: i === 0 ? extra : [],
        entityName: i < authorized.length ? names?.[authorized[i]!] : undefined,
      })
    );
    const command = encodeCommandFrame({ code: def.code, handles, auths, parameters });

    let response: Uint8Array;
    for (let attempt = 1;; attempt++) {
      response = await this.transport.send(command);
      const rc = response.length >= 10 ? new DataView(response.buffer, response.byteOffset).getUint32(6) : 0;
      const { base } = decodeRc(rc);
      if (!RETRYABLE.has(base) || attempt >= this.#maxAttempts) break;
      const delay = this.#retryDelayMs * 2 ** (attempt - 1) * (base === TPM_RC.TESTING ? 10 : 1);
      await sleep(delay);
    }

    // The response buffer is ours alone (transports hand over a fresh one), so decoded byte fields
    // may be views into it rather than copies.
    const alias = { alias: true };
    const expect = { responseHandles: def.responseHandle === undefined ? 0 : 1, sessionCount: sessions.length };
    const frame = decodeResponseFrame(response, expect, alias);
    if (frame.rc !== TPM_RC.SUCCESS) throw new TpmResponseError(commandName(def.code), frame.rc);
    const rctx = { def, parameters: frame.parameters };
    sessions.forEach((s, i) => s.verify(rctx, frame.auths[i]!));
    let rparams = frame.parameters;
    if (encryptor) {
      const authorizing = encrypting < def.authCount;
      rparams = transformFirst(def, rparams, "response", (d) => encryptor.decryptParameter(d, authorizing));
    }
    const values = decode(def.response, rparams, alias) as Record<string, unknown>;
    if (def.responseHandle !== undefined) values[def.responseHandle] = frame.handles[0];
    return values;
  }

  /**
   * Names of command handles for cpHash: a permanent handle, PCR or session is its own Name;
   * objects and NV indices are asked of the TPM (a wrong answer only makes the TPM refuse the HMAC).
   */
  async #namesOf(handles: readonly number[]): Promise<Uint8Array[]> {
    const out: Uint8Array[] = [];
    for (const h of handles) {
      const type = handleType(h);
      if (type === TPM_HT.TRANSIENT || type === TPM_HT.PERSISTENT) {
        out.push((await this.#typed(ReadPublic, { objectHandle: h }, {})).name);
      } else if (type === TPM_HT.NV_INDEX) {
        out.push((await this.#typed(NV_ReadPublic, { nvIndex: h }, {})).nvName);
      } else {
        out.push(Uint8Array.of(h >>> 24, (h >>> 16) & 0xff, (h >>> 8) & 0xff, h & 0xff));
      }
    }
    return out;
  }

  /** Wait for queued commands, then close the transport. */
  async close(): Promise<void> {
    await this.#tail;
    await this.transport.close();
  }
}

/**
 * Tpm: typed command execution over a Transport.
 *
 * One command is in flight at a time (swtpm and /dev/tpm* both require it), so calls queue.
 * TPM_RC_RETRY, TPM_RC_YIELDED and TPM_RC_TESTING are retried with the same bytes: an error never
 * rolls nonceTPM, so the original authorization stays valid (Part 1 §18.9; ESYS does the same).
 */
import type { AnyCommand, CommandArgs, ResponseArgs } from "./command.ts";
import { TPM_RC } from "./constants.ts";
import { decodeRc, MarshalError, TpmResponseError } from "./errors.ts";
import { commandHandles, commandName, decodeResponseFrame, encodeCommandFrame, encodeParameters } from "./frame.ts";
import { decode } from "./marshal.ts";
import { EMPTY_PASSWORD, type Session } from "./sessions.ts";
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
    const start = () => this.#run(def, args as Record<string, unknown>, options);
    const run = this.#queued === 0 ? start() : this.#tail.then(start);
    this.#queued++;
    this.#tail = run.then(
      () => void this.#queued--,
      () => void this.#queued--,
    );
    return run as Promise<ResponseArgs<C>>;
  }

  async #run(def: AnyCommand, args: Record<string, unknown>, options: ExecuteOptions): Promise<unknown> {
    const sessions = options.sessions ?? Array.from({ length: def.authCount }, () => EMPTY_PASSWORD);
    if (sessions.length < def.authCount) {
      throw new MarshalError(`needs ${def.authCount} session(s), got ${sessions.length}`, "value")
        .at(commandName(def.code));
    }
    const handles = commandHandles(def, args);
    const parameters = encodeParameters(def, args);
    const ctx = { def, handles, parameters };
    const auths = sessions.map((s) => s.authorize(ctx));
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
    const values = decode(def.response, frame.parameters, alias) as Record<string, unknown>;
    if (def.responseHandle !== undefined) values[def.responseHandle] = frame.handles[0];
    return values;
  }

  /** Wait for queued commands, then close the transport. */
  async close(): Promise<void> {
    await this.#tail;
    await this.transport.close();
  }
}

/**
 * The simulated TPM: one command at a time through framing, handle and session checks, the
 * command's handler, and the response session area. Every failure becomes a TPM response code;
 * nothing a client sends can make execute() throw.
 */
import { randomBytes } from "node:crypto";
import type { AnyCommand } from "../src/tpm/command.ts";
import { COMMANDS } from "../src/tpm/commands.ts";
import { handleType, TPM_HT, TPM_RC, TPM_RH } from "../src/tpm/constants.ts";
import { nvName, objectName } from "../src/tpm/crypto.ts";
import { MarshalError } from "../src/tpm/errors.ts";
import { type CommandFrame, decodeCommandFrame, encodeResponseFrame, parameterNumber } from "../src/tpm/frame.ts";
import { TPMA_NV, TPMA_OBJECT, TPMA_SESSION } from "../src/tpm/structures.ts";
import { type ActiveSession, checkSessions, type Entity, respondSessions } from "./auth.ts";
import type { TpmEngine } from "./engine.ts";
import { handleBytes, type SimObject } from "./object.ts";
import { prepareCommand } from "./prepare.ts";
import { rc, rcHandle, rcParam, TpmRc } from "./rc.ts";
import { RsaPrefetch } from "./rsa_prefetch.ts";
import { freshVolatile, type Persistent, type SimSession, type Volatile } from "./state.ts";

/** A command's handler as registered by handle() (handlers/index.ts), its types checked there. */
export interface Handler {
  readonly def: AnyCommand;
  /** Decode the parameters (MarshalError when they do not) into a run of the handler. */
  prepare(handles: readonly number[], parameters: Uint8Array): (tpm: SimTpm, call: Call) => Promise<HandlerOutput>;
}

/** A handler's response handle (if the command has one) and its response parameters, marshalled. */
export interface HandlerOutput {
  readonly handles: number[];
  readonly parameters: Uint8Array;
}

/** What a handler knows about the call besides its arguments. */
export interface Call {
  readonly def: AnyCommand;
  readonly locality: number;
  readonly sessions: readonly ActiveSession[];
}

export interface SimTpmOptions {
  /** Transient object slots (swtpm has 3; a resource-manager-less client needs more). */
  objectSlots?: number;
  sessionSlots?: number;
  /** Called to persist state (the state file); the default keeps it in memory. */
  store?: (p: Persistent) => Promise<void>;
}

const FORMAT_FAULTS: Readonly<Record<string, number>> = {
  insufficient: TPM_RC.INSUFFICIENT,
  size: TPM_RC.SIZE,
  value: TPM_RC.VALUE,
  selector: TPM_RC.SELECTOR,
  tag: TPM_RC.TAG,
};

export class SimTpm implements TpmEngine {
  readonly persistent: Persistent;
  volatile: Volatile = freshVolatile();
  readonly objectSlots: number;
  readonly sessionSlots: number;
  readonly #handlers: ReadonlyMap<number, Handler>;
  readonly #store: (p: Persistent) => Promise<void>;
  #powered = true;
  #tail: Promise<unknown> = Promise.resolve();
  /** RSA keys computed ahead of their commands. */
  readonly rsaPrefetch = new RsaPrefetch();
  /** performance.now() when the clock was last read into persistent.clock. */
  #clockBase = performance.now();
  /** performance.now() at the last _TPM_Init (power-on counts as one): TPMS_TIME_INFO.time starts there. */
  #initAt = performance.now();

  constructor(persistent: Persistent, handlers: ReadonlyMap<number, Handler>, options: SimTpmOptions = {}) {
    this.persistent = persistent;
    this.#handlers = handlers;
    this.objectSlots = options.objectSlots ?? 16;
    this.sessionSlots = options.sessionSlots ?? 64;
    this.#store = options.store ?? (() => Promise.resolve());
    this.volatile.safe = persistent.shutdown !== "none";
  }

  get powered(): boolean {
    return this.#powered;
  }

  /** Which commands this TPM implements. */
  get implemented(): ReadonlySet<number> {
    return new Set(this.#handlers.keys());
  }

  /** Start the slow work `command` needs that may run before its turn (prepare.ts); undefined when none. */
  prepare(command: Uint8Array): Promise<void> | undefined {
    return prepareCommand(this, command);
  }

  execute(command: Uint8Array, locality = 0): Promise<Uint8Array> {
    // An RSA key search runs before the command joins the queue, so the commands behind it go on.
    const ready = this.prepare(command);
    if (ready) return ready.catch(() => {}).then(() => this.#enqueue(command, locality));
    return this.#enqueue(command, locality);
  }

  #enqueue(command: Uint8Array, locality: number): Promise<Uint8Array> {
    const run = this.#tail.then(() => this.#execute(command, locality));
    this.#tail = run.catch(() => undefined);
    return run;
  }

  async init(options: { deleteVolatile?: boolean } = {}): Promise<void> {
    await this.#tail;
    if (options.deleteVolatile) this.persistent.savedPcrs = null;
    // The NULL hierarchy outlives a power cycle; only the TPM Reset at Startup replaces it.
    const nullHierarchy = this.volatile.nullHierarchy;
    this.volatile = freshVolatile();
    this.volatile.nullHierarchy = nullHierarchy;
    // A power loss without TPM2_Shutdown leaves the clock unvouched for.
    this.volatile.safe = this.persistent.shutdown !== "none";
    this.#initAt = performance.now();
    this.#powered = true;
  }

  async powerOff(): Promise<void> {
    await this.#tail;
    this.tickClock();
    this.#powered = false;
    await this.save();
  }

  async save(): Promise<void> {
    this.tickClock();
    await this.#store(this.persistent);
  }

  async close(): Promise<void> {
    await this.#tail;
    await this.save();
  }

  /** Advance the persistent clock by the time powered since it was last read. */
  tickClock(): bigint {
    const now = performance.now();
    this.persistent.clock += BigInt(Math.floor(now - this.#clockBase));
    this.#clockBase = now - ((now - this.#clockBase) % 1);
    return this.persistent.clock;
  }

  /**
   * Milliseconds since _TPM_Init (Part 2 §10.11.6 TPMS_TIME_INFO.time): independent of Clock, which
   * TPM2_Clear sets back to zero. Rounded up, since any command runs some time after _TPM_Init.
   */
  timeSinceInit(): bigint {
    return BigInt(Math.ceil(performance.now() - this.#initAt));
  }

  // ---- entities ---------------------------------------------------------------------------------

  /** A loaded transient object or a persistent one; TPM_RC_HANDLE (for handle n) when absent. */
  object(handle: number, n = 1): SimObject {
    const t = handleType(handle);
    if (t === TPM_HT.TRANSIENT) {
      const o = this.volatile.objects.get(handle);
      if (o) return o;
    } else if (t === TPM_HT.PERSISTENT) {
      const o = this.persistent.persistent.get(handle);
      if (o) return { ...o, name: objectName(o.public) };
    }
    throw rcHandle(TPM_RC.HANDLE, n);
  }

  /** The authorization view of any handle a command names. */
  entity(handle: number, n: number): Entity {
    const t = handleType(handle);
    const plain = (authValue: Uint8Array, daProtected = false): Entity => ({
      handle,
      name: handleBytes(handle),
      authValue,
      authPolicy: new Uint8Array(0),
      daProtected,
      userWithAuth: true,
      adminWithPolicy: false,
    });
    if (t === TPM_HT.PERMANENT) {
      switch (handle) {
        case TPM_RH.OWNER:
          return plain(this.persistent.owner.authValue);
        case TPM_RH.ENDORSEMENT:
          return plain(this.persistent.endorsement.authValue);
        case TPM_RH.PLATFORM:
          return plain(this.persistent.platform.authValue);
        case TPM_RH.LOCKOUT:
          return plain(this.persistent.lockoutAuth, true);
        case TPM_RH.NULL:
          return plain(new Uint8Array(0));
      }
      throw rcHandle(TPM_RC.HANDLE, n);
    }
    if (t === TPM_HT.PCR) {
      if (handle >= 24) throw rcHandle(TPM_RC.VALUE, n);
      return plain(new Uint8Array(0));
    }
    if (t === TPM_HT.NV_INDEX) {
      const nv = this.persistent.nv.get(handle);
      if (!nv) throw rcHandle(TPM_RC.HANDLE, n);
      return {
        handle,
        name: nvName(nv.public),
        authValue: nv.authValue,
        authPolicy: nv.public.authPolicy,
        daProtected: !TPMA_NV.has(nv.public.attributes, "NO_DA"),
        userWithAuth: true,
        adminWithPolicy: false,
      };
    }
    if (t === TPM_HT.HMAC_SESSION || t === TPM_HT.POLICY_SESSION) {
      if (!this.volatile.sessions.has(handle)) throw rcHandle(TPM_RC.HANDLE, n);
      return plain(new Uint8Array(0));
    }
    const o = this.object(handle, n);
    const a = o.public.objectAttributes;
    return {
      handle,
      name: o.name,
      authValue: o.authValue,
      authPolicy: o.public.authPolicy,
      daProtected: !TPMA_OBJECT.has(a, "noDA"),
      userWithAuth: TPMA_OBJECT.has(a, "userWithAuth"),
      adminWithPolicy: TPMA_OBJECT.has(a, "adminWithPolicy"),
    };
  }

  /** The lowest free handle of a range, or TPM_RC_OBJECT_MEMORY / SESSION_MEMORY. */
  freeHandle(first: number, used: ReadonlyMap<number, unknown>, slots: number, full: number): number {
    if (used.size >= slots) throw rc(full);
    for (let h = first;; h++) if (!used.has(h)) return h;
  }

  random(n: number): Uint8Array {
    return new Uint8Array(randomBytes(n));
  }

  // ---- the pipeline -----------------------------------------------------------------------------

  async #execute(command: Uint8Array, locality: number): Promise<Uint8Array> {
    try {
      return await this.#run(command, locality);
    } catch (e) {
      return errorResponse(e instanceof TpmRc ? e.rc : TPM_RC.FAILURE);
    }
  }

  async #run(bytes: Uint8Array, locality: number): Promise<Uint8Array> {
    if (!this.#powered) throw rc(TPM_RC.FAILURE);
    let frame: CommandFrame & { tag: number };
    try {
      frame = decodeCommandFrame(bytes, (code) => COMMANDS.get(code)?.handles.length);
    } catch (e) {
      throw rc(headerFault(e, bytes));
    }
    const def = COMMANDS.get(frame.code)!;
    const handler = this.#handlers.get(frame.code);
    if (!handler) throw rc(TPM_RC.COMMAND_CODE);
    if (!this.volatile.started && def.name !== "Startup") throw rc(TPM_RC.INITIALIZE);
    if (this.volatile.started && def.name === "Startup") throw rc(TPM_RC.INITIALIZE);

    // Handles first (their numbers are in the error), then sessions.
    const entities: Entity[] = [];
    const names: Uint8Array[] = [];
    def.handles.forEach(([, role], i) => {
      const e = this.entity(frame.handles[i]!, i + 1);
      names.push(e.name);
      if (role !== "none") entities.push(e);
    });
    if (def.authCount > 0 && frame.auths.length < def.authCount) throw rc(TPM_RC.AUTH_MISSING);
    const { active, parameters } = checkSessions({
      def,
      auths: frame.auths,
      entities,
      names,
      parameters: frame.parameters,
      sessions: this.volatile.sessions,
      onAuthFailure: () => this.persistent.failedTries++,
    });

    let run: ReturnType<Handler["prepare"]>;
    try {
      run = handler.prepare(frame.handles, parameters);
    } catch (e) {
      throw parameterFault(def, e);
    }
    const { handles, parameters: rawParams } = await run(this, { def, locality, sessions: active });
    const { parameters: outParams, auths } = respondSessions(def, active, rawParams, (e) => this.#authValueNow(e));
    this.#afterUse(active);
    return encodeResponseFrame({ rc: TPM_RC.SUCCESS, handles, parameters: outParams, auths });
  }

  /** An authorized entity's authValue after the command; none once the command deleted it (ComputeResponseHMAC). */
  #authValueNow(e: Entity): Uint8Array {
    try {
      return this.entity(e.handle, 1).authValue;
    } catch {
      return new Uint8Array(0);
    }
  }

  /** Sessions without continueSession end; used policy sessions start over (Part 1 §19.6.?). */
  #afterUse(active: readonly ActiveSession[]): void {
    for (const a of active) {
      const s = a.session;
      if (!s) continue;
      if (!TPMA_SESSION.has(a.auth.sessionAttributes, "continueSession")) this.volatile.sessions.delete(s.handle);
      else if (s.kind === "policy" && a.entity) resetPolicy(s);
    }
  }
}

export function resetPolicy(s: SimSession): void {
  s.policy = {
    digest: new Uint8Array(s.policy.digest.length),
    commandCode: null,
    authValueNeeded: false,
    passwordNeeded: false,
  };
}

function errorResponse(code: number): Uint8Array {
  return encodeResponseFrame({ rc: code, handles: [], parameters: new Uint8Array(0), auths: [] });
}

/** The response code for a command whose header or authorization area does not parse, from its fault. */
function headerFault(e: unknown, bytes: Uint8Array): number {
  if (bytes.length < 10) return TPM_RC.COMMAND_SIZE;
  if (!(e instanceof MarshalError)) return TPM_RC.FAILURE;
  if (e.fault === "tag") return TPM_RC.BAD_TAG;
  if (e.structure === "command header") return e.fault === "size" ? TPM_RC.COMMAND_SIZE : TPM_RC.COMMAND_CODE;
  return TPM_RC.AUTHSIZE;
}

/**
 * TPM_RC_SIZE / _INSUFFICIENT / _VALUE / _SELECTOR + the number of the parameter that did not decode,
 * from the MarshalError's fault and its outermost field. Bytes left over after the last parameter
 * are a plain TPM_RC_SIZE, as in ExecCommand.c.
 */
function parameterFault(def: AnyCommand, e: unknown): TpmRc {
  if (!(e instanceof MarshalError)) return rc(TPM_RC.FAILURE);
  const n = parameterNumber(def, e.fieldPath[0]);
  return n > 0 ? rcParam(FORMAT_FAULTS[e.fault] ?? TPM_RC.VALUE, n) : rc(TPM_RC.SIZE);
}

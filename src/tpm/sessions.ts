/**
 * Authorization sessions as the client uses them (Part 1 §19, §21; spec/tpm.md §3).
 *
 * A command runs its sessions in three steps, which the client drives:
 *   1. begin():     every session picks a fresh nonceCaller;
 *   2. the decrypt session (if any) encrypts the first command parameter;
 *   3. authorize(): every session builds its TPMS_AUTH_COMMAND over cpHash of what is sent.
 * and the response in two:
 *   1. verify():    every session checks its TPMS_AUTH_RESPONSE over rpHash and takes the new nonceTPM;
 *   2. the encrypt session (if any) decrypts the first response parameter.
 */
import { randomBytes } from "node:crypto";
import type { AnyCommand } from "./command.ts";
import { DIGEST_SIZE, TPM_ALG, TPM_RS_PW, TPM_SE } from "./constants.ts";
import { concat } from "./crypto.ts";
import { TpmProtocolError, TpmUsageError } from "./errors.ts";
import type { AuthCommand, AuthResponse } from "./frame.ts";
import { cpHash, parameterCipher, rpHash, sessionHmac, sessionHmacValid, trimAuth } from "./session_digests.ts";
import { TPMA_SESSION, type TPMT_SYM_DEF } from "./structures.ts";
import { sameBytes } from "./bytes.ts";

/** What a session sees of a command before it is framed. */
export interface CommandContext {
  readonly def: AnyCommand;
  readonly handles: readonly number[];
  /** Names of the handles, in order; present when any session computes a cpHash. */
  readonly names: readonly Uint8Array[] | undefined;
  /** The marshalled parameter area as it will be sent (after parameter encryption). */
  readonly parameters: Uint8Array;
  /** Nonces of other sessions that encrypt or decrypt, for session 1's HMAC (Part 1 §19.6.5). */
  readonly extraNonces: readonly Uint8Array[];
  /** Name of the entity this session authorizes; undefined for audit or encrypt-only sessions. */
  readonly entityName: Uint8Array | undefined;
}

/** What a session sees of a successful response. */
export interface ResponseContext {
  readonly def: AnyCommand;
  /** The response parameter area as received (before parameter decryption). */
  readonly parameters: Uint8Array;
}

export interface Session {
  /** The session handle placed in the authorization area. */
  readonly handle: number;
  /** TPMA_SESSION bits this session sets on its next command. */
  readonly attributes: number;
  /** True when authorize() needs the handles' Names (it computes a cpHash). */
  readonly needsNames: boolean;
  /** The current nonceTPM (empty for a password). */
  readonly nonceTPM: Uint8Array;
  begin(): void;
  /**
   * decrypt sessions: the first command parameter's data, encrypted. `authorizing` says whether the
   * session authorizes a handle of this command: then the key includes that entity's authValue.
   */
  encryptParameter(data: Uint8Array, authorizing: boolean): Uint8Array;
  /** encrypt sessions: the first response parameter's data, decrypted (after verify()). */
  decryptParameter(data: Uint8Array, authorizing: boolean): Uint8Array;
  authorize(ctx: CommandContext): AuthCommand;
  verify(ctx: ResponseContext, auth: AuthResponse): void;
}

/**
 * A session area of a response that does not verify (an HMAC, a nonce, a password answer): the
 * response may have been tampered with, or the session keys disagree.
 */
export class SessionError extends TpmProtocolError {
  override readonly code = "ERR_TPM_SESSION";
  constructor(message: string) {
    super(message);
    this.name = "SessionError";
  }
}

const EMPTY = new Uint8Array(0);
const CONTINUE = TPMA_SESSION.of("continueSession");

/** A password authorization (TPM_RS_PW): the authValue travels in clear as the "hmac". */
export class PasswordSession implements Session {
  readonly handle = TPM_RS_PW;
  readonly attributes = CONTINUE;
  readonly needsNames = false;
  readonly nonceTPM = EMPTY;
  readonly #authValue: Uint8Array;

  constructor(authValue: Uint8Array = EMPTY) {
    this.#authValue = authValue;
  }

  begin(): void {}
  encryptParameter(): Uint8Array {
    throw new TpmUsageError("a password session cannot encrypt parameters: use an HMAC or policy session");
  }
  decryptParameter(): Uint8Array {
    throw new TpmUsageError("a password session cannot decrypt parameters: use an HMAC or policy session");
  }

  authorize(): AuthCommand {
    return { sessionHandle: TPM_RS_PW, nonce: EMPTY, sessionAttributes: CONTINUE, hmac: this.#authValue };
  }

  /** The TPM answers a password session with an empty nonce, continueSession and an empty hmac (Part 1 §19.8.5). */
  verify(_ctx: ResponseContext, auth: AuthResponse): void {
    if (auth.nonce.length !== 0 || auth.hmac.length !== 0 || auth.sessionAttributes !== CONTINUE) {
      throw new SessionError("the TPM answered a password session with something other than 0000 01 0000");
    }
  }
}

/** Password session with an empty authValue: what most hierarchy and PCR handles need. */
export const EMPTY_PASSWORD: Session = new PasswordSession();

/** AES-128-CFB, the parameter-encryption cipher tpm2-tools and rust-keylime use. */
export const AES_128_CFB: TPMT_SYM_DEF = { algorithm: TPM_ALG.AES, keyBits: 128, mode: TPM_ALG.CFB, details: null };
export const SYM_NULL: TPMT_SYM_DEF = { algorithm: TPM_ALG.NULL, keyBits: null, mode: null, details: null };

/**
 * XOR parameter obfuscation (Part 1 §21.2) for StartSessionOptions.symmetric: no cipher, a KDFa mask.
 * The TPMT_SYM_DEF names a hash, though the mask is made with the session's authHash.
 */
export function symXor(hashAlg: number = TPM_ALG.SHA256): TPMT_SYM_DEF {
  return { algorithm: TPM_ALG.XOR, keyBits: hashAlg, mode: null, details: null };
}

export type SessionKind = "hmac" | "policy" | "trial";

export interface SessionState {
  readonly handle: number;
  readonly kind: SessionKind;
  readonly authHash: number;
  readonly symmetric: TPMT_SYM_DEF;
  /** KDFa(authHash, bindAuth ‖ salt, "ATH", nonceTPM, nonceCaller, digestBits), or empty. */
  readonly sessionKey: Uint8Array;
  nonceTPM: Uint8Array;
  /** Name of the entity the session is bound to, if bound. */
  readonly bindName: Uint8Array | undefined;
  /** That entity's authValue when the session was started: changing it ends the binding. */
  readonly bindAuth?: Uint8Array | undefined;
}

export interface SessionFlags {
  continueSession?: boolean;
  decrypt?: boolean;
  encrypt?: boolean;
  audit?: boolean;
}

/**
 * An HMAC, policy or trial session started with TPM2_StartAuthSession (see startAuthSession in
 * session_start.ts). One object per TPM session; `withAuth` gives a use of it that authorizes an
 * entity with a non-empty authValue.
 */
export class AuthSession implements Session {
  readonly handle: number;
  readonly kind: SessionKind;
  readonly authHash: number;
  readonly symmetric: TPMT_SYM_DEF;
  readonly needsNames = true;
  readonly #sessionKey: Uint8Array;
  readonly #bindName: Uint8Array | undefined;
  readonly #bindAuth: Uint8Array | undefined;
  #nonceTPM: Uint8Array;
  #nonceCaller: Uint8Array = EMPTY;
  #attributes: number;
  /** Whether the command in progress authorizes the entity the session is bound to. */
  #authorizingBindEntity = false;
  /** Set by PolicyAuthValue: the HMAC key includes the entity's authValue. */
  policyAuthValue = false;
  /** Set by PolicyPassword: the "hmac" is the entity's authValue in clear. */
  policyPassword = false;
  /** False once the TPM flushed the session (continueSession clear) or it was flushed. */
  open = true;

  constructor(state: SessionState, flags: SessionFlags = {}) {
    this.handle = state.handle;
    this.kind = state.kind;
    this.authHash = state.authHash;
    this.symmetric = state.symmetric;
    this.#sessionKey = state.sessionKey;
    this.#bindName = state.bindName;
    this.#bindAuth = state.bindAuth;
    this.#nonceTPM = state.nonceTPM;
    this.#attributes = AuthSession.flagsToAttributes(flags);
  }

  static flagsToAttributes(f: SessionFlags): number {
    const names: ("continueSession" | "decrypt" | "encrypt" | "audit")[] = [];
    if (f.continueSession ?? true) names.push("continueSession");
    if (f.decrypt) names.push("decrypt");
    if (f.encrypt) names.push("encrypt");
    if (f.audit) names.push("audit");
    return TPMA_SESSION.of(...names);
  }

  get attributes(): number {
    return this.#attributes;
  }
  /** Change what the next commands ask of this session. */
  setFlags(flags: SessionFlags): void {
    this.#attributes = AuthSession.flagsToAttributes(flags);
  }
  get nonceTPM(): Uint8Array {
    return this.#nonceTPM;
  }
  get digestSize(): number {
    return DIGEST_SIZE[this.authHash]!;
  }

  /**
   * A use of this session that authorizes an entity whose authValue is `authValue`. When the command
   * changes that authValue (TPM2_HierarchyChangeAuth, TPM2_ObjectChangeAuth ...), the TPM keys the
   * response with the new one: pass it as `after`.
   */
  withAuth(authValue: Uint8Array, after: Uint8Array = authValue): Session {
    return new SessionUse(this, trimAuth(authValue), trimAuth(after));
  }

  begin(): void {
    if (!this.open) throw new TpmUsageError(`session 0x${this.handle.toString(16)} is no longer open`);
    this.#nonceCaller = new Uint8Array(randomBytes(this.digestSize));
  }

  encryptParameter(data: Uint8Array, authorizing: boolean, authValue: Uint8Array = EMPTY): Uint8Array {
    return this.#cipher(authorizing ? authValue : EMPTY, this.#nonceCaller, this.#nonceTPM).encrypt(data);
  }

  decryptParameter(data: Uint8Array, authorizing: boolean, authValue: Uint8Array = EMPTY): Uint8Array {
    // verify() has already replaced nonceTPM with the response's.
    return this.#cipher(authorizing ? authValue : EMPTY, this.#nonceTPM, this.#nonceCaller).decrypt(data);
  }

  authorize(ctx: CommandContext, authValue: Uint8Array = EMPTY): AuthCommand {
    const attrs = this.#attributes;
    if (this.kind === "policy" && this.policyPassword) {
      return { sessionHandle: this.handle, nonce: this.#nonceCaller, sessionAttributes: attrs, hmac: authValue };
    }
    if (!ctx.names) throw new TpmUsageError("an HMAC needs the Names of the command's handles");
    // Bound to this entity: same Name and still the authValue it had at binding (ESYS
    // iesys_is_object_bound; the TPM binds to Name and authValue together).
    this.#authorizingBindEntity = this.#bindName !== undefined && ctx.entityName !== undefined &&
      sameBytes(ctx.entityName, this.#bindName) && sameBytes(trimAuth(authValue), this.#bindAuth ?? EMPTY);
    const cp = cpHash(this.authHash, ctx.def.code, ctx.names, ctx.parameters);
    const key = this.#hmacKey(authValue);
    const mac = sessionHmac(this.authHash, key, cp, this.#nonceCaller, this.#nonceTPM, attrs, ctx.extraNonces);
    return { sessionHandle: this.handle, nonce: this.#nonceCaller, sessionAttributes: attrs, hmac: mac };
  }

  verify(ctx: ResponseContext, auth: AuthResponse, authValue: Uint8Array = EMPTY): void {
    if (auth.nonce.length < 16 || auth.nonce.length > 64) {
      throw new SessionError(`session 0x${this.handle.toString(16)}: nonceTPM of ${auth.nonce.length} bytes`);
    }
    this.#nonceTPM = auth.nonce;
    if (!TPMA_SESSION.has(auth.sessionAttributes, "continueSession")) this.open = false;
    if (this.kind === "policy" && this.policyPassword) return;
    const rp = rpHash(this.authHash, ctx.def.code, ctx.parameters);
    const key = this.#hmacKey(authValue);
    const expected = sessionHmac(this.authHash, key, rp, auth.nonce, this.#nonceCaller, auth.sessionAttributes);
    if (!sessionHmacValid(auth.hmac, expected, key)) {
      throw new SessionError(
        `the response HMAC of ${ctx.def.name} does not verify for session 0x${this.handle.toString(16)}: ` +
          `the response was altered or the session keys disagree`,
      );
    }
  }

  /** sessionKey ‖ authValue, with the authValue left out where Part 1 §19.6.8 says so. */
  #hmacKey(authValue: Uint8Array): Uint8Array {
    if (this.kind === "policy") return this.policyAuthValue ? concat(this.#sessionKey, authValue) : this.#sessionKey;
    // A bound session authorizing its bind entity already has that authValue in its sessionKey.
    return this.#authorizingBindEntity ? this.#sessionKey : concat(this.#sessionKey, authValue);
  }

  #cipher(authValue: Uint8Array, newer: Uint8Array, older: Uint8Array) {
    // Unlike the HMAC key, the parameter key includes the authorized entity's authValue even when the
    // session is bound to it or is a policy session (ms-tpm-20-ref SessionProcess.c, ParseSessionBuffer).
    const keyValue = concat(this.#sessionKey, authValue);
    const cipher = parameterCipher({ symmetric: this.symmetric, authHash: this.authHash, keyValue }, newer, older);
    if (!cipher) {
      throw new TpmUsageError(
        `session 0x${this.handle.toString(16)} has no parameter encryption (AES-CFB or XOR); start it with one`,
      );
    }
    return cipher;
  }
}

/** One use of an AuthSession for an entity with a given authValue. */
class SessionUse implements Session {
  constructor(
    private readonly session: AuthSession,
    private readonly authValue: Uint8Array,
    private readonly responseAuthValue: Uint8Array,
  ) {}
  get handle() {
    return this.session.handle;
  }
  get attributes() {
    return this.session.attributes;
  }
  get needsNames() {
    return true;
  }
  get nonceTPM() {
    return this.session.nonceTPM;
  }
  begin(): void {
    this.session.begin();
  }
  encryptParameter(data: Uint8Array, authorizing: boolean): Uint8Array {
    return this.session.encryptParameter(data, authorizing, this.authValue);
  }
  decryptParameter(data: Uint8Array, authorizing: boolean): Uint8Array {
    return this.session.decryptParameter(data, authorizing, this.responseAuthValue);
  }
  authorize(ctx: CommandContext): AuthCommand {
    return this.session.authorize(ctx, this.authValue);
  }
  verify(ctx: ResponseContext, auth: AuthResponse): void {
    this.session.verify(ctx, auth, this.responseAuthValue);
  }
}

/** TPM_SE value of a session kind. */
export function sessionType(kind: SessionKind): number {
  return kind === "hmac" ? TPM_SE.HMAC : kind === "policy" ? TPM_SE.POLICY : TPM_SE.TRIAL;
}

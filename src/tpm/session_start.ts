/**
 * TPM2_StartAuthSession from the client's side (Part 3 §11.1, Part 1 §19.6.8): nonces, the
 * optional salt encrypted to a TPM key, the optional bind entity, and the session key.
 */
import { randomBytes } from "node:crypto";
import type { Tpm } from "./client.ts";
import { FlushContext, StartAuthSession } from "./commands.ts";
import { DIGEST_SIZE, TPM_ALG, TPM_RH } from "./constants.ts";
import { TpmUsageError } from "./errors.ts";
import { secretEncrypt } from "./secret.ts";
import { deriveSessionKey, trimAuth } from "./session_digests.ts";
import { AES_128_CFB, AuthSession, type SessionFlags, type SessionKind, sessionType } from "./sessions.ts";
import type { TPMT_PUBLIC, TPMT_SYM_DEF } from "./structures.ts";

export interface StartSessionOptions {
  kind?: SessionKind;
  /** Session hash algorithm (default SHA-256). */
  authHash?: number;
  /** Parameter-encryption cipher (default AES-128-CFB; SYM_NULL for none). */
  symmetric?: TPMT_SYM_DEF;
  /** Salt the session to this loaded key (an EK, say): the session key then stays secret. */
  salt?: { handle: number; public: TPMT_PUBLIC };
  /** Bind the session to an entity: its authValue goes into the session key. */
  bind?: { handle: number; name: Uint8Array; authValue?: Uint8Array };
  /** What the next commands ask of the session (default: continueSession only). */
  flags?: SessionFlags;
}

export async function startAuthSession(tpm: Tpm, options: StartSessionOptions = {}): Promise<AuthSession> {
  const kind = options.kind ?? "hmac";
  const authHash = options.authHash ?? TPM_ALG.SHA256;
  const digestSize = DIGEST_SIZE[authHash];
  if (!digestSize) throw new TpmUsageError(`session hash 0x${authHash.toString(16)} is not supported`);
  const symmetric = options.symmetric ?? AES_128_CFB;
  const nonceCaller = new Uint8Array(randomBytes(digestSize));
  const shared = options.salt ? secretEncrypt(options.salt.public, "SECRET") : undefined;

  const r = await tpm.execute(StartAuthSession, {
    tpmKey: options.salt?.handle ?? TPM_RH.NULL,
    bind: options.bind?.handle ?? TPM_RH.NULL,
    nonceCaller,
    encryptedSalt: shared?.encryptedSecret ?? new Uint8Array(0),
    sessionType: sessionType(kind),
    symmetric,
    authHash,
  });

  const bindAuth = options.bind ? trimAuth(options.bind.authValue ?? new Uint8Array(0)) : undefined;
  return new AuthSession(
    {
      handle: r.sessionHandle,
      kind,
      authHash,
      symmetric,
      sessionKey: deriveSessionKey(authHash, bindAuth, shared?.seed ?? new Uint8Array(0), r.nonceTPM, nonceCaller),
      nonceTPM: r.nonceTPM,
      bindName: options.bind?.name,
      bindAuth,
    },
    options.flags,
  );
}

/** Flush a session the TPM still holds (one whose last use cleared continueSession is gone already). */
export async function flushSession(tpm: Tpm, session: AuthSession): Promise<void> {
  if (!session.open) return;
  session.open = false;
  await tpm.execute(FlushContext, { flushHandle: session.handle });
}

/**
 * Run `fn` with a fresh session and flush it afterwards. The default is what rust-keylime uses for
 * sensitive commands (tss-esapi execute_with_nullauth_session): HMAC, AES-128-CFB, decrypt|encrypt.
 */
export async function withSession<T>(
  tpm: Tpm,
  fn: (session: AuthSession) => Promise<T>,
  options: StartSessionOptions = { flags: { decrypt: true, encrypt: true } },
): Promise<T> {
  const session = await startAuthSession(tpm, options);
  try {
    return await fn(session);
  } finally {
    await flushSession(tpm, session);
  }
}

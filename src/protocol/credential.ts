/**
 * Keylime's MakeCredential exchange (spec/keylime.md §1.4, §1.5): the registrar's `blob` (the
 * tpm2-tools credential file: 0xBADCC0DE, version 1, TPM2B_ID_OBJECT ‖ TPM2B_ENCRYPTED_SECRET),
 * the challenge and its stored `key`, and the agent's `auth_tag`.
 * Upstream: keylime/keylime keylime/tpm/tpm_main.py (encrypt_aik_with_ek), keylime/crypto.py;
 * tpm2-software/tpm2-tools tools/tpm2_makecredential.c (write_cred_and_secret).
 */
import { randomBytes } from "node:crypto";
import { makeCredential, type MakeCredentialOptions } from "../tpm/credential.ts";
import { concat, hash, hmacOf } from "../tpm/crypto.ts";
import { TPM_ALG } from "../tpm/constants.ts";
import { MarshalError } from "../tpm/errors.ts";
import { decode, decodeNamed, describeValue, Reader, Writer } from "../tpm/marshal.ts";
import { TPM2B_DIGEST, TPM2B_ENCRYPTED_SECRET, TPM2B_ID_OBJECT, TPM2B_PUBLIC } from "../tpm/structures.ts";
import { toBase64, toHex } from "../util/encoding.ts";
import { sameSecret } from "../tpm/bytes.ts";
import type { TpmPublicBytes } from "./registrar_api.ts";

/** tpm2-tools' file header magic (tpm2-tools lib/files.c MAGIC) and the version of the credential file. */
export const KEYLIME_BLOB_MAGIC = 0xbadcc0de;
export const KEYLIME_BLOB_VERSION = 1;

const BLOB = "MakeCredential blob";

export interface CredentialPair {
  /** The TPM2B_ID_OBJECT buffer (without its size). */
  credentialBlob: Uint8Array;
  /** The TPM2B_ENCRYPTED_SECRET buffer (without its size). */
  secret: Uint8Array;
}

/** magic ‖ version ‖ TPM2B_ID_OBJECT ‖ TPM2B_ENCRYPTED_SECRET, all big-endian. */
export function encodeKeylimeBlob({ credentialBlob, secret }: CredentialPair): Uint8Array {
  const w = new Writer(16 + credentialBlob.length + secret.length);
  w.u32(KEYLIME_BLOB_MAGIC);
  w.u32(KEYLIME_BLOB_VERSION);
  TPM2B_ID_OBJECT.encode(w, credentialBlob);
  TPM2B_ENCRYPTED_SECRET.encode(w, secret);
  return w.finish();
}

/**
 * Parse a registrar's blob: magic, version, two non-empty TPM2B buffers, nothing after them.
 * The agent hands bytes [8..] to TPM2_ActivateCredential as they are.
 */
export function decodeKeylimeBlob(bytes: Uint8Array): CredentialPair {
  const fail = (reason: string, fault: "insufficient" | "size" | "value" | "tag", field?: string) =>
    new MarshalError(reason, fault).at(BLOB, field);
  // A caller that passes the base64 text or a parsed JSON value gets told so, not a TypeError.
  if (!((bytes as unknown) instanceof Uint8Array)) {
    const hint = typeof bytes === "string" ? " (decode the base64 first)" : "";
    throw fail(`the blob must be bytes (a Uint8Array), got ${describeValue(bytes)}${hint}`, "value");
  }
  if (bytes.length < 8) {
    throw fail(`${bytes.length} bytes is shorter than the 8-byte header (magic 0xBADCC0DE, version 1)`, "insufficient");
  }
  const r = new Reader(bytes);
  const magic = r.u32();
  if (magic !== KEYLIME_BLOB_MAGIC) {
    throw fail(`magic 0x${magic.toString(16).padStart(8, "0")} is not 0xbadcc0de (tpm2-tools header)`, "tag", "magic");
  }
  const version = r.u32();
  if (version !== KEYLIME_BLOB_VERSION) {
    throw fail(`version ${version} is not ${KEYLIME_BLOB_VERSION}`, "value", "version");
  }
  const field = <T>(name: string, read: () => T): T => {
    try {
      return read();
    } catch (e) {
      throw MarshalError.wrap(e).at(BLOB, name);
    }
  };
  const credentialBlob = field("credentialBlob", () => decodeNamed(TPM2B_ID_OBJECT, r));
  const secret = field("secret", () => decodeNamed(TPM2B_ENCRYPTED_SECRET, r));
  if (credentialBlob.length === 0) throw fail("TPM2B_ID_OBJECT is empty", "size", "credentialBlob");
  if (secret.length === 0) throw fail("TPM2B_ENCRYPTED_SECRET is empty", "size", "secret");
  // The ID object starts with the integrity HMAC as a TPM2B_DIGEST; its size must fit.
  field("credentialBlob", () => {
    try {
      return TPM2B_DIGEST.decode(new Reader(credentialBlob));
    } catch (e) {
      throw MarshalError.wrap(e).at("TPM2B_ID_OBJECT", "integrityHMAC");
    }
  });
  if (r.remaining !== 0) {
    throw fail(`${r.remaining} trailing byte${r.remaining === 1 ? "" : "s"} after TPM2B_ENCRYPTED_SECRET`, "size");
  }
  return { credentialBlob, secret };
}

const encoder = new TextEncoder();

/** lowercase hex HMAC-SHA384(key = ASCII(key), msg = UTF-8(uuid)): the registrar's side of auth_tag. */
export function authTagForKey(key: string, uuid: string): string {
  return toHex(hmacOf(TPM_ALG.SHA384, encoder.encode(key), encoder.encode(uuid)));
}

/**
 * The agent's auth_tag after TPM2_ActivateCredential: the HMAC key is the base64 *text* of
 * certInfo, and the tag is lowercase hex (the registrar compares strings).
 */
export function authTag(certInfo: Uint8Array, uuid: string): string {
  return authTagForKey(toBase64(certInfo), uuid);
}

/** Compare a received auth_tag with the stored key's, in constant time (keylime.md §2 Activate). */
export function checkAuthTag(key: string, uuid: string, tag: string): boolean {
  const expected = encoder.encode(authTagForKey(key, uuid));
  const got = encoder.encode(tag);
  return sameSecret(got, expected);
}

const ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/** 32 random characters from [A-Za-z0-9], unbiased (bytes >= 248 are drawn again). */
export function randomChallenge(length = 32): string {
  let out = "";
  while (out.length < length) {
    const bytes = randomBytes(length * 2);
    // An index, not for-of: a Buffer's iterator costs more than the rest of the loop.
    for (let i = 0; i < bytes.length && out.length < length; i++) {
      if (bytes[i]! < 248) out += ALNUM[bytes[i]! % 62];
    }
  }
  return out;
}

export interface KeylimeChallenge {
  /** base64 of the blob, as the registrar returns it in `results.blob`. */
  blob: string;
  /** base64(challenge), the 44-character HMAC key the registrar stores for the auth_tag check. */
  key: string;
  /** Name of the AK the credential is bound to. */
  akName: Uint8Array;
}

export interface KeylimeChallengeOptions extends MakeCredentialOptions {
  /** 32 characters from [A-Za-z0-9]; random when absent. For tests. */
  challenge?: string;
}

/** A TPM2B_PUBLIC as sent (size prefix included), or those bytes already decoded (the registrar's body). */
export type SentPublic = Uint8Array | TpmPublicBytes;

function parsePublic(field: string, sent: SentPublic): TpmPublicBytes {
  if (!(sent instanceof Uint8Array)) return sent;
  try {
    return { bytes: sent, public: decode(TPM2B_PUBLIC, sent) };
  } catch (e) {
    throw MarshalError.wrap(e).at(field);
  }
}

/**
 * What the registrar does on registration (keylime.md §1.4): bind a fresh challenge to the AK Name
 * with the EK. `ekTpm`/`aikTpm` are the TPM2B_PUBLIC bytes, size prefix included (or decoded already).
 */
export async function makeKeylimeChallenge(
  ekTpm: SentPublic,
  aikTpm: SentPublic,
  opts: KeylimeChallengeOptions = {},
): Promise<KeylimeChallenge> {
  const ek = parsePublic("ek_tpm", ekTpm).public;
  const { bytes: akBytes, public: ak } = parsePublic("aik_tpm", aikTpm);
  // Keylime hashes the bytes it was sent, not a re-encoding: nameAlg ‖ H(aik_tpm minus its size).
  const name = concat(Uint8Array.of(ak.nameAlg >>> 8, ak.nameAlg & 0xff), hash(ak.nameAlg, akBytes.subarray(2)));
  const challenge = opts.challenge ?? randomChallenge();
  if (!/^[A-Za-z0-9]{32}$/.test(challenge)) {
    throw new MarshalError("challenge must be 32 characters from [A-Za-z0-9]", "value").at("challenge");
  }
  const ascii = encoder.encode(challenge);
  const { seed, ephemeralPrivate, ekKey } = opts;
  const made = await makeCredential(ek, name, ascii, {
    ...(seed ? { seed } : {}),
    ...(ephemeralPrivate ? { ephemeralPrivate } : {}),
    ...(ekKey ? { ekKey } : {}),
  });
  return {
    blob: toBase64(encodeKeylimeBlob(made)),
    key: toBase64(ascii),
    akName: name,
  };
}

/**
 * Revocation notifications (keylime.md §9): `{msg, signature}` where `signature` is RSA-PSS over UTF-8(msg)
 * with SHA-256, MGF1-SHA-256 and the maximum salt length, checked with the public key of `revocation_cert`.
 * Both sides: the agent's check and the verifier's signing (for tests and the attest tool), the message as
 * the verifier builds it, and the action list format.
 * Upstream: keylime/rust-keylime keylime/src/crypto.rs (asym_verify), keylime-agent/src/revocation.rs,
 * keylime/src/list_parser.rs; keylime/keylime keylime/crypto.py (rsa_sign), keylime/cloud_verifier_common.py
 * (prepare_error).
 */
import { webcrypto, X509Certificate } from "node:crypto";
import { fromPem } from "../util/encoding.ts";

const subtle = webcrypto.subtle;
type CryptoKey = webcrypto.CryptoKey;

const PSS = { name: "RSA-PSS", hash: "SHA-256" } as const;
const SHA256_BYTES = 32;
const encoder = new TextEncoder();

/** A revocation certificate that cannot be used; says what is wrong with it. */
export class RevocationCertError extends Error {
  readonly code = "ERR_REVOCATION_CERT";
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "RevocationCertError";
  }
}

/** PSS's maximum salt for SHA-256 and this modulus: emLen - hLen - 2 (RFC 8017 §9.1.1). */
export function pssMaxSaltLength(modulusBits: number): number {
  return Math.ceil((modulusBits - 1) / 8) - SHA256_BYTES - 2;
}

function modulusBits(key: CryptoKey): number {
  return (key.algorithm as webcrypto.RsaHashedKeyAlgorithm).modulusLength;
}

/** The RSA public key of a PEM (or DER) revocation certificate, for RSA-PSS SHA-256 verification. */
export async function revocationKeyFromCert(cert: string | Uint8Array): Promise<CryptoKey> {
  let der: Uint8Array;
  if (typeof cert === "string") {
    const [first] = fromPem(cert, "CERTIFICATE");
    if (!first) throw new RevocationCertError("no PEM CERTIFICATE block in the revocation certificate");
    der = first;
  } else der = cert;
  let spki: Uint8Array;
  try {
    // node:crypto's parser: the agent's idle path then loads no @peculiar/x509 (docs/binary.md, idle RSS).
    spki = new Uint8Array(new X509Certificate(der).publicKey.export({ type: "spki", format: "der" }));
  } catch (e) {
    throw new RevocationCertError(`the revocation certificate does not parse: ${(e as Error).message}`, { cause: e });
  }
  try {
    return await subtle.importKey("spki", spki, PSS, true, ["verify"]);
  } catch (e) {
    throw new RevocationCertError("the revocation certificate's key is not an RSA key", { cause: e });
  }
}

/** Is `signature` the RSA-PSS (SHA-256, MGF1-SHA-256, maximum salt) signature of UTF-8(msg) by `key`? */
export async function verifyRevocation(key: CryptoKey, msg: string, signature: Uint8Array): Promise<boolean> {
  try {
    return await subtle.verify(
      { name: "RSA-PSS", saltLength: pssMaxSaltLength(modulusBits(key)) },
      key,
      signature,
      encoder.encode(msg),
    );
  } catch {
    return false;
  }
}

/** The verifier's side (keylime/crypto.py rsa_sign): sign UTF-8(msg) with an RSA-PSS SHA-256 private key. */
export async function signRevocation(privateKey: CryptoKey, msg: string): Promise<Uint8Array> {
  return new Uint8Array(
    await subtle.sign(
      { name: "RSA-PSS", saltLength: pssMaxSaltLength(modulusBits(privateKey)) },
      privateKey,
      encoder.encode(msg),
    ),
  );
}

/** What the verifier puts in `msg` (cloud_verifier_common.py prepare_error); `type` is "revocation". */
export interface RevocationEvent {
  type: string;
  ip: string;
  agent_id: string;
  port: number;
  tpm_policy: string;
  meta_data: string;
  event_time: string;
  event_id?: string;
  severity_label?: string;
  context?: string;
}

/** `msg` as the verifier serialises it. */
export function revocationMessage(e: RevocationEvent): string {
  return JSON.stringify(e);
}

/** The parsed `msg`: upstream runs actions only for a message that is a JSON document. */
export function parseRevocationMessage(msg: string): unknown {
  try {
    return JSON.parse(msg);
  } catch {
    throw new SyntaxError("the revocation message is not JSON");
  }
}

/**
 * An action list (the `revocation_actions` option, the payload's `action_list`): names separated by commas,
 * white space or newlines, optionally inside [ ]; quotes around a name are removed. Upstream's parser keeps
 * the quotes, which then name no script (keylime/src/list_parser.rs); here a quoted name finds its script.
 */
export function parseActionList(text: string): string[] {
  let s = text.trim();
  if (s.startsWith("[") && s.endsWith("]")) s = s.slice(1, -1);
  const names: string[] = [];
  for (const m of s.matchAll(/'([^']*)'|"([^"]*)"|([^\s,'"]+)/g)) {
    const name = (m[1] ?? m[2] ?? m[3] ?? "").trim();
    if (name) names.push(name);
  }
  return names;
}

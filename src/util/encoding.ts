/**
 * Hex, base64, base64url and PEM: one implementation of each. The decoders are strict (one spelling
 * per byte string) and throw a RangeError saying what was wrong, never echoing the input (it may be a
 * secret); callers that parse untrusted input wrap it in their own error.
 */

import { bytesToHex } from "@noble/hashes/utils";

const HEX = /^(?:[0-9a-fA-F]{2})*$/;
/** With a length that is a multiple of 4, this is padded base64 (a flat class runs twice as fast as groups of 4). */
const BASE64_CHARS = /^[A-Za-z0-9+/]*={0,2}$/;
const isBase64 = (s: string) => s.length % 4 === 0 && BASE64_CHARS.test(s);
const BASE64URL = /^[A-Za-z0-9_-]*$/;

/** A Buffer over the same memory, for Node's encoders (no copy). */
const view = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength);

/** Lower-case hex; noble's table is 4x faster than Buffer's under Deno, which state files with many fields feel. */
export function toHex(b: Uint8Array): string {
  return bytesToHex(b);
}

/** Bytes of an even-length hex string (either case); anything else is a RangeError. */
export function fromHex(s: string): Uint8Array {
  if (typeof s !== "string" || !HEX.test(s)) throw new RangeError(`${describe(s)} is not an even number of hex digits`);
  return new Uint8Array(Buffer.from(s, "hex"));
}

/** Standard base64 with padding. */
export function toBase64(b: Uint8Array): string {
  return view(b).toString("base64");
}

/**
 * Bytes of standard, padded base64. By default it must also be canonical (zero spare bits), so each
 * byte string has one spelling; `canonical: false` accepts non-zero spare bits, as Python's
 * b64decode and PEM readers do, for input from peers.
 */
export function fromBase64(s: string, options: { canonical?: boolean } = {}): Uint8Array {
  const notBase64 = () => new RangeError(`${describe(s)} is not standard base64 with padding`);
  if (typeof s !== "string") throw notBase64();
  const bytes = Buffer.from(s, "base64");
  // Canonical: the bytes' own encoding must be the text, which also refuses anything but padded base64
  // (Buffer skips other characters and takes base64url's); the pattern then only chooses the message.
  if (options.canonical !== false) {
    if (bytes.toString("base64") === s) return new Uint8Array(bytes);
    if (!isBase64(s)) throw notBase64();
    throw new RangeError(`${describe(s)} is not canonical base64 (non-zero spare bits)`);
  }
  if (!isBase64(s)) throw notBase64();
  return new Uint8Array(bytes);
}

/** base64url without padding, as JWK members are spelled (RFC 7518 §2). */
export function toBase64url(b: Uint8Array): string {
  return view(b).toString("base64url");
}

/** Bytes of unpadded base64url; anything else is a RangeError. */
export function fromBase64url(s: string): Uint8Array {
  if (typeof s !== "string" || !BASE64URL.test(s) || s.length % 4 === 1) {
    throw new RangeError(`${describe(s)} is not base64url`);
  }
  return new Uint8Array(Buffer.from(s, "base64url"));
}

/** A PEM block (RFC 7468): the label's BEGIN/END lines around base64 in lines of 64, ending in a newline. */
export function toPem(label: string, der: Uint8Array): string {
  const body = toBase64(der).replace(/.{64}/g, "$&\n").replace(/\n?$/, "\n");
  return `-----BEGIN ${label}-----\n${body}-----END ${label}-----\n`;
}

/** The DER contents of every PEM block with this label in `text`, in order. */
export function fromPem(text: string, label: string): Uint8Array[] {
  const re = new RegExp(`-----BEGIN ${label}-----([^-]*)-----END ${label}-----`, "g");
  return [...text.matchAll(re)].map((m, i) => {
    try {
      return fromBase64(m[1]!.replace(/\s+/g, ""), { canonical: false });
    } catch (e) {
      throw new RangeError(`PEM ${label} block ${i + 1}: ${(e as Error).message}`);
    }
  });
}

/** What the input was, without its content: it may be a secret. */
function describe(s: unknown): string {
  if (s === undefined || s === null) return String(s);
  if (typeof s !== "string") return typeof s === "object" ? "an object" : `a ${typeof s}`;
  return `a ${s.length}-character string`;
}

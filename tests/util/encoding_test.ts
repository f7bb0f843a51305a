/** The one hex, base64, base64url and PEM implementation: strict decoders, messages that never echo input. */
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  fromBase64,
  fromBase64url,
  fromHex,
  fromPem,
  toBase64,
  toBase64url,
  toHex,
  toPem,
} from "../../src/util/encoding.ts";
import { sameBytes } from "../../src/tpm/bytes.ts";

const bytes = Uint8Array.of(0x00, 0x01, 0xfe, 0xff, 0x7f);

test("round trips, including a view into a larger buffer", () => {
  const view = new Uint8Array(Uint8Array.of(9, ...bytes, 9).buffer, 1, bytes.length);
  assert.equal(toHex(view), "0001feff7f");
  assert.deepEqual(fromHex("0001FEff7f"), bytes);
  assert.equal(toBase64(view), "AAH+/38=");
  assert.deepEqual(fromBase64("AAH+/38="), bytes);
  assert.equal(toBase64url(view), "AAH-_38");
  assert.deepEqual(fromBase64url("AAH-_38"), bytes);
});

test("decoders refuse what is not exactly their encoding, without echoing it", () => {
  assert.throws(() => fromHex("abc"), {
    name: "RangeError",
    message: "a 3-character string is not an even number of hex digits",
  });
  assert.throws(() => fromHex("zz"), /not an even number of hex digits/);
  assert.throws(() => fromBase64("AAH+/38"), /a 7-character string is not standard base64 with padding/);
  assert.throws(() => fromBase64("QR=="), /is not canonical base64 \(non-zero spare bits\)/);
  assert.deepEqual(fromBase64("QR==", { canonical: false }), Uint8Array.of(0x41));
  // What Node's decoder would skip or take (base64url, whitespace, missing or stray padding) is refused both ways.
  for (const text of ["AAH-_38=", "AAH+ /38=", "AAH+/38", "AA==AAAA", "A===", "AAH+/38=\n"]) {
    assert.throws(() => fromBase64(text), /is not standard base64 with padding/, text);
    assert.throws(() => fromBase64(text, { canonical: false }), /is not standard base64 with padding/, text);
  }
  assert.throws(() => fromBase64url("AA+/"), /is not base64url/);
  assert.throws(() => fromHex(undefined as unknown as string), {
    message: "undefined is not an even number of hex digits",
  });
});

test("PEM: lines of 64, several blocks, and the label must match", () => {
  const der = new Uint8Array(100).map((_, i) => i);
  const pem = toPem("CERTIFICATE", der);
  const lines = pem.trimEnd().split("\n");
  assert.equal(lines[0], "-----BEGIN CERTIFICATE-----");
  assert.equal(lines[1]!.length, 64);
  assert.equal(lines.at(-1), "-----END CERTIFICATE-----");
  assert.deepEqual(fromPem(pem + pem, "CERTIFICATE"), [der, der]);
  assert.deepEqual(fromPem(pem, "PRIVATE KEY"), []);
  assert.throws(() => fromPem("-----BEGIN CERTIFICATE-----\nA\n-----END CERTIFICATE-----", "CERTIFICATE"), {
    message: "PEM CERTIFICATE block 1: a 1-character string is not standard base64 with padding",
  });
});

test("sameBytes: equal lengths and every byte, views compared by their contents", () => {
  const long = new Uint8Array(1000).map((_, i) => i);
  const copy = new Uint8Array(Uint8Array.of(7, ...long).buffer, 1);
  assert.equal(sameBytes(long, copy), true);
  assert.equal(sameBytes(long, long.subarray(1)), false);
  const last = long.slice();
  last[999] = 0;
  assert.equal(sameBytes(long, last), false);
  assert.equal(sameBytes(new Uint8Array(0), new Uint8Array(0)), true);
});

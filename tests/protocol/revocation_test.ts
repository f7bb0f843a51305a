/**
 * Revocation signatures: RSA-PSS SHA-256 with the maximum salt, interoperable with what keylime's verifier
 * makes (Python's cryptography) and with openssl; refusals; the action list format.
 */
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  parseActionList,
  parseRevocationMessage,
  pssMaxSaltLength,
  RevocationCertError,
  revocationKeyFromCert,
  revocationMessage,
  verifyRevocation,
} from "../../src/protocol/revocation.ts";
import { makeRevocationSigner, pythonCryptographySkipReason, pythonSign } from "../helpers/revocation_ca.ts";

const dir = mkdtempSync(join(tmpdir(), "revocation-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const signer = await makeRevocationSigner(dir);
const key = await revocationKeyFromCert(signer.certPem);

const msg = revocationMessage({
  type: "revocation",
  ip: "127.0.0.1",
  agent_id: "d432fbb3-d2f1-4a97-9ef7-75bd81c00000",
  port: 9002,
  tpm_policy: '{"mask": "0x400"}',
  meta_data: '{"cert_serial": 2}',
  event_time: "Tue Dec  1 22:00:00 2026",
  event_id: "pcr_validation.invalid_pcr_10",
  severity_label: "emergency",
  context: "{}",
});

describe("signatures", () => {
  test("maximum salt for SHA-256: emLen - 34", () => {
    assert.equal(pssMaxSaltLength(2048), 222);
    assert.equal(pssMaxSaltLength(3072), 350);
    assert.equal(pssMaxSaltLength(2049), 222);
    assert.equal(pssMaxSaltLength(2050), 223);
  });

  test("ours verifies; a changed message, another key or garbage does not", async () => {
    const sig = await signer.sign(msg);
    assert.equal(sig.length, 256);
    assert.ok(await verifyRevocation(key, msg, sig));
    assert.ok(!(await verifyRevocation(key, msg + " ", sig)));
    const otherDir = mkdtempSync(join(dir, "other-"));
    const other = await makeRevocationSigner(otherDir);
    assert.ok(!(await verifyRevocation(key, msg, await other.sign(msg))));
    assert.ok(!(await verifyRevocation(key, msg, new Uint8Array(256))));
    assert.ok(!(await verifyRevocation(key, msg, new Uint8Array(3))));
  });

  test("keylime's verifier signature (Python cryptography, PSS.MAX_LENGTH) verifies", async (t) => {
    const skip = pythonCryptographySkipReason();
    if (skip) return t.skip(skip);
    const sig = pythonSign(signer.keyPath, msg);
    assert.ok(await verifyRevocation(key, msg, sig));
    assert.ok(!(await verifyRevocation(key, msg.replace("emergency", "info"), sig)));
  });

  test("openssl checks ours with saltlen max", async () => {
    const sig = await signer.sign(msg);
    writeFileSync(join(dir, "msg"), msg);
    writeFileSync(join(dir, "sig"), sig);
    execFileSync("openssl", ["x509", "-in", "/dev/stdin", "-pubkey", "-noout", "-out", join(dir, "pub.pem")], {
      input: signer.certPem,
    });
    const out = execFileSync("openssl", [
      "dgst",
      "-sha256",
      "-sigopt",
      "rsa_padding_mode:pss",
      "-sigopt",
      "rsa_pss_saltlen:max",
      "-verify",
      join(dir, "pub.pem"),
      "-signature",
      join(dir, "sig"),
      join(dir, "msg"),
    ]).toString();
    assert.match(out, /Verified OK/);
  });

  test("certificates that cannot be used are refused with a reason", async () => {
    await assert.rejects(revocationKeyFromCert("not a cert"), RevocationCertError);
    await assert.rejects(
      revocationKeyFromCert("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
      /does not parse/,
    );
    const ec = await makeRevocationSigner(mkdtempSync(join(dir, "ec-")), [
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:P-256",
    ]);
    await assert.rejects(revocationKeyFromCert(ec.certPem), /not an RSA key/);
  });
});

test("the message is JSON", () => {
  assert.equal((parseRevocationMessage(msg) as { type: string }).type, "revocation");
  assert.throws(() => parseRevocationMessage("{oops"), /not JSON/);
});

test("action lists: commas, white space, newlines, brackets, quotes", () => {
  assert.deepEqual(parseActionList("a b c"), ["a", "b", "c"]);
  assert.deepEqual(parseActionList("[aa, bb]"), ["aa", "bb"]);
  assert.deepEqual(parseActionList(`['aa', "bb", cc]`), ["aa", "bb", "cc"]);
  assert.deepEqual(parseActionList("aa\nbb\r\ncc\t dd\n"), ["aa", "bb", "cc", "dd"]);
  assert.deepEqual(parseActionList(""), []);
  assert.deepEqual(parseActionList("[]"), []);
  assert.deepEqual(parseActionList("'', ''"), []);
});

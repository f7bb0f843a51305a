/**
 * ECIES for EC P-256 NKs (spec/nk-certify.md, "Payload keys without mTLS"): the layout checked by an
 * independent decryption with node:crypto's ECDH, hkdfSync and aes-256-gcm, the round trip through
 * payload.ts's tenant and agent sides, and refusals.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { createDecipheriv, createECDH, generateKeyPairSync, hkdfSync } from "node:crypto";
import { ECIES_INFO } from "../../src/protocol/nk_ecies.ts";
import {
  decryptKeyShare,
  encryptKeyShare,
  importNkPrivateKey,
  importNkPublicKey,
  PayloadError,
  tenantKeyRequests,
} from "../../src/protocol/payload.ts";
import { fromBase64url } from "../../src/util/encoding.ts";

const nk = generateKeyPairSync("ec", { namedCurve: "P-256" });

/** The spec's layout, decrypted without the code under test. */
function independentDecrypt(sealed: Uint8Array): Uint8Array {
  const ecdh = createECDH("prime256v1");
  ecdh.setPrivateKey(fromBase64url(nk.privateKey.export({ format: "jwk" }).d!));
  const point = sealed.subarray(0, 65);
  assert.equal(point[0], 0x04, "an uncompressed point");
  const shared = ecdh.computeSecret(point);
  const key = new Uint8Array(hkdfSync("sha256", shared, new Uint8Array(0), ECIES_INFO, 32));
  const iv = sealed.subarray(65, 77);
  const body = sealed.subarray(77, sealed.length - 16);
  const d = createDecipheriv("aes-256-gcm", key, iv);
  d.setAuthTag(sealed.subarray(sealed.length - 16));
  return new Uint8Array(Buffer.concat([d.update(body), d.final()]));
}

test("ECIES: point(65) ‖ iv(12) ‖ AES-256-GCM ciphertext ‖ tag(16), as an independent decryption reads it", async () => {
  const share = new Uint8Array(32).map((_, i) => i);
  const sealed = await encryptKeyShare(await importNkPublicKey(nk.publicKey), share);
  assert.equal(sealed.length, 65 + 12 + 32 + 16);
  assert.deepEqual(independentDecrypt(sealed), share);
  const other = await encryptKeyShare(await importNkPublicKey(nk.publicKey), share);
  assert.notDeepEqual(other.subarray(0, 65), sealed.subarray(0, 65), "a fresh ephemeral key each time");
});

test("ECIES: U and V to an EC NK (its PEM, as pubkey gives it) decrypt on the agent's side", async () => {
  const pem = nk.publicKey.export({ format: "pem", type: "spki" }).toString();
  const { key, ukey, vkey } = await tenantKeyRequests(await importNkPublicKey(pem), "uuid-1");
  const agentNk = await importNkPrivateKey(nk.privateKey);
  assert.deepEqual(await decryptKeyShare(agentNk, ukey.encrypted_key), key.u);
  assert.deepEqual(await decryptKeyShare(agentNk, vkey.encrypted_key), key.v);
  const pkcs8 = new Uint8Array(nk.privateKey.export({ format: "der", type: "pkcs8" }));
  assert.deepEqual(await decryptKeyShare(await importNkPrivateKey(pkcs8), ukey.encrypted_key), key.u);
});

test("ECIES: a changed byte, a short input, another NK's share are refused as key-decrypt; P-384 is no NK", async () => {
  const agentNk = await importNkPrivateKey(nk.privateKey);
  const sealed = await encryptKeyShare(await importNkPublicKey(nk.publicKey), new Uint8Array(32));
  const refused = async (bytes: Uint8Array) =>
    await assert.rejects(decryptKeyShare(agentNk, bytes), (e: unknown) => {
      assert.ok(e instanceof PayloadError);
      assert.equal(e.reason, "key-decrypt");
      assert.match(e.message, /ECIES P-256/);
      return true;
    });
  for (const at of [1, 70, sealed.length - 1]) {
    const bad = sealed.slice();
    bad[at]! ^= 1;
    await refused(bad);
  }
  await refused(sealed.subarray(0, 90));
  const other = generateKeyPairSync("ec", { namedCurve: "P-256" });
  await refused(await encryptKeyShare(await importNkPublicKey(other.publicKey), new Uint8Array(32)));
  const p384 = generateKeyPairSync("ec", { namedCurve: "P-384" });
  await assert.rejects(importNkPrivateKey(p384.privateKey), /RSA or EC P-256/);
});

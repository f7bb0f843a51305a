/**
 * U/V/K: the tenant's side (K, U, V, auth_tag, encrypted halves and payload) against the agent's side
 * (decryption with the NK, pairing in either order, the auth_tag check, payload decryption), plus
 * independent checks with node:crypto's own RSA-OAEP, HMAC and AES-GCM so a symmetric bug cannot hide.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  constants,
  createCipheriv,
  createDecipheriv,
  createHmac,
  generateKeyPairSync,
  privateDecrypt,
  publicEncrypt,
} from "node:crypto";
import {
  authTagFor,
  decryptKeyShare,
  decryptPayload,
  encryptKeyShare,
  encryptPayload,
  generateBootstrapKey,
  importNkPrivateKey,
  importNkPublicKey,
  keyMatchesAuthTag,
  KeyPairing,
  MAX_PENDING_SHARES,
  parseAuthTag,
  PayloadError,
  tenantKeyRequests,
  verifyHmac,
  xorShares,
} from "../../src/protocol/payload.ts";
import { toHex } from "../../src/util/encoding.ts";

const UUID = "d432fbb3-d2f1-4a97-9ef7-75bd81c00000";
const nk = generateKeyPairSync("rsa", { modulusLength: 2048 });
const other = generateKeyPairSync("rsa", { modulusLength: 2048 });
const nkPub = await importNkPublicKey(nk.publicKey.export({ format: "pem", type: "spki" }) as string);
const nkPriv = await importNkPrivateKey(nk.privateKey);
const enc = (s: string) => new TextEncoder().encode(s);

const rejects = (reason: PayloadError["reason"]) => (e: unknown) => e instanceof PayloadError && e.reason === reason;

describe("tenant to agent round trip", () => {
  test("encrypted U and V decrypt with the NK, pair in either order and decrypt the payload", async () => {
    const plaintext = enc("payload bytes \u00e9\n");
    for (const order of ["uv", "vu"] as const) {
      const { key, ukey, vkey } = await tenantKeyRequests(nkPub, UUID, { payload: plaintext });
      const pairing = new KeyPairing(UUID);
      const u = {
        share: await decryptKeyShare(nkPriv, ukey.encrypted_key),
        authTag: parseAuthTag(ukey.auth_tag),
        payload: ukey.payload!,
      };
      const v = await decryptKeyShare(nkPriv, vkey.encrypted_key);
      const derived = order === "uv"
        ? (assert.equal(pairing.addU(u), undefined), pairing.addV(v))
        : (assert.equal(pairing.addV(v), undefined), pairing.addU(u));
      assert.ok(derived, order);
      assert.deepEqual(derived.k, key.k);
      assert.deepEqual(pairing.key, key.k);
      assert.deepEqual(await decryptPayload(derived.k, derived.payload!), plaintext);
    }
  });

  test("a wrong auth_tag derives no key, and the right U later still pairs with the pending V", () => {
    const key = generateBootstrapKey();
    const pairing = new KeyPairing(UUID);
    const wrongTag = parseAuthTag(authTagFor(key.k, "another-uuid"));
    assert.equal(pairing.addU({ share: key.u, authTag: wrongTag }), undefined);
    assert.equal(pairing.addV(key.v), undefined);
    assert.equal(pairing.key, undefined);
    const derived = pairing.addU({ share: key.u, authTag: parseAuthTag(authTagFor(key.k, UUID)) });
    assert.deepEqual(derived?.k, key.k);
  });

  test("U and V of different lengths never pair; AES-128 keys work", async () => {
    const k16 = generateBootstrapKey(16);
    const k32 = generateBootstrapKey(32);
    const pairing = new KeyPairing(UUID);
    assert.equal(pairing.addU({ share: k16.u, authTag: parseAuthTag(authTagFor(k16.k, UUID)) }), undefined);
    assert.equal(pairing.addV(k32.v), undefined);
    const derived = pairing.addV(k16.v);
    assert.deepEqual(derived?.k, k16.k);
    const sealed = await encryptPayload(k16.k, enc("x"));
    assert.deepEqual(await decryptPayload(k16.k, sealed), enc("x"));
    assert.equal(xorShares(k16.u, k32.v), undefined);
  });

  test("pending halves are bounded", () => {
    const pairing = new KeyPairing(UUID);
    const key = generateBootstrapKey();
    pairing.addV(key.v);
    // The right V is pushed out by newer ones and no longer pairs.
    for (let i = 0; i < MAX_PENDING_SHARES; i++) pairing.addV(generateBootstrapKey().v);
    assert.equal(pairing.addU({ share: key.u, authTag: parseAuthTag(authTagFor(key.k, UUID)) }), undefined);
  });
});

describe("against node:crypto", () => {
  test("U encrypted by node:crypto RSA-OAEP-SHA1 decrypts; ours decrypts with node:crypto", async () => {
    const u = generateBootstrapKey().u;
    const theirs = publicEncrypt({ key: nk.publicKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha1" }, u);
    assert.deepEqual(await decryptKeyShare(nkPriv, new Uint8Array(theirs)), u);
    const ours = await encryptKeyShare(nkPub, u);
    const back = privateDecrypt(
      { key: nk.privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha1" },
      ours,
    );
    assert.deepEqual(new Uint8Array(back), u);
  });

  test("auth_tag and verify HMAC are lowercase hex HMAC-SHA384", () => {
    const k = generateBootstrapKey().k;
    const expect = (msg: string) => createHmac("sha384", k).update(msg).digest("hex");
    assert.equal(authTagFor(k, UUID), expect(UUID));
    assert.equal(verifyHmac(k, "abcDEF123"), expect("abcDEF123"));
    assert.match(authTagFor(k, UUID), /^[0-9a-f]{96}$/);
    assert.ok(keyMatchesAuthTag(k, UUID, parseAuthTag(expect(UUID).toUpperCase())));
    assert.ok(!keyMatchesAuthTag(k, UUID + "x", parseAuthTag(expect(UUID))));
  });

  test("payload layout is iv(16) ‖ ct ‖ tag(16) with AES-256-GCM", async () => {
    const k = generateBootstrapKey().k;
    const iv = new Uint8Array(16).fill(7);
    const sealed = await encryptPayload(k, enc("hello"), iv);
    assert.equal(sealed.length, 16 + 5 + 16);
    assert.deepEqual(sealed.subarray(0, 16), iv);
    const d = createDecipheriv("aes-256-gcm", k, iv);
    d.setAuthTag(sealed.subarray(21));
    assert.equal(Buffer.concat([d.update(sealed.subarray(16, 21)), d.final()]).toString(), "hello");
    // And what keylime/crypto.py makes (AES-GCM, 16-byte IV) decrypts here.
    const c = createCipheriv("aes-256-gcm", k, iv);
    const ct = Buffer.concat([c.update("from python"), c.final()]);
    const theirs = new Uint8Array(Buffer.concat([iv, ct, c.getAuthTag()]));
    assert.deepEqual(await decryptPayload(k, theirs), enc("from python"));
  });
});

describe("refusals", () => {
  test("a share for another key, of a wrong size, or garbage", async () => {
    const otherPub = await importNkPublicKey(other.publicKey);
    const forOther = await encryptKeyShare(otherPub, generateBootstrapKey().u);
    await assert.rejects(decryptKeyShare(nkPriv, forOther), rejects("key-decrypt"));
    await assert.rejects(decryptKeyShare(nkPriv, new Uint8Array(256)), rejects("key-decrypt"));
    const eight = publicEncrypt(
      { key: nk.publicKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha1" },
      new Uint8Array(8),
    );
    await assert.rejects(decryptKeyShare(nkPriv, new Uint8Array(eight)), rejects("key-length"));
    await assert.rejects(encryptKeyShare(nkPub, new Uint8Array(24)), rejects("key-length"));
  });

  test("auth_tag must be 48 bytes of hex", () => {
    assert.throws(() => parseAuthTag("zz"), rejects("auth-tag"));
    assert.throws(() => parseAuthTag("abc"), rejects("auth-tag"));
    assert.throws(() => parseAuthTag("00".repeat(32)), rejects("auth-tag"));
    assert.equal(parseAuthTag("0A".repeat(48)).length, 48);
  });

  test("a tampered, truncated or wrongly keyed payload is refused", async () => {
    const k = generateBootstrapKey().k;
    const sealed = await encryptPayload(k, enc("secret"));
    const flipped = sealed.slice();
    flipped[20]! ^= 1;
    await assert.rejects(decryptPayload(k, flipped), rejects("payload-decrypt"));
    await assert.rejects(decryptPayload(generateBootstrapKey().k, sealed), rejects("payload-decrypt"));
    await assert.rejects(decryptPayload(k, sealed.subarray(0, 31)), rejects("payload-format"));
    await assert.rejects(decryptPayload(new Uint8Array(20), sealed), rejects("key-length"));
  });

  test("error messages carry no key material", async () => {
    const key = generateBootstrapKey();
    const e = await decryptPayload(key.k, new Uint8Array(40)).catch((x) => x as Error);
    assert.ok(e instanceof PayloadError);
    assert.ok(!e.message.includes(toHex(key.k)));
  });
});

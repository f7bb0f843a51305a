/** sameKey: the same key however it was spelt, and no other key (RSA modulus or exponent, EC point, kind). */
import { test } from "node:test";
import assert from "node:assert/strict";
import { createPublicKey, generateKeyPairSync } from "node:crypto";
import { sameKey } from "../../src/tpm/crypto.ts";

test("the same key from SPKI DER, JWK and its private key is the same; another key is not", () => {
  for (
    const keys of [
      generateKeyPairSync("rsa", { modulusLength: 2048 }),
      generateKeyPairSync("ec", { namedCurve: "P-256" }),
    ]
  ) {
    const { publicKey, privateKey } = keys;
    const fromDer = createPublicKey({
      key: publicKey.export({ format: "der", type: "spki" }),
      format: "der",
      type: "spki",
    });
    const fromJwk = createPublicKey({ key: publicKey.export({ format: "jwk" }), format: "jwk" });
    assert.ok(sameKey(publicKey, fromDer));
    assert.ok(sameKey(fromJwk, createPublicKey(privateKey)));
    const other = generateKeyPairSync("rsa", { modulusLength: 2048 }).publicKey;
    assert.equal(sameKey(publicKey, other), false);
    assert.equal(sameKey(publicKey, generateKeyPairSync("ec", { namedCurve: "P-256" }).publicKey), false);
  }
});

test("an RSA key with the same modulus and another exponent is another key", () => {
  const jwk = generateKeyPairSync("rsa", { modulusLength: 2048 }).publicKey.export({ format: "jwk" });
  const e3 = createPublicKey({ key: { ...jwk, e: "Aw" }, format: "jwk" });
  assert.equal(sameKey(createPublicKey({ key: jwk, format: "jwk" }), e3), false);
});

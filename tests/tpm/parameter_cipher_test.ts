/**
 * XOR parameter obfuscation (Part 1 §21.2) against a mask computed here from the KDFa definition
 * (SP 800-108 counter mode with HMAC, node:crypto), not through kdf.ts: the sender's nonce is
 * contextU, and the length in every block is the whole parameter's (ms-tpm-20-ref
 * CryptXORObfuscation). The round trip with swtpm is in the conformance suite.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHmac, randomBytes } from "node:crypto";
import { TPM_ALG } from "../../src/tpm/constants.ts";
import { parameterCipher } from "../../src/tpm/session_digests.ts";
import { AES_128_CFB, symXor } from "../../src/tpm/sessions.ts";

/** KDFa(SHA-256, key, label, u, v, 8·n) straight from its definition. */
function kdfaSha256(key: Uint8Array, label: string, u: Uint8Array, v: Uint8Array, n: number): Uint8Array {
  const out: Buffer[] = [];
  const bits = Buffer.alloc(4);
  bits.writeUInt32BE(n * 8);
  for (let i = 1; out.length * 32 < n; i++) {
    const counter = Buffer.alloc(4);
    counter.writeUInt32BE(i);
    out.push(
      createHmac("sha256", key).update(counter).update(label).update(Buffer.of(0)).update(u).update(v).update(bits)
        .digest(),
    );
  }
  return new Uint8Array(Buffer.concat(out).subarray(0, n));
}

test('XOR: data ⊕ KDFa(authHash, key, "XOR", nonceNewer, nonceOlder, 8·size), over several mask blocks', () => {
  const keyValue = new Uint8Array(randomBytes(32));
  const [newer, older] = [new Uint8Array(randomBytes(32)), new Uint8Array(randomBytes(16))];
  const data = new Uint8Array(randomBytes(100));
  // The TPMT_SYM_DEF's hash is SHA-1 on purpose: the mask uses the session's authHash.
  const cipher = parameterCipher(
    { symmetric: symXor(TPM_ALG.SHA1), authHash: TPM_ALG.SHA256, keyValue },
    newer,
    older,
  )!;
  const mask = kdfaSha256(keyValue, "XOR", newer, older, data.length);
  const sent = cipher.encrypt(data);
  assert.deepEqual(sent, data.map((b, i) => b ^ mask[i]!));
  assert.deepEqual(cipher.decrypt(sent), data);
  const swapped = parameterCipher({ symmetric: symXor(), authHash: TPM_ALG.SHA256, keyValue }, older, newer)!;
  assert.notDeepEqual(swapped.encrypt(data), sent, "the nonce order matters");
  assert.deepEqual(cipher.encrypt(new Uint8Array(0)), new Uint8Array(0));
});

test("AES-CFB and XOR are the only parameter ciphers", () => {
  const k = { authHash: TPM_ALG.SHA256, keyValue: new Uint8Array(32) };
  const nonce = new Uint8Array(16);
  assert.ok(parameterCipher({ ...k, symmetric: AES_128_CFB }, nonce, nonce));
  const ecb = { ...AES_128_CFB, mode: TPM_ALG.ECB };
  assert.equal(parameterCipher({ ...k, symmetric: ecb }, nonce, nonce), undefined);
});

/**
 * KDFa, KDFe and AES-CFB against independent known answers: ms-tpm-20-ref's KDFa self-test vectors,
 * the ECC MakeCredential vector that swtpm accepted (Zx -> seed), NIST SP 800-38A CFB128, and a
 * second KDF implementation written here on node:crypto (so a shared bug in @noble cannot hide).
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { createECDH, createHash, createHmac } from "node:crypto";
import { readFileSync } from "node:fs";
import { aesCfbDecrypt, aesCfbEncrypt, kdfa, kdfe } from "../../src/tpm/kdf.ts";
import { TPM_ALG } from "../../src/tpm/constants.ts";
import { fromHex, toHex, VECTOR_DIR } from "../helpers/vectors.ts";

const KAT_DIR = new URL("../testdata/kat/", import.meta.url);
const readJson = (url: URL) => JSON.parse(readFileSync(url, "utf8"));

const HASHES = [
  { name: "sha1", alg: TPM_ALG.SHA1, size: 20 },
  { name: "sha256", alg: TPM_ALG.SHA256, size: 32 },
  { name: "sha384", alg: TPM_ALG.SHA384, size: 48 },
  { name: "sha512", alg: TPM_ALG.SHA512, size: 64 },
] as const;

const u32 = (v: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v);
  return b;
};

/** Label with the TPM's NUL rule, written independently of kdf.ts. */
function refLabel(label: Uint8Array): Buffer {
  return label.length > 0 && label[label.length - 1] === 0 ? Buffer.from(label) : Buffer.concat([label, Buffer.of(0)]);
}

/** SP 800-108 counter-mode KDF as Part 1 §11.4.10.2 spells it, on node:crypto; excess high bits cleared. */
function refKdfa(hash: string, key: Uint8Array, label: Uint8Array, u: Uint8Array, v: Uint8Array, bits: number) {
  const bytes = Math.ceil(bits / 8);
  const blocks: Buffer[] = [];
  for (let i = 1; Buffer.concat(blocks).length < bytes; i++) {
    blocks.push(createHmac(hash, key).update(Buffer.concat([u32(i), refLabel(label), u, v, u32(bits)])).digest());
  }
  const out = new Uint8Array(Buffer.concat(blocks).subarray(0, bytes));
  if (bits % 8) out[0]! &= (1 << (bits % 8)) - 1;
  return out;
}

/** SP 800-56A concatenation KDF as Part 1 §11.4.10.3 spells it, on node:crypto. */
function refKdfe(hash: string, z: Uint8Array, label: Uint8Array, u: Uint8Array, v: Uint8Array, bits: number) {
  const bytes = Math.ceil(bits / 8);
  const blocks: Buffer[] = [];
  for (let i = 1; Buffer.concat(blocks).length < bytes; i++) {
    blocks.push(createHash(hash).update(Buffer.concat([u32(i), z, refLabel(label), u, v])).digest());
  }
  const out = new Uint8Array(Buffer.concat(blocks).subarray(0, bytes));
  if (bits % 8) out[0]! &= (1 << (bits % 8)) - 1;
  return out;
}

const ascii = (s: string) => new TextEncoder().encode(s);

describe("KDFa", () => {
  const kat = readJson(new URL("kdfa_ms_tpm_20_ref.json", KAT_DIR));
  const key = fromHex(kat.key);
  const label = fromHex(kat.label);
  const u = fromHex(kat.contextU);
  const v = fromHex(kat.contextV);

  for (const h of HASHES) {
    test(`ms-tpm-20-ref KdfTestData.h known answer, ${h.name}`, () => {
      const expected = kat.expected[h.name] as string;
      assert.equal(toHex(kdfa(h.alg, key, label, u, v, kat.bits)), expected);
      // The vector checks the independent implementation too, before it is used as a reference below.
      assert.equal(toHex(refKdfa(h.name, key, label, u, v, kat.bits)), expected);
    });
  }

  test("NUL rule: a label that already ends in 0 gets no second NUL", () => {
    const expected = kat.expected.sha256 as string;
    // "KDFSELFTESTLABEL" as a string gets its NUL appended and gives the same answer.
    assert.equal(toHex(kdfa(TPM_ALG.SHA256, key, "KDFSELFTESTLABEL", u, v, 160)), expected);
    assert.equal(toHex(kdfa(TPM_ALG.SHA256, key, "KDFSELFTESTLABEL\0", u, v, 160)), expected);
    // A label with two NULs keeps both (only one is ever implied), so the answer differs.
    const twoNuls = Uint8Array.of(...label, 0);
    assert.notEqual(toHex(kdfa(TPM_ALG.SHA256, key, twoNuls, u, v, 160)), expected);
    assert.deepEqual(kdfa(TPM_ALG.SHA256, key, twoNuls, u, v, 160), refKdfa("sha256", key, twoNuls, u, v, 160));
    // An empty label is a lone NUL.
    assert.deepEqual(
      kdfa(TPM_ALG.SHA256, key, "", u, v, 256),
      new Uint8Array(createHmac("sha256", key).update(Buffer.concat([u32(1), Buffer.of(0), u, v, u32(256)])).digest()),
    );
  });

  test("bits that are not a multiple of 8: ceil(bits/8) bytes, excess high bits cleared, bits in the HMAC input", () => {
    for (const bits of [1, 7, 13, 161, 255]) {
      const out = kdfa(TPM_ALG.SHA256, key, "STORAGE", u, v, bits);
      assert.equal(out.length, Math.ceil(bits / 8), `${bits} bits`);
      assert.equal(out[0]! >> (bits % 8), 0, `${bits} bits: high bits clear`);
      assert.deepEqual(out, refKdfa("sha256", key, ascii("STORAGE"), u, v, bits), `${bits} bits`);
    }
    // The requested size is hashed in, so 13 bits is not a masked prefix of 16 bits.
    const k13 = kdfa(TPM_ALG.SHA256, key, "STORAGE", u, v, 13);
    const k16 = kdfa(TPM_ALG.SHA256, key, "STORAGE", u, v, 16);
    assert.notDeepEqual(k13, Uint8Array.of(k16[0]! & 0x1f, k16[1]!));
  });

  test("several HMAC blocks, empty key and empty contexts, the TPM's labels", () => {
    const empty = new Uint8Array(0);
    for (const h of HASHES) {
      for (const lbl of ["STORAGE", "INTEGRITY", "ATH", "CFB", "IDENTITY", "Primary Object Creation"]) {
        for (const bits of [128, h.size * 8, 1000]) {
          assert.deepEqual(
            kdfa(h.alg, key, lbl, u, empty, bits),
            refKdfa(h.name, key, ascii(lbl), u, empty, bits),
            `${h.name} ${lbl} ${bits}`,
          );
        }
      }
      assert.deepEqual(
        kdfa(h.alg, empty, "SECRET", empty, empty, 256),
        refKdfa(h.name, empty, ascii("SECRET"), empty, empty, 256),
      );
    }
  });
});

describe("KDFe", () => {
  const ecc = JSON.parse(readFileSync(VECTOR_DIR + "raw/makecredential_ecc_offline.json", "utf8"));

  test("the ECC offline MakeCredential vector: Zx -> seed", () => {
    const seed = kdfe(TPM_ALG.SHA256, fromHex(ecc.Zx), "IDENTITY", fromHex(ecc.ephX), fromHex(ecc.ekX), 256);
    assert.equal(toHex(seed), ecc.seed);
    assert.equal(
      toHex(refKdfe("sha256", fromHex(ecc.Zx), ascii("IDENTITY"), fromHex(ecc.ephX), fromHex(ecc.ekX), 256)),
      ecc.seed,
    );
  });

  test("the vector's Zx is the ECDH x-coordinate of its ephemeral key and EK point", () => {
    const ecdh = createECDH("prime256v1");
    ecdh.setPrivateKey(fromHex(ecc.ephemeralPriv));
    assert.equal(ecdh.getPublicKey("hex"), "04" + ecc.ephX + ecc.ephY);
    assert.equal(ecdh.computeSecret(fromHex("04" + ecc.ekX + ecc.ekY)).toString("hex"), ecc.Zx);
  });

  test("several hash blocks and odd sizes match the independent implementation", () => {
    const z = fromHex(ecc.Zx);
    for (const h of HASHES) {
      for (const bits of [8, 13, 256, 777]) {
        assert.deepEqual(
          kdfe(h.alg, z, "IDENTITY", fromHex(ecc.ephX), fromHex(ecc.ekX), bits),
          refKdfe(h.name, z, ascii("IDENTITY"), fromHex(ecc.ephX), fromHex(ecc.ekX), bits),
          `${h.name} ${bits}`,
        );
      }
    }
  });
});

describe("AES-CFB128", () => {
  const kat = readJson(new URL("aes_cfb128_sp800_38a.json", KAT_DIR));
  const iv = fromHex(kat.iv);
  const plaintext = fromHex((kat.plaintext as string[]).join(""));

  for (const v of kat.vectors as { name: string; key: string; ciphertext: string[] }[]) {
    test(`NIST SP 800-38A ${v.name}: encrypt and decrypt, four blocks`, () => {
      const key = fromHex(v.key);
      const ciphertext = fromHex(v.ciphertext.join(""));
      assert.equal(toHex(aesCfbEncrypt(key, iv, plaintext)), toHex(ciphertext));
      assert.equal(toHex(aesCfbDecrypt(key, iv, ciphertext)), toHex(plaintext));
    });

    test(`NIST SP 800-38A ${v.name}: a partial last block (the TPM encrypts 34-byte credentials)`, () => {
      // CFB needs no padding: any prefix of the plaintext encrypts to the same prefix of the ciphertext.
      const key = fromHex(v.key);
      const ciphertext = fromHex(v.ciphertext.join(""));
      for (const n of [1, 15, 17, 34, 63]) {
        assert.deepEqual(aesCfbEncrypt(key, iv, plaintext.subarray(0, n)), ciphertext.subarray(0, n), `${n} bytes`);
        assert.deepEqual(aesCfbDecrypt(key, iv, ciphertext.subarray(0, n)), plaintext.subarray(0, n), `${n} bytes`);
      }
    });
  }

  test("a key or IV of the wrong size is refused, naming its size", () => {
    const block = new Uint8Array(16);
    assert.throws(() => aesCfbEncrypt(new Uint8Array(20), block, block), /a key of 20 bytes/);
    assert.throws(() => aesCfbDecrypt(block, new Uint8Array(12), block), /an IV of 12 bytes/);
  });

  test("empty data encrypts and decrypts to empty data", () => {
    const block = new Uint8Array(16);
    assert.equal(aesCfbEncrypt(block, block, new Uint8Array(0)).length, 0);
    assert.equal(aesCfbDecrypt(block, block, new Uint8Array(0)).length, 0);
  });
});

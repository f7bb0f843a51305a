/**
 * The simulator's deterministic key generation: the KDFa stream, Miller-Rabin, RSA and ECC keys.
 * A primary key (the EK) must be a function of (seed, template) only, so determinism is checked,
 * and pinned values catch any change to the construction (it would orphan stored EK certificates).
 * Validity is checked by node:crypto, an implementation independent of the code under test.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import {
  constants,
  createHash,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  privateDecrypt,
  publicEncrypt,
  sign,
  verify,
} from "node:crypto";
import fc from "fast-check";
import { TPM_ALG, TPM_ECC_CURVE } from "../../src/tpm/constants.ts";
import { kdfa } from "../../src/tpm/kdf.ts";
import { KdfStream, PRIMARY_OBJECT_CREATION } from "../../simulator/drbg.ts";
import {
  bigIntToBytes,
  bitLength,
  bytesToBigInt,
  generateRsaKey,
  isProbablePrime,
  millerRabin,
  modInverse,
  modPow,
  rsaJwk,
  type RsaKey,
  type RsaKeyBits,
  rsaKeyFromModulusAndPrime,
  rsaKeyFromPrimes,
} from "../../simulator/rsa_keygen.ts";
import { deriveEccScalar, ECC_CURVES, eccJwk, eccPublicFromScalar } from "../../simulator/ecc_keygen.ts";
import { toHex } from "../../src/util/encoding.ts";

const SHA256: number = TPM_ALG.SHA256;
const enc = new TextEncoder();
const hex = (b: Uint8Array) => toHex(b);
const seedOf = (tag: string) => new Uint8Array(createHash("sha256").update(tag).digest());
const streamOf = (tag: string, context = new Uint8Array(0)) =>
  new KdfStream(SHA256, seedOf(tag), PRIMARY_OBJECT_CREATION, context);
const sha256Hex = (x: bigint) => createHash("sha256").update(bigIntToBytes(x)).digest("hex");

function gcd(a: bigint, b: bigint): bigint {
  while (b) [a, b] = [b, a % b];
  return a;
}

describe("KdfStream", () => {
  test("is KDFa read as a stream: the first L bits equal KDFa(hash, seed, label, context, ∅, L)", () => {
    for (const alg of [TPM_ALG.SHA1, TPM_ALG.SHA256, TPM_ALG.SHA384, TPM_ALG.SHA512]) {
      const seed = seedOf("kdfa");
      const context = enc.encode("some name and data");
      const stream = new KdfStream(alg, seed, "Primary Object Creation", context, 8 * 200);
      assert.equal(
        hex(stream.next(200)),
        hex(kdfa(alg, seed, "Primary Object Creation", context, new Uint8Array(0), 1600)),
      );
    }
  });

  test("does not depend on how reads are split", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 1, maxLength: 64 }),
        fc.array(fc.nat(100), { maxLength: 20 }),
        (seed, sizes) => {
          const a = new KdfStream(SHA256, seed, "L", new Uint8Array(0));
          const b = new KdfStream(SHA256, seed, "L", new Uint8Array(0));
          const pieces = sizes.map((n) => a.next(n));
          const whole = b.next(sizes.reduce((s, n) => s + n, 0));
          assert.equal(pieces.map(hex).join(""), hex(whole));
          assert.equal(a.position, whole.length);
        },
      ),
      { numRuns: 100 },
    );
  });

  test("seed, label, context and limit each change the bytes; a label's terminating NUL does not", () => {
    const base = hex(new KdfStream(SHA256, seedOf("a"), "L", Uint8Array.of(1)).next(64));
    assert.equal(hex(new KdfStream(SHA256, seedOf("a"), "L", Uint8Array.of(1)).next(64)), base);
    assert.equal(hex(new KdfStream(SHA256, seedOf("a"), "L\0", Uint8Array.of(1)).next(64)), base);
    assert.notEqual(hex(new KdfStream(SHA256, seedOf("b"), "L", Uint8Array.of(1)).next(64)), base);
    assert.notEqual(hex(new KdfStream(SHA256, seedOf("a"), "M", Uint8Array.of(1)).next(64)), base);
    assert.notEqual(hex(new KdfStream(SHA256, seedOf("a"), "L", Uint8Array.of(2)).next(64)), base);
    assert.notEqual(hex(new KdfStream(SHA256, seedOf("a"), "L", Uint8Array.of(1), 1024).next(64)), base);
    assert.notEqual(hex(new KdfStream(TPM_ALG.SHA384, seedOf("a"), "L", Uint8Array.of(1)).next(64)), base);
  });

  test("refuses to read past its limit, and bad arguments", () => {
    const s = new KdfStream(SHA256, seedOf("x"), "L", new Uint8Array(0), 8 * 40);
    s.next(39);
    s.next(1);
    assert.throws(() => s.next(1), RangeError);
    assert.throws(() => new KdfStream(0x1234, seedOf("x"), "L", new Uint8Array(0)), RangeError);
    assert.throws(() => new KdfStream(SHA256, seedOf("x"), "L", new Uint8Array(0), 12), RangeError);
    assert.throws(() => new KdfStream(SHA256, seedOf("x"), "L", new Uint8Array(0), 2 ** 32), RangeError);
    assert.throws(() => s.next(-1), RangeError);
  });

  test("pinned output (a change here changes every simulator EK)", () => {
    assert.equal(
      hex(streamOf("pin").next(40)),
      "2705a7473196396d20345453a60415a7a44f18d3da5274af8ed57501431ff88a02775fd607a604f5",
    );
  });
});

describe("modPow and modInverse", () => {
  test("modPow agrees with square-and-multiply", () => {
    const naive = (b: bigint, e: bigint, m: bigint) => {
      let r = 1n % m;
      b %= m;
      for (; e > 0n; e >>= 1n, b = (b * b) % m) if (e & 1n) r = (r * b) % m;
      return r;
    };
    fc.assert(
      fc.property(
        fc.bigInt({ min: 0n, max: (1n << 700n) - 1n }),
        fc.bigInt({ min: 0n, max: (1n << 700n) - 1n }),
        fc.bigInt({ min: 1n, max: (1n << 600n) - 1n }),
        (b, e, m) => assert.equal(modPow(b, e, m), naive(b, e, m)),
      ),
      { numRuns: 200 },
    );
    assert.equal(modPow(5n, 0n, 7n), 1n);
    assert.equal(modPow(5n, 3n, 1n), 0n);
  });

  test("modInverse", () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 1n, max: (1n << 300n) - 1n }), (a) => {
        const m = (1n << 521n) - 1n; // prime
        assert.equal((a * modInverse(a, m)) % m, 1n);
      }),
    );
    assert.throws(() => modInverse(6n, 9n), RangeError);
  });
});

describe("Miller-Rabin", () => {
  const PRIMES = [
    2n,
    3n,
    5n,
    7n,
    65537n,
    (1n << 61n) - 1n,
    (1n << 89n) - 1n,
    (1n << 127n) - 1n,
    (1n << 521n) - 1n,
    (1n << 607n) - 1n,
    ECC_CURVES[TPM_ECC_CURVE.NIST_P256]!.p,
    ECC_CURVES[TPM_ECC_CURVE.NIST_P256]!.n,
    ECC_CURVES[TPM_ECC_CURVE.NIST_P384]!.n,
    // 2^255 - 19 and 2^1279 - 1
    (1n << 255n) - 19n,
    (1n << 1279n) - 1n,
  ];
  // Carmichael numbers fool the Fermat test for every coprime base; strong pseudoprimes to base 2
  // (2047, 3277, 4033, 4681, 8321) fool a fixed-base Miller-Rabin; the rest are plain composites.
  const CARMICHAEL = [561n, 1105n, 1729n, 2465n, 2821n, 6601n, 8911n, 41041n, 825265n, 321197185n, 5394826801n];
  const SPSP2 = [2047n, 3277n, 4033n, 4681n, 8321n, 3215031751n];
  const COMPOSITES = [
    1n,
    0n,
    4n,
    9n,
    65537n * 65537n,
    ((1n << 61n) - 1n) * ((1n << 89n) - 1n),
    ((1n << 127n) - 1n) * ((1n << 521n) - 1n),
    (1n << 1279n) + 1n, // divisible by 3
    (1n << 512n) - 1n,
  ];

  test("says prime for primes", () => {
    const s = streamOf("mr primes");
    for (const p of PRIMES) {
      assert.equal(millerRabin(p, 10, s), true, `${p}`);
      assert.equal(isProbablePrime(p, s), true, `${p}`);
    }
  });

  test("says composite for Carmichael numbers, strong pseudoprimes to base 2 and composites", () => {
    const s = streamOf("mr composites");
    for (const c of [...CARMICHAEL, ...SPSP2, ...COMPOSITES]) {
      // Miller-Rabin on its own (no trial division) must catch Carmichael numbers: a random witness is a liar with p ≤ 1/4.
      assert.equal(millerRabin(c, 20, s), false, `${c}`);
      assert.equal(isProbablePrime(c, s), false, `${c}`);
    }
  });

  test("agrees with trial division on random odd numbers below 2^32", () => {
    const trial = (w: number) => {
      if (w < 2) return false;
      for (let d = 2; d * d <= w; d++) if (w % d === 0) return false;
      return true;
    };
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 2 ** 31 - 1 }),
        fc.uint8Array({ minLength: 16, maxLength: 16 }),
        (k, seed) => {
          const w = 2 * k + 1;
          const s = new KdfStream(SHA256, seed, "mr", new Uint8Array(0));
          // 20 rounds: a composite survives with probability ≤ 4^-20 per case.
          assert.equal(millerRabin(BigInt(w), 20, s), trial(w), `${w}`);
        },
      ),
      { numRuns: 2000 },
    );
  });

  test("witnesses come from the stream", () => {
    const s = streamOf("witness");
    millerRabin((1n << 127n) - 1n, 3, s);
    assert.ok(s.position >= 3 * 16, "three 127-bit witnesses drawn");
  });
});

describe("RSA key generation", () => {
  const keys = new Map<string, RsaKey>();
  const keyOf = (tag: string, bits: RsaKeyBits) => {
    const id = `${tag}/${bits}`;
    if (!keys.has(id)) keys.set(id, generateRsaKey(streamOf(tag), bits));
    return keys.get(id)!;
  };

  function checkKey(key: RsaKey, bits: number) {
    const half = bits / 2;
    assert.equal(key.p * key.q, key.n);
    assert.equal(bitLength(key.n), bits);
    for (const prime of [key.p, key.q]) {
      assert.equal(bitLength(prime), half);
      assert.equal(prime >> BigInt(half - 2), 3n, "top two bits set");
      assert.equal(prime & 1n, 1n);
      assert.equal(gcd(key.e, prime - 1n), 1n);
      assert.ok(isProbablePrime(prime, streamOf("independent check"), 20));
    }
    const diff = key.p > key.q ? key.p - key.q : key.q - key.p;
    assert.ok(diff > 1n << BigInt(half - 100), "|p - q| > 2^(nlen/2 - 100)");
    const lambda = ((key.p - 1n) * (key.q - 1n)) / gcd(key.p - 1n, key.q - 1n);
    assert.equal((key.d * key.e) % lambda, 1n, "d·e ≡ 1 mod lcm(p-1, q-1)");
    assert.ok(key.d > 1n << BigInt(half), "d > 2^(nlen/2)");
    assert.equal(key.dp, key.d % (key.p - 1n));
    assert.equal(key.dq, key.d % (key.q - 1n));
    assert.equal((key.qi * key.q) % key.p, 1n);
  }

  function checkWithNode(key: RsaKey) {
    const jwk = rsaJwk(key);
    for (const m of ["n", "e", "d", "p", "q", "dp", "dq", "qi"] as const) {
      const b = Buffer.from(jwk[m]!, "base64url");
      assert.notEqual(b[0], 0, `${m} has no leading zero byte`);
      assert.equal(bytesToBigInt(new Uint8Array(b)), key[m]);
    }
    const priv = createPrivateKey({ key: jwk, format: "jwk" });
    const pub = createPublicKey({ key: { kty: "RSA", n: jwk.n, e: jwk.e }, format: "jwk" });
    assert.equal(priv.asymmetricKeyDetails?.modulusLength, bitLength(key.n));
    const msg = enc.encode("attestation");
    assert.ok(verify("sha256", msg, pub, sign("sha256", msg, priv)), "RSASSA-PKCS1-v1_5");
    const pss = { padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 };
    assert.ok(verify("sha256", msg, { key: pub, ...pss }, sign("sha256", msg, { key: priv, ...pss })), "RSA-PSS");
    const oaep = { padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha256" };
    const secret = enc.encode("credential seed");
    assert.equal(
      hex(privateDecrypt({ key: priv, ...oaep }, publicEncrypt({ key: pub, ...oaep }, secret))),
      hex(secret),
    );
  }

  test("is deterministic: the same stream gives the same key, another seed another key", () => {
    const a = keyOf("ek", 2048);
    assert.deepEqual(generateRsaKey(streamOf("ek"), 2048), a);
    assert.notEqual(keyOf("other ek", 2048).n, a.n);
    assert.notEqual(generateRsaKey(streamOf("ek", Uint8Array.of(1)), 2048).n, a.n, "context matters");
  });

  test("pinned 2048-bit key (a change here changes every simulator RSA EK)", () => {
    assert.equal(sha256Hex(keyOf("pin", 2048).n), "ef4bf837149eb2c77b11cbbcc50e7a5c6e622b6a6578acd1e08d2afb08f45020");
  });

  for (const bits of [1024, 2048, 3072, 4096] as const) {
    test(`${bits}-bit keys satisfy FIPS 186-5 A.1 and work in node:crypto`, () => {
      const key = keyOf("ek", bits);
      checkKey(key, bits);
      checkWithNode(key);
    });
  }

  test("2048-bit keys from several seeds are valid", () => {
    for (let i = 0; i < 4; i++) {
      const key = keyOf(`seed ${i}`, 2048);
      checkKey(key, 2048);
      checkWithNode(key);
    }
  });

  test("another exponent", () => {
    const key = generateRsaKey(streamOf("e=3"), 1024, 3);
    assert.equal(key.e, 3n);
    checkKey(key, 1024);
    checkWithNode(key);
    assert.throws(() => generateRsaKey(streamOf("e"), 1024, 4), RangeError);
    assert.throws(() => generateRsaKey(streamOf("e"), 1024, 1), RangeError);
  });

  test("unsupported sizes are refused", () => {
    assert.throws(() => generateRsaKey(streamOf("x"), 512 as RsaKeyBits), RangeError);
    assert.throws(() => generateRsaKey(streamOf("x"), 2047 as RsaKeyBits), RangeError);
  });

  test("a key reloads from its primes, or from n and the one prime a TPMT_SENSITIVE keeps", () => {
    const key = keyOf("ek", 2048);
    assert.deepEqual(rsaKeyFromPrimes(key.p, key.q, key.e), key);
    assert.deepEqual(rsaKeyFromModulusAndPrime(key.n, key.p, key.e), key);
    assert.deepEqual(rsaKeyFromModulusAndPrime(key.n, key.p), key, "65537 by default");
    assert.throws(() => rsaKeyFromModulusAndPrime(key.n, key.p + 2n), RangeError);
    assert.throws(() => rsaKeyFromModulusAndPrime(key.n, key.n), RangeError);
    assert.throws(() => rsaKeyFromPrimes(key.p, key.p), RangeError);
    // With q first, it is the same key in the other CRT order, and node:crypto still accepts it.
    const swapped = rsaKeyFromModulusAndPrime(key.n, key.q);
    assert.equal(swapped.d, key.d);
    checkWithNode(swapped);
  });

  test("bigIntToBytes", () => {
    assert.equal(hex(bigIntToBytes(0n)), "00");
    assert.equal(hex(bigIntToBytes(0x1234n)), "1234");
    assert.equal(hex(bigIntToBytes(0x1234n, 4)), "00001234");
    assert.throws(() => bigIntToBytes(0x123456n, 2), RangeError);
    assert.throws(() => bigIntToBytes(-1n), RangeError);
  });
});

describe("ECC key generation", () => {
  const CURVES = [TPM_ECC_CURVE.NIST_P256, TPM_ECC_CURVE.NIST_P384, TPM_ECC_CURVE.NIST_P521] as const;

  const onCurve = (curveId: number, x: Uint8Array, y: Uint8Array) => {
    const { p, b } = ECC_CURVES[curveId]!;
    const X = bytesToBigInt(x);
    const Y = bytesToBigInt(y);
    return X < p && Y < p && (Y * Y - (X * X * X - 3n * X + b)) % p === 0n;
  };

  /** A stand-in stream that hands out given blocks, to drive the rejection loop. */
  const scripted = (...blocks: Uint8Array[]) => {
    let draws = 0;
    const s = { next: (n: number) => (assert.equal(blocks[draws]!.length, n), blocks[draws++]!) };
    return { stream: s as unknown as KdfStream, draws: () => draws };
  };

  for (const curveId of CURVES) {
    const curve = ECC_CURVES[curveId]!;

    test(`${curve.crv}: deterministic scalar in [1, n-1] at the curve's size`, () => {
      const d = deriveEccScalar(streamOf("ecc ek"), curveId);
      assert.equal(d.length, curve.bytes);
      assert.equal(hex(deriveEccScalar(streamOf("ecc ek"), curveId)), hex(d));
      assert.notEqual(hex(deriveEccScalar(streamOf("ecc ek 2"), curveId)), hex(d));
      fc.assert(
        fc.property(fc.uint8Array({ minLength: 1, maxLength: 48 }), (seed) => {
          const v = bytesToBigInt(deriveEccScalar(new KdfStream(SHA256, seed, "ecc", new Uint8Array(0)), curveId));
          assert.ok(v >= 1n && v <= curve.n - 1n);
        }),
        { numRuns: 200 },
      );
    });

    test(`${curve.crv}: rejection sampling redraws above n-2 and maps c to c+1`, () => {
      const size = Math.ceil(bitLength(curve.n) / 8);
      const ones = new Uint8Array(size).fill(0xff); // masked to len(n) bits, still > n-2
      const s1 = scripted(ones, new Uint8Array(size));
      assert.equal(bytesToBigInt(deriveEccScalar(s1.stream, curveId)), 1n);
      assert.equal(s1.draws(), 2);
      const s2 = scripted(bigIntToBytes(curve.n - 2n, size));
      assert.equal(bytesToBigInt(deriveEccScalar(s2.stream, curveId)), curve.n - 1n);
      const s3 = scripted(bigIntToBytes(curve.n - 1n, size), bigIntToBytes(5n, size));
      assert.equal(bytesToBigInt(deriveEccScalar(s3.stream, curveId)), 6n);
    });

    test(`${curve.crv}: the curve constants match node:crypto (G on the curve, (n-1)·G = -G)`, () => {
      const g = eccPublicFromScalar(curveId, bigIntToBytes(1n, curve.bytes));
      assert.ok(onCurve(curveId, g.x, g.y));
      const minusG = eccPublicFromScalar(curveId, bigIntToBytes(curve.n - 1n, curve.bytes));
      assert.equal(hex(minusG.x), hex(g.x));
      assert.equal(bytesToBigInt(minusG.y), curve.p - bytesToBigInt(g.y));
      assert.throws(() => eccPublicFromScalar(curveId, bigIntToBytes(0n, curve.bytes)), RangeError);
      assert.throws(() => eccPublicFromScalar(curveId, bigIntToBytes(curve.n, curve.bytes)), RangeError);
      // A short scalar (leading zeros dropped, as a TPM2B may carry it) is the same key.
      assert.deepEqual(eccPublicFromScalar(curveId, Uint8Array.of(1)), g);
    });

    test(`${curve.crv}: the public point is on the curve, and ECDH and ECDSA work with it`, () => {
      const d = deriveEccScalar(streamOf("ecc ek"), curveId);
      const { x, y } = eccPublicFromScalar(curveId, d);
      assert.equal(x.length, curve.bytes);
      assert.equal(y.length, curve.bytes);
      assert.ok(onCurve(curveId, x, y));

      const jwk = eccJwk(curveId, d);
      const priv = createPrivateKey({ key: jwk, format: "jwk" });
      const pub = createPublicKey({ key: { kty: "EC", crv: jwk.crv, x: jwk.x, y: jwk.y }, format: "jwk" });
      const msg = enc.encode("quote");
      // The hash sized to the curve: Deno's node:crypto cannot sign P-521 with SHA-256.
      const h = { 32: "sha256", 48: "sha384", 66: "sha512" }[curve.bytes]!;
      assert.ok(verify(h, msg, pub, sign(h, msg, priv)), "ECDSA");

      // ECDH with a fresh key made by node:crypto: both sides reach the same secret. (KeyObjects and
      // diffieHellman rather than createECDH, which Deno lacks for P-521.)
      const peer = generateKeyPairSync("ec", { namedCurve: curve.ecdhName });
      const ours = diffieHellman({ privateKey: priv, publicKey: peer.publicKey });
      const theirs = diffieHellman({ privateKey: peer.privateKey, publicKey: pub });
      assert.equal(ours.length, curve.bytes);
      assert.equal(hex(ours), hex(theirs));
    });
  }

  test("unsupported curves are refused", () => {
    assert.throws(() => deriveEccScalar(streamOf("x"), TPM_ECC_CURVE.NIST_P192), RangeError);
    assert.throws(() => eccPublicFromScalar(TPM_ECC_CURVE.NIST_P224, Uint8Array.of(1)), RangeError);
  });

  test("pinned P-256 scalar (a change here changes every simulator ECC EK)", () => {
    assert.equal(
      hex(deriveEccScalar(streamOf("pin"), TPM_ECC_CURVE.NIST_P256)),
      "2705a7473196396d20345453a60415a7a44f18d3da5274af8ed57501431ff88b",
    );
  });
});

/**
 * Software TPM2_MakeCredential and the TPM side of ActivateCredential: the offline vectors that swtpm
 * accepted (ECC: a full KAT from the ephemeral key; RSA: the blob from a fixed seed), round trips with
 * software EK key pairs, and the errors a TPM would give for altered input.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { generateKeyPairSync, type KeyObject } from "node:crypto";
import { readFileSync } from "node:fs";
import {
  CredentialError,
  CredentialIntegrityError,
  makeCredential,
  recoverSeed,
  unwrapCredential,
  wrapCredential,
} from "../../src/tpm/credential.ts";
import { TPM_ALG, TPM_ECC_CURVE, TPM_RC } from "../../src/tpm/constants.ts";
import { TpmLibraryError } from "../../src/tpm/errors.ts";
import { decode } from "../../src/tpm/marshal.ts";
import { TPMA_OBJECT, TPMT_PUBLIC, uniqueEcc } from "../../src/tpm/structures.ts";
import { fromHex, rawHex, toHex, VECTOR_DIR } from "../helpers/vectors.ts";
import { fromBase64url } from "../../src/util/encoding.ts";

/** The TCG L-1 (RSA-2048) and L-2 (P-256) EK templates, from the captured template bytes. */
const EK_TEMPLATES = {
  rsa: decode(TPMT_PUBLIC, rawHex("template_ek_rsa2048_L1.TPMT_PUBLIC.hex")),
  ecc: decode(TPMT_PUBLIC, rawHex("template_ek_eccp256_L2.TPMT_PUBLIC.hex")),
};

const vector = (name: string) => JSON.parse(readFileSync(VECTOR_DIR + "raw/" + name, "utf8"));
const rsaVector = vector("makecredential_rsa_offline.json");
const eccVector = vector("makecredential_ecc_offline.json");

/** The TPM2B_ID_OBJECT in the vectors carries its size; our credentialBlob is the buffer inside it. */
function idObjectBuffer(tpm2b: string): string {
  const b = fromHex(tpm2b);
  assert.equal((b[0]! << 8) | b[1]!, b.length - 2, "vector TPM2B size");
  return toHex(b.subarray(2));
}

const b64u = (s: string | undefined) => fromBase64url(s ?? "");

interface SoftwareEk {
  readonly label: string;
  readonly public: TPMT_PUBLIC;
  readonly privateKey: KeyObject;
}

/** An EK-shaped public area around a key pair made here, so the test holds the private key. */
function softwareEk(kind: "rsa" | "rsa-sha384" | "p256" | "p384"): SoftwareEk {
  if (kind === "rsa" || kind === "rsa-sha384") {
    const { publicKey, privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
    const base = EK_TEMPLATES.rsa;
    const pub: TPMT_PUBLIC = { ...base, unique: b64u(publicKey.export({ format: "jwk" }).n) };
    if (kind === "rsa-sha384") {
      // High-range style: SHA-384 nameAlg with AES-256-CFB (profile §B.4.4).
      pub.nameAlg = TPM_ALG.SHA384;
      pub.parameters = { ...base.parameters, symmetric: { ...aes(256) } } as TPMT_PUBLIC["parameters"];
    }
    return { label: kind, public: pub, privateKey };
  }
  const p384 = kind === "p384";
  const { publicKey, privateKey } = generateKeyPairSync("ec", { namedCurve: p384 ? "P-384" : "P-256" });
  const jwk = publicKey.export({ format: "jwk" });
  const base = EK_TEMPLATES.ecc;
  const pub: TPMT_PUBLIC = { ...base, unique: { x: b64u(jwk.x), y: b64u(jwk.y) } };
  if (p384) {
    // swtpm's own ECC EK is P-384 with SHA-384 and AES-256-CFB.
    pub.nameAlg = TPM_ALG.SHA384;
    pub.parameters = {
      ...base.parameters,
      symmetric: aes(256),
      curveID: TPM_ECC_CURVE.NIST_P384,
    } as TPMT_PUBLIC["parameters"];
  }
  return { label: kind, public: pub, privateKey };
}

function aes(keyBits: number) {
  return { algorithm: TPM_ALG.AES, keyBits, mode: TPM_ALG.CFB, details: null };
}

/** Asserts a CredentialError with the TPM response code a TPM would give. */
function isCredentialError(rc: number, message?: RegExp) {
  return (e: unknown) => {
    assert.ok(e instanceof CredentialError, `expected CredentialError, got ${String(e)}`);
    assert.ok(e instanceof TpmLibraryError);
    assert.equal(e.rc, rc, `rc 0x${e.rc.toString(16)}: ${e.message}`);
    if (message) assert.match(e.message, message);
    return true;
  };
}

function isIntegrityError(e: unknown): boolean {
  assert.ok(e instanceof CredentialIntegrityError, `expected CredentialIntegrityError, got ${String(e)}`);
  assert.equal(e.code, "ERR_TPM_INTEGRITY");
  assert.equal(e.rc, TPM_RC.INTEGRITY);
  assert.match(e.message, /integrity/);
  return true;
}

const AK_NAME = fromHex(eccVector.akName);
const randomName = () => Uint8Array.of(0x00, 0x0b, ...crypto.getRandomValues(new Uint8Array(32)));

describe("makeCredential: offline vectors that swtpm accepted", () => {
  test("ECC P-256 EK, full KAT: ephemeral key -> secret point, Zx -> seed -> credentialBlob", async () => {
    const ek: TPMT_PUBLIC = { ...EK_TEMPLATES.ecc, unique: { x: fromHex(eccVector.ekX), y: fromHex(eccVector.ekY) } };
    const made = await makeCredential(ek, AK_NAME, fromHex(eccVector.credential), {
      ephemeralPrivate: fromHex(eccVector.ephemeralPriv),
    });
    assert.equal(toHex(made.secret), eccVector.encryptedSecret_TPMS_ECC_POINT);
    assert.equal(toHex(made.credentialBlob), idObjectBuffer(eccVector.credentialBlob_TPM2B_ID_OBJECT));
    // The same from the seed alone.
    assert.equal(
      toHex(wrapCredential(ek, fromHex(eccVector.seed), AK_NAME, fromHex(eccVector.credential))),
      idObjectBuffer(eccVector.credentialBlob_TPM2B_ID_OBJECT),
    );
  });

  test("RSA-2048 EK: credentialBlob is deterministic from seed, credential and Name", async () => {
    const ek: TPMT_PUBLIC = { ...EK_TEMPLATES.rsa, unique: fromHex(rsaVector.ekModulus) };
    const expected = idObjectBuffer(rsaVector.credentialBlob_TPM2B_ID_OBJECT);
    const seed = fromHex(rsaVector.seed);
    const credential = fromHex(rsaVector.credential);
    assert.equal(toHex(wrapCredential(ek, seed, fromHex(rsaVector.akName), credential)), expected);
    const made = await makeCredential(ek, fromHex(rsaVector.akName), credential, { seed });
    assert.equal(toHex(made.credentialBlob), expected);
    // OAEP padding is random, so only its size is known: the modulus size.
    assert.equal(made.secret.length, 256);
    assert.notEqual(toHex(made.secret), rsaVector.encryptedSecret);
  });

  test("layout for a SHA-256 EK and a 32-byte credential: TPM2B_DIGEST(32) then 34 bytes (keylime.md §1.4)", async () => {
    const { public: ek } = softwareEk("p256");
    const { credentialBlob } = await makeCredential(ek, AK_NAME, new Uint8Array(32));
    assert.equal(credentialBlob.length, 2 + 32 + 34);
    assert.deepEqual(credentialBlob.subarray(0, 2), Uint8Array.of(0, 32));
  });
});

describe("makeCredential -> recoverSeed -> unwrapCredential with software EKs", () => {
  for (const kind of ["rsa", "rsa-sha384", "p256", "p384"] as const) {
    test(`${kind}: the credential comes back; altered blob, wrong Name, wrong seed give TPM_RC_INTEGRITY`, async () => {
      const ek = softwareEk(kind);
      const digestSize = ek.public.nameAlg === TPM_ALG.SHA384 ? 48 : 32;
      const name = ek.public.nameAlg === TPM_ALG.SHA384
        ? Uint8Array.of(0x00, 0x0c, ...new Uint8Array(48).fill(7))
        : randomName();
      for (const credential of [new TextEncoder().encode("0123456789abcdefABCDEFGHIJ012345"), new Uint8Array(0)]) {
        const made = await makeCredential(ek.public, name, credential);
        const seed = recoverSeed(ek.privateKey, ek.public, made.secret);
        assert.equal(seed.length, digestSize);
        assert.deepEqual(unwrapCredential(ek.public, seed, name, made.credentialBlob), credential);
      }
      const credential = crypto.getRandomValues(new Uint8Array(digestSize));
      const made = await makeCredential(ek.public, name, credential);
      const seed = recoverSeed(ek.privateKey, ek.public, made.secret);
      assert.deepEqual(unwrapCredential(ek.public, seed, name, made.credentialBlob), credential);

      // Every single-bit change of the blob is caught by the HMAC (integrity, encIdentity, sizes).
      for (let i = 0; i < made.credentialBlob.length; i++) {
        const altered = made.credentialBlob.slice();
        altered[i]! ^= 1 << (i % 8);
        assert.throws(() => unwrapCredential(ek.public, seed, name, altered), (e) => {
          if (e instanceof CredentialIntegrityError) return isIntegrityError(e);
          // A changed integrity size can make the TPM2B itself unreadable, as TPM2B_DIGEST_Unmarshal
          // reports it: SIZE (above 64) or INSUFFICIENT (past the end). Never success.
          assert.ok(i < 2, `byte ${i} is not in the size field`);
          assert.ok(e instanceof CredentialError && (e.rc === TPM_RC.SIZE || e.rc === TPM_RC.INSUFFICIENT), String(e));
          return true;
        });
      }
      const wrongName = name.slice();
      wrongName[wrongName.length - 1]! ^= 0x80;
      assert.throws(() => unwrapCredential(ek.public, seed, wrongName, made.credentialBlob), isIntegrityError);
      const wrongSeed = seed.slice();
      wrongSeed[0]! ^= 1;
      assert.throws(() => unwrapCredential(ek.public, wrongSeed, name, made.credentialBlob), isIntegrityError);
      // Truncated or extended blobs, too.
      assert.throws(
        () => unwrapCredential(ek.public, seed, name, made.credentialBlob.subarray(0, made.credentialBlob.length - 1)),
        isIntegrityError,
      );
      assert.throws(
        () => unwrapCredential(ek.public, seed, name, Uint8Array.of(...made.credentialBlob, 0)),
        isIntegrityError,
      );
    });
  }

  test("another EK's private key cannot recover the seed", async () => {
    const ek = softwareEk("rsa");
    const other = softwareEk("rsa");
    const made = await makeCredential(ek.public, AK_NAME, new Uint8Array(16));
    assert.throws(
      () => recoverSeed(other.privateKey, ek.public, made.secret),
      isCredentialError(TPM_RC.KEY, /not the private key/),
    );
    // With the other EK's public area as well, OAEP decoding fails.
    assert.throws(() => recoverSeed(other.privateKey, other.public, made.secret), isCredentialError(TPM_RC.VALUE));
  });
});

describe("recoverSeed rejects a bad secret", () => {
  test("RSA: altered ciphertext -> TPM_RC_VALUE; wrong length -> TPM_RC_SIZE", async () => {
    const ek = softwareEk("rsa");
    const { secret } = await makeCredential(ek.public, AK_NAME, new Uint8Array(32));
    const altered = secret.slice();
    altered[100]! ^= 1;
    assert.throws(() => recoverSeed(ek.privateKey, ek.public, altered), isCredentialError(TPM_RC.VALUE, /OAEP/));
    assert.throws(() => recoverSeed(ek.privateKey, ek.public, secret.subarray(1)), isCredentialError(TPM_RC.SIZE));
  });

  test("ECC: a point off the curve -> TPM_RC_ECC_POINT; a short TPMS_ECC_POINT -> TPM_RC_INSUFFICIENT", async () => {
    const ek = softwareEk("p256");
    const { secret } = await makeCredential(ek.public, AK_NAME, new Uint8Array(32));
    const offCurve = secret.slice();
    offCurve[10]! ^= 1;
    assert.throws(
      () => recoverSeed(ek.privateKey, ek.public, offCurve),
      isCredentialError(TPM_RC.ECC_POINT, /not a point/),
    );
    assert.throws(
      () => recoverSeed(ek.privateKey, ek.public, secret.subarray(0, 40)),
      isCredentialError(TPM_RC.INSUFFICIENT, /TPMS_ECC_POINT/),
    );
    assert.throws(
      () => recoverSeed(ek.privateKey, ek.public, Uint8Array.of(...secret, 0)),
      isCredentialError(TPM_RC.SIZE, /trailing/),
    );
    const pubOnly = ek.public;
    assert.throws(
      () => recoverSeed(softwareEk("p256").privateKey, pubOnly, secret),
      isCredentialError(TPM_RC.KEY),
    );
  });
});

describe("makeCredential validates its inputs as TPM2_MakeCredential does", () => {
  const rsa = softwareEk("rsa");
  const ecc = softwareEk("p256");

  test("credential longer than the EK nameAlg digest -> TPM_RC_SIZE", async () => {
    await assert.rejects(
      makeCredential(rsa.public, AK_NAME, new Uint8Array(33)),
      isCredentialError(TPM_RC.SIZE, /at most 32/),
    );
  });

  test("an EK that is not a restricted decryption key -> TPM_RC_ATTRIBUTES", async () => {
    const signer = { ...rsa.public, objectAttributes: TPMA_OBJECT.of("fixedTPM", "fixedParent", "sign") };
    await assert.rejects(
      makeCredential(signer, AK_NAME, new Uint8Array(32)),
      isCredentialError(TPM_RC.ATTRIBUTES, /restricted/),
    );
    const unrestricted = { ...rsa.public, objectAttributes: TPMA_OBJECT.of("decrypt") };
    await assert.rejects(
      makeCredential(unrestricted, AK_NAME, new Uint8Array(1)),
      isCredentialError(TPM_RC.ATTRIBUTES),
    );
  });

  test("an EK without AES-CFB symmetric parameters -> TPM_RC_SYMMETRIC", async () => {
    const nullSym = {
      ...ecc.public,
      parameters: {
        ...ecc.public.parameters,
        symmetric: { algorithm: TPM_ALG.NULL, keyBits: null, mode: null, details: null },
      },
    } as TPMT_PUBLIC;
    await assert.rejects(
      makeCredential(nullSym, AK_NAME, new Uint8Array(1)),
      isCredentialError(TPM_RC.SYMMETRIC, /NULL/),
    );
    const cbc = {
      ...ecc.public,
      parameters: { ...ecc.public.parameters, symmetric: { ...aes(128), mode: TPM_ALG.CBC } },
    } as TPMT_PUBLIC;
    await assert.rejects(
      makeCredential(cbc, AK_NAME, new Uint8Array(1)),
      isCredentialError(TPM_RC.SYMMETRIC, /AES-CFB/),
    );
  });

  test("a keyedhash object -> TPM_RC_TYPE", async () => {
    const keyed = {
      type: TPM_ALG.KEYEDHASH,
      nameAlg: TPM_ALG.SHA256,
      objectAttributes: TPMA_OBJECT.of("restricted", "decrypt"),
      authPolicy: new Uint8Array(0),
      parameters: { scheme: { scheme: TPM_ALG.NULL, details: null } },
      unique: new Uint8Array(32),
    } as TPMT_PUBLIC;
    await assert.rejects(makeCredential(keyed, AK_NAME, new Uint8Array(1)), isCredentialError(TPM_RC.TYPE));
  });

  test("a Name that is not nameAlg ‖ digest -> TPM_RC_SIZE", async () => {
    for (const name of [new Uint8Array(0), Uint8Array.of(0, 0x0b, 1, 2), Uint8Array.of(0x40, 0, 0, 1)]) {
      await assert.rejects(
        makeCredential(rsa.public, name, new Uint8Array(1)),
        isCredentialError(TPM_RC.SIZE, /objectName/),
      );
    }
  });

  test("KAT options must fit the EK type: seed is RSA-only and digest-sized, ephemeralPrivate is ECC-only", async () => {
    await assert.rejects(
      makeCredential(ecc.public, AK_NAME, new Uint8Array(1), { seed: new Uint8Array(32) }),
      isCredentialError(TPM_RC.VALUE),
    );
    await assert.rejects(
      makeCredential(rsa.public, AK_NAME, new Uint8Array(1), { ephemeralPrivate: new Uint8Array(32).fill(1) }),
      isCredentialError(TPM_RC.VALUE),
    );
    await assert.rejects(
      makeCredential(rsa.public, AK_NAME, new Uint8Array(1), { seed: new Uint8Array(20) }),
      isCredentialError(TPM_RC.SIZE),
    );
    await assert.rejects(
      makeCredential(ecc.public, AK_NAME, new Uint8Array(1), { ephemeralPrivate: new Uint8Array(32) }),
      isCredentialError(TPM_RC.VALUE, /ephemeralPrivate/),
    );
  });

  test("an ECC EK point that is not on its curve -> TPM_RC_ECC_POINT", async () => {
    const point = uniqueEcc(ecc.public);
    const y = point.y.slice();
    y[0]! ^= 1;
    const bad = { ...ecc.public, unique: { x: point.x, y } };
    await assert.rejects(makeCredential(bad, AK_NAME, new Uint8Array(1)), isCredentialError(TPM_RC.ECC_POINT));
  });

  test("a truncated credentialBlob -> TPM_RC_INSUFFICIENT, not an integrity verdict", () => {
    assert.throws(
      () => unwrapCredential(rsa.public, new Uint8Array(32), AK_NAME, Uint8Array.of(0)),
      isCredentialError(TPM_RC.INSUFFICIENT, /TPM2B_ID_OBJECT/),
    );
  });
});

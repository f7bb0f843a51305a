/**
 * The Keylime MakeCredential blob and auth_tag: layout and parsing, the captured on-TPM
 * MakeCredential/ActivateCredential pair, the registrar's challenge, and interop with tpm2-tools:
 * our blob activated by tpm2_activatecredential on swtpm (RSA and ECC EKs), and tpm2_makecredential's
 * blob decoded and unwrapped by us.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHmac, generateKeyPairSync, type KeyObject } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  authTag,
  authTagForKey,
  checkAuthTag,
  decodeKeylimeBlob,
  encodeKeylimeBlob,
  KEYLIME_BLOB_MAGIC,
  makeKeylimeChallenge,
  randomChallenge,
} from "../../src/protocol/credential.ts";
import { makeCredential, recoverSeed, unwrapCredential } from "../../src/tpm/credential.ts";
import { objectName } from "../../src/tpm/crypto.ts";
import { MarshalError } from "../../src/tpm/errors.ts";
import { decode, encode, Reader } from "../../src/tpm/marshal.ts";
import {
  TPM2B_ENCRYPTED_SECRET,
  TPM2B_ID_OBJECT,
  TPM2B_NAME,
  TPM2B_PUBLIC,
  TPMS_ECC_POINT,
  TPMT_PUBLIC,
} from "../../src/tpm/structures.ts";
import { requireTools, startSwtpm, type SwtpmInstance, swtpmSkipReason } from "../helpers/swtpm.ts";
import { fromHex, rawHex, toHex } from "../helpers/vectors.ts";
import { fromBase64, fromBase64url, toBase64 } from "../../src/util/encoding.ts";
import { type Run, runProcess } from "../helpers/run_process.ts";

const ascii = (s: string) => new TextEncoder().encode(s);
const b64 = (b: Uint8Array) => toBase64(b);
const b64u = (s: string | undefined) => fromBase64url(s ?? "");

/** The captured TPM2_ReadPublic of the persistent AK 0x81010002: its TPM2B_PUBLIC bytes and Name. */
function capturedAk(): { aikTpm: Uint8Array; name: Uint8Array } {
  const rsp = rawHex("ReadPublic_AK_persistent.rsp.hex");
  const r = new Reader(rsp, 10);
  const start = r.offset;
  TPM2B_PUBLIC.decode(r);
  const aikTpm = rsp.slice(start, r.offset);
  return { aikTpm, name: TPM2B_NAME.decode(r) };
}

/** An EK-shaped TPM2B_PUBLIC around a key pair made here, so the test holds the private key. */
function softwareEk(kind: "rsa" | "ecc"): { ekTpm: Uint8Array; public: TPMT_PUBLIC; privateKey: KeyObject } {
  if (kind === "rsa") {
    const { publicKey, privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
    const template = decode(TPMT_PUBLIC, rawHex("template_ek_rsa2048_L1.TPMT_PUBLIC.hex"));
    const pub: TPMT_PUBLIC = { ...template, unique: b64u(publicKey.export({ format: "jwk" }).n) };
    return { ekTpm: encode(TPM2B_PUBLIC, pub), public: pub, privateKey };
  }
  const { publicKey, privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const jwk = publicKey.export({ format: "jwk" });
  const template = decode(TPMT_PUBLIC, rawHex("template_ek_eccp256_L2.TPMT_PUBLIC.hex"));
  const pub: TPMT_PUBLIC = { ...template, unique: { x: b64u(jwk.x), y: b64u(jwk.y) } };
  return { ekTpm: encode(TPM2B_PUBLIC, pub), public: pub, privateKey };
}

function marshalError(pattern: RegExp) {
  return (e: unknown) => {
    assert.ok(e instanceof MarshalError, `expected MarshalError, got ${String(e)}`);
    assert.equal(e.code, "ERR_TPM_MARSHAL");
    assert.match(e.message, pattern);
    return true;
  };
}

describe("Keylime MakeCredential blob", () => {
  const pair = { credentialBlob: new Uint8Array(68).fill(0xaa), secret: new Uint8Array(256).fill(0xbb) };
  pair.credentialBlob.set([0x00, 0x20]); // integrityHMAC size 32

  test("layout of keylime.md §1.4 for an RSA-2048/SHA-256 EK: 336 bytes, 448 base64 characters", () => {
    const blob = encodeKeylimeBlob(pair);
    assert.equal(blob.length, 336);
    assert.equal(b64(blob).length, 448);
    assert.equal(toHex(blob.subarray(0, 12)), "badcc0de" + "00000001" + "0044" + "0020");
    assert.equal(toHex(blob.subarray(78, 80)), "0100");
    assert.deepEqual(decodeKeylimeBlob(blob), pair);
  });

  test("decode names what is wrong", () => {
    const blob = encodeKeylimeBlob(pair);
    const with_ = (at: number, bytes: number[]) => {
      const b = blob.slice();
      b.set(bytes, at);
      return b;
    };
    assert.throws(
      () => decodeKeylimeBlob(blob.subarray(0, 5)),
      marshalError(/5 bytes is shorter than the 8-byte header/),
    );
    // Not bytes at all: a clear MarshalError, never a TypeError from reading .length of nothing.
    const notBytes: [unknown, string][] = [
      [b64(blob), "a string \\(decode the base64 first\\)"],
      [undefined, "nothing \\(undefined\\)"],
      [null, "null"],
      [[...blob], "an array of 336"],
    ];
    for (const [v, what] of notBytes) {
      const message = new RegExp(
        `^Cannot decode MakeCredential blob: the blob must be bytes \\(a Uint8Array\\), got ${what}$`,
      );
      assert.throws(() => decodeKeylimeBlob(v as Uint8Array), marshalError(message));
    }
    assert.throws(
      () => decodeKeylimeBlob(with_(0, [0xde, 0xc0, 0xdc, 0xba])),
      marshalError(/magic 0xdec0dcba is not 0xbadcc0de/),
    );
    assert.throws(() => decodeKeylimeBlob(with_(4, [0, 0, 0, 2])), marshalError(/version 2 is not 1/));
    assert.throws(() => decodeKeylimeBlob(blob.subarray(0, 8)), marshalError(/credentialBlob.*need 2 bytes/));
    assert.throws(
      () => decodeKeylimeBlob(with_(8, [0x00, 0x90])),
      marshalError(/credentialBlob.*size 144 exceeds maximum 132/),
    );
    assert.throws(() => decodeKeylimeBlob(blob.subarray(0, 300)), marshalError(/secret.*need 256 bytes/));
    assert.throws(
      () => decodeKeylimeBlob(Uint8Array.of(...blob, 0, 0)),
      marshalError(/2 trailing bytes after TPM2B_ENCRYPTED_SECRET/),
    );
    assert.throws(
      () => decodeKeylimeBlob(encodeKeylimeBlob({ credentialBlob: new Uint8Array(0), secret: pair.secret })),
      marshalError(/TPM2B_ID_OBJECT is empty/),
    );
    assert.throws(
      () => decodeKeylimeBlob(encodeKeylimeBlob({ credentialBlob: pair.credentialBlob, secret: new Uint8Array(0) })),
      marshalError(/TPM2B_ENCRYPTED_SECRET is empty/),
    );
    assert.throws(
      () => decodeKeylimeBlob(with_(10, [0x00, 0x50])),
      marshalError(/credentialBlob > TPM2B_ID_OBJECT.integrityHMAC: size 80 exceeds maximum 64/),
    );
  });

  test("the captured on-TPM pair: MakeCredential's outputs, framed as the blob, are ActivateCredential's parameters", () => {
    // TPM2_MakeCredential(EK 0x81010001, credential, Name of AK 0x81010002) on swtpm ...
    const mcReq = rawHex("MakeCredential_EK_AKname.req.hex");
    const mcRsp = new Reader(rawHex("MakeCredential_EK_AKname.rsp.hex"), 10);
    const credentialBlob = TPM2B_ID_OBJECT.decode(mcRsp);
    const secret = TPM2B_ENCRYPTED_SECRET.decode(mcRsp);
    const blob = encodeKeylimeBlob({ credentialBlob, secret });
    assert.deepEqual(decodeKeylimeBlob(blob), { credentialBlob, secret });
    // ... and TPM2_ActivateCredential(AK, EK) carries bytes [8..] after its handles and auth area.
    const acReq = rawHex("ActivateCredential_AK_EK.req.hex");
    const authSize = new DataView(acReq.buffer).getUint32(18);
    assert.equal(toHex(acReq.subarray(10 + 8 + 4 + authSize)), toHex(blob.subarray(8)));
    // certInfo in the response is the credential that went in (after the header and EK handle).
    const credentialIn = mcReq.subarray(16, 16 + ((mcReq[14]! << 8) | mcReq[15]!));
    const acRsp = rawHex("ActivateCredential_AK_EK.rsp.hex");
    const certInfo = acRsp.subarray(16, 16 + ((acRsp[14]! << 8) | acRsp[15]!));
    assert.equal(toHex(certInfo), toHex(credentialIn));
    assert.match(toHex(certInfo), /^52c06437/);
  });
});

describe("auth_tag", () => {
  const challenge = "Xq3bT9LmN0pRsUvW4yZ1aC7eGh2iJk5o";
  const uuid = "d432fbb3-d2f1-4a97-9ef7-75bd81c00000";

  test("lowercase hex HMAC-SHA384, key = the base64 text of certInfo, message = the UUID", () => {
    const certInfo = ascii(challenge);
    const independent = createHmac("sha384", Buffer.from(toBase64(certInfo), "ascii"))
      .update(uuid, "utf8")
      .digest("hex");
    assert.equal(authTag(certInfo, uuid), independent);
    // Pinned, computed separately with Python: hmac.new(base64.b64encode(challenge), uuid.encode(), sha384).
    assert.equal(
      authTag(certInfo, uuid),
      "34ce619bdca7bf5f27baff919e13b2ade7dbce8fd76c18974be3c3529d729d32ec98284085c67a2bae2920e9d8feaff0",
    );
    assert.match(authTag(certInfo, uuid), /^[0-9a-f]{96}$/);
  });

  test("the registrar's side: key = base64(challenge); UTF-8 UUIDs; constant-time string check", () => {
    const key = b64(ascii(challenge));
    assert.equal(key.length, 44);
    assert.equal(authTagForKey(key, uuid), authTag(ascii(challenge), uuid));
    const unicode = "agent-é-1";
    assert.equal(
      authTagForKey(key, unicode),
      createHmac("sha384", key).update(Buffer.from(unicode, "utf8")).digest("hex"),
    );
    const tag = authTag(ascii(challenge), uuid);
    assert.equal(checkAuthTag(key, uuid, tag), true);
    assert.equal(checkAuthTag(key, uuid, tag.toUpperCase()), false, "the registrar compares strings");
    assert.equal(checkAuthTag(key, "other", tag), false);
    assert.equal(checkAuthTag(key, uuid, tag.slice(0, -1)), false);
  });
});

describe("makeKeylimeChallenge (the registrar's registration step)", () => {
  const ak = capturedAk();

  test("randomChallenge: 32 characters from [A-Za-z0-9]", () => {
    const seen = new Set<string>();
    for (let i = 0; i < 50; i++) {
      const c = randomChallenge();
      assert.match(c, /^[A-Za-z0-9]{32}$/);
      seen.add(c);
    }
    assert.equal(seen.size, 50);
  });

  for (const kind of ["rsa", "ecc"] as const) {
    test(`${kind} EK: the blob activates to the challenge for the AK Name, and the auth_tags agree`, async () => {
      const ek = softwareEk(kind);
      const r = await makeKeylimeChallenge(ek.ekTpm, ak.aikTpm);
      // The AK Name is nameAlg ‖ H(aik_tpm minus its size): what the TPM reported for 0x81010002.
      assert.equal(toHex(r.akName), toHex(ak.name));
      assert.equal(toHex(r.akName), toHex(objectName(decode(TPM2B_PUBLIC, ak.aikTpm))));
      const { credentialBlob, secret } = decodeKeylimeBlob(fromBase64(r.blob));
      const seed = recoverSeed(ek.privateKey, ek.public, secret);
      const certInfo = unwrapCredential(ek.public, seed, r.akName, credentialBlob);
      assert.match(new TextDecoder().decode(certInfo), /^[A-Za-z0-9]{32}$/);
      assert.equal(r.key, b64(certInfo));
      const uuid = "d432fbb3-d2f1-4a97-9ef7-75bd81c00000";
      assert.equal(checkAuthTag(r.key, uuid, authTag(certInfo, uuid)), true);
    });
  }

  test("fixed challenge and ephemeral key give a reproducible blob (ECC)", async () => {
    const ek = softwareEk("ecc");
    const opts = { challenge: "A".repeat(32), ephemeralPrivate: fromHex("11".repeat(32)) };
    const a = await makeKeylimeChallenge(ek.ekTpm, ak.aikTpm, opts);
    const b = await makeKeylimeChallenge(ek.ekTpm, ak.aikTpm, opts);
    assert.equal(a.blob, b.blob);
    assert.equal(a.key, b64(ascii("A".repeat(32))));
  });

  test("malformed ek_tpm / aik_tpm and a bad challenge are named", async () => {
    const ek = softwareEk("rsa");
    await assert.rejects(
      makeKeylimeChallenge(ek.ekTpm.subarray(2), ak.aikTpm),
      marshalError(/^Cannot decode ek_tpm > TPM2B_PUBLIC/),
    );
    await assert.rejects(
      makeKeylimeChallenge(ek.ekTpm, Uint8Array.of(...ak.aikTpm, 0)),
      marshalError(/aik_tpm.*trailing/),
    );
    await assert.rejects(
      makeKeylimeChallenge(ek.ekTpm, ak.aikTpm, { challenge: "short" }),
      marshalError(/challenge must be 32/),
    );
  });
});

// ---- interop with tpm2-tools -----------------------------------------------------------------------

const run = (file: string, args: string[], env: NodeJS.ProcessEnv = process.env) =>
  runProcess(file, args, env, 120_000);

/**
 * The encrypted secret's shape: an RSA-2048 OAEP block, or a P-256 point. tpm2-tools writes the point's
 * coordinates without their leading zero bytes (about one file in 128 has a 31-byte coordinate), which
 * TPM2B_ECC_PARAMETER allows, so a coordinate may be shorter than the curve's 32 bytes but never longer.
 */
function assertSecretShape(kind: "rsa" | "ecc", secret: Uint8Array): void {
  if (kind === "rsa") return assert.equal(secret.length, 256);
  const point = decode(TPMS_ECC_POINT, secret);
  for (const c of [point.x, point.y]) assert.ok(c.length >= 1 && c.length <= 32, `coordinate of ${c.length} bytes`);
}

const makeCredentialSkip = requireTools("tpm2_makecredential");

describe("tpm2_makecredential -T none (tpm2-tools' own MakeCredential) decoded and unwrapped by us", {
  skip: makeCredentialSkip,
}, () => {
  let dir: string;
  before(() => (dir = mkdtempSync(join(tmpdir(), "keylime-ts-mkcred-"))));
  after(() => rmSync(dir, { recursive: true, force: true }));

  for (const kind of ["rsa", "ecc"] as const) {
    test(`${kind} EK`, async () => {
      const ek = softwareEk(kind);
      const { name } = capturedAk();
      const credential = ascii(randomChallenge());
      writeFileSync(join(dir, `${kind}.pub`), ek.ekTpm);
      writeFileSync(join(dir, `${kind}.secret`), credential);
      const r = await run("tpm2_makecredential", [
        "-T",
        "none",
        "-u",
        join(dir, `${kind}.pub`),
        "-s",
        join(dir, `${kind}.secret`),
        "-n",
        toHex(name),
        "-o",
        join(dir, `${kind}.blob`),
      ], process.env);
      assert.equal(r.code, 0, r.stderr);
      const bytes = new Uint8Array(readFileSync(join(dir, `${kind}.blob`)));
      assert.equal(new DataView(bytes.buffer).getUint32(0), KEYLIME_BLOB_MAGIC);
      const pair = decodeKeylimeBlob(bytes);
      assertSecretShape(kind, pair.secret);
      assert.deepEqual(encodeKeylimeBlob(pair), bytes);
      const seed = recoverSeed(ek.privateKey, ek.public, pair.secret);
      assert.deepEqual(unwrapCredential(ek.public, seed, name, pair.credentialBlob), credential);
    });
  }
});

const swtpmSkip = swtpmSkipReason() ??
  requireTools(
    "tpm2_createek",
    "tpm2_createak",
    "tpm2_flushcontext",
    "tpm2_startauthsession",
    "tpm2_policysecret",
    "tpm2_activatecredential",
    "tpm2_makecredential",
  );

describe("our blob activated by tpm2_activatecredential on swtpm", { skip: swtpmSkip }, () => {
  let swtpm: SwtpmInstance;
  let dir: string;
  let env: NodeJS.ProcessEnv;
  const tools = async (tool: string, ...args: string[]) => {
    const r = await run(tool, args, env);
    assert.equal(r.code, 0, `${tool} ${args.join(" ")} failed: ${r.stderr}`);
    return r;
  };
  // Raw swtpm has 3 transient slots and no resource manager (spec/tpm.md §7.1).
  const flushAll = async () => {
    for (const flag of ["-t", "-l", "-s"]) await tools("tpm2_flushcontext", flag);
  };

  before(async () => {
    swtpm = await startSwtpm({ transport: "tcp" });
    dir = mkdtempSync(join(tmpdir(), "keylime-ts-actcred-"));
    env = { ...process.env, TPM2TOOLS_TCTI: swtpm.tctiForTools };
  });
  after(async () => {
    await swtpm?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** TPM2_ActivateCredential with tpm2-tools, the EK authorized by PolicySecret(endorsement). */
  async function activate(kind: string, blobFile: string): Promise<Run> {
    const f = (n: string) => join(dir, `${kind}.${n}`);
    await tools("tpm2_startauthsession", "--policy-session", "-S", f("session.ctx"));
    await tools("tpm2_policysecret", "-S", f("session.ctx"), "-c", "e");
    const r = await run("tpm2_activatecredential", [
      "-c",
      f("ak.ctx"),
      "-C",
      f("ek.ctx"),
      "-i",
      blobFile,
      "-o",
      f("certinfo"),
      "-P",
      `session:${f("session.ctx")}`,
    ], env);
    await flushAll();
    return r;
  }

  for (const kind of ["rsa", "ecc"] as const) {
    test(`${kind} EK: tpm2_activatecredential returns our challenge; a blob for another Name gives TPM_RC_INTEGRITY`, async () => {
      const f = (n: string) => join(dir, `${kind}.${n}`);
      await tools("tpm2_createek", "-c", f("ek.ctx"), "-G", kind, "-u", f("ek.pub"));
      await flushAll();
      await tools(
        "tpm2_createak",
        ...["-C", f("ek.ctx"), "-c", f("ak.ctx"), "-G", "rsa", "-g", "sha256", "-s", "rsassa"],
        ...["-u", f("ak.pub"), "-n", f("ak.name")],
      );
      await flushAll();

      // The registrar's step, from the TPM2B_PUBLIC files exactly as tpm2-tools wrote them.
      const ekTpm = new Uint8Array(readFileSync(f("ek.pub")));
      const aikTpm = new Uint8Array(readFileSync(f("ak.pub")));
      const challenge = await makeKeylimeChallenge(ekTpm, aikTpm);
      assert.equal(toHex(challenge.akName), toHex(new Uint8Array(readFileSync(f("ak.name")))));
      const blob = fromBase64(challenge.blob);
      // tpm2_createek -G ecc makes the P-256 L-2 EK: the secret is TPMS_ECC_POINT, 2 × (2 + 32) bytes.
      assert.equal(decodeKeylimeBlob(blob).secret.length, kind === "rsa" ? 256 : 68);
      writeFileSync(f("blob"), blob);

      const ok = await activate(kind, f("blob"));
      assert.equal(ok.code, 0, `tpm2_activatecredential failed: ${ok.stderr}`);
      const certInfo = new Uint8Array(readFileSync(f("certinfo")));
      assert.equal(b64(certInfo), challenge.key);
      const uuid = "d432fbb3-d2f1-4a97-9ef7-75bd81c00000";
      assert.equal(checkAuthTag(challenge.key, uuid, authTag(certInfo, uuid)), true);

      // Bound to another Name (the EK's own), the TPM's integrity check refuses it.
      const ek = decode(TPM2B_PUBLIC, ekTpm);
      const wrong = await makeCredential(ek, objectName(ek), ascii("x".repeat(32)));
      writeFileSync(f("wrong.blob"), encodeKeylimeBlob(wrong));
      const refused = await activate(kind, f("wrong.blob"));
      assert.notEqual(refused.code, 0);
      assert.match(refused.stderr, /0x0*1df\b/, "TPM_RC_INTEGRITY on parameter 1 (credentialBlob)");

      // tpm2_makecredential's file for the same EK and AK decodes to the same shape.
      await tools(
        "tpm2_makecredential",
        ...["-T", "none", "-u", f("ek.pub"), "-s", f("certinfo"), "-n", toHex(challenge.akName), "-o", f("theirs")],
      );
      const theirs = new Uint8Array(readFileSync(f("theirs")));
      const decoded = decodeKeylimeBlob(theirs);
      assertSecretShape(kind, decoded.secret);
      assert.equal(decoded.credentialBlob.length, decodeKeylimeBlob(blob).credentialBlob.length);
      const activated = await activate(kind, f("theirs"));
      assert.equal(activated.code, 0, activated.stderr);
      assert.deepEqual(new Uint8Array(readFileSync(f("certinfo"))), certInfo);
    });
  }
});

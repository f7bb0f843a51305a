/**
 * The simulator's session, policy and context commands, driven through our client: unsalted,
 * salted (RSA and ECC) and bound sessions, HMACs checked both ways, parameter encryption both ways,
 * policy digests against src/tpm/policy.ts and swtpm's captured bytes, FlushContext errors as swtpm
 * gives them, ContextSave/ContextLoad of sessions and objects, EvictControl.
 *
 * The object commands live in another handler group; keys are put into the TPM's object slots
 * directly (software keys as SimObjects) so salted and bound sessions can be tested without them.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { generateKeyPairSync, type JsonWebKey } from "node:crypto";
import type { Tpm } from "../../src/tpm/client.ts";
import type { CommandArgs } from "../../src/tpm/command.ts";
import {
  ContextLoad,
  ContextSave,
  EvictControl,
  FlushContext,
  PolicyGetDigest,
  PolicyOR,
  PolicyPCR,
  PolicyRestart,
  PolicySecret,
  Shutdown,
  StartAuthSession,
  Startup,
} from "../../src/tpm/commands.ts";
import { TPM_ALG, TPM_CC, TPM_ECC_CURVE, TPM_RC, TPM_RH, TPM_SE, TPM_SU } from "../../src/tpm/constants.ts";
import { concat, hash } from "../../src/tpm/crypto.ts";
import { kdfa } from "../../src/tpm/kdf.ts";
import { encode } from "../../src/tpm/marshal.ts";
import {
  policyAuthValue,
  policyCommandCode,
  policyGetDigest,
  policyOR,
  policyPassword,
  policySecret,
} from "../../src/tpm/policy.ts";
import {
  emptyPolicy,
  policyAuthValueDigest,
  policyCommandCodeDigest,
  policyOrDigest,
  policySecretDigest,
} from "../../src/tpm/session_digests.ts";
import { secretEncrypt } from "../../src/tpm/secret.ts";
import { flushSession, startAuthSession } from "../../src/tpm/session_start.ts";
import { AES_128_CFB, type AuthSession, PasswordSession, SessionError, SYM_NULL } from "../../src/tpm/sessions.ts";
import { TPMA_OBJECT, TPML_PCR_SELECTION, type TPMS_CONTEXT, type TPMT_PUBLIC } from "../../src/tpm/structures.ts";
import type { Transport } from "../../src/tpm/transport/transport.ts";
import { Tpm as Client } from "../../src/tpm/client.ts";
import { boundEntity } from "../../simulator/auth.ts";
import { context } from "../../simulator/handlers/context.ts";
import { registry } from "../../simulator/handlers/index.ts";
import { lifecycle } from "../../simulator/handlers/lifecycle.ts";
import { policy } from "../../simulator/handlers/policy.ts";
import { session } from "../../simulator/handlers/session.ts";
import { handleBytes, makeObject, type SimObject } from "../../simulator/object.ts";
import type { SimTpm, SimTpmOptions } from "../../simulator/sim_tpm.ts";
import { EngineTransport, rcOf, simWith } from "../helpers/sim.ts";
import { WrappedTransport } from "../helpers/transport_wrappers.ts";
import { fromHex, rawHex, toHex, tracePairs } from "../helpers/vectors.ts";
import { fromBase64url } from "../../src/util/encoding.ts";

const enc = new TextEncoder();
const EMPTY = new Uint8Array(0);
const SHA256 = TPM_ALG.SHA256;
const HANDLERS = registry(lifecycle, session, policy, context);

/** PolicyA, PolicyC and PolicyB (= PolicyOR(A, C)) for SHA-256 (spec/tpm.md §5). */
const POLICY_A = fromHex("837197674484b3f81a90cc8d46a5d724fd52d76e06520b64f2a1da1b331469aa");
const POLICY_C = fromHex("3767e2edd43ff45a3a7e1eaefcef78643dca964632e7aad82c673a30d8633fde");
const POLICY_B = fromHex("ca3d0a99a2b93906f7a3342414efcfb3a385d44cd1fd459089d19b5071c0b7a0");

// ---- a TPM, its client, and keys put straight into its object slots ----------------------------------

/** Flips the last byte of the next command or response once armed. */
class Tamperer extends WrappedTransport {
  armed: "command" | "response" | null = null;
  last: { command: Uint8Array; response: Uint8Array } | null = null;
  async send(command: Uint8Array): Promise<Uint8Array> {
    const c = command.slice();
    if (this.armed === "command") c[c.length - 1]! ^= 1;
    const r = await this.inner.send(c);
    if (this.armed === "response") r[r.length - 1]! ^= 1;
    this.armed = null;
    this.last = { command: c, response: r.slice() };
    return r;
  }
}

interface Sim {
  engine: SimTpm;
  tpm: Tpm;
  wire: Tamperer;
}

async function started(options: SimTpmOptions = {}): Promise<Sim> {
  const { engine } = simWith(HANDLERS, options);
  const wire = new Tamperer(new EngineTransport(engine) as Transport);
  const tpm = new Client(wire);
  await tpm.execute(Startup, { startupType: TPM_SU.CLEAR });
  return { engine, tpm, wire };
}

const KEYS: Record<"rsa" | "ecc", JsonWebKey> = {
  rsa: generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({ format: "jwk" }),
  ecc: generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({ format: "jwk" }),
};
const b64 = (s: string | undefined) => fromBase64url(s ?? "");

const DECRYPT = TPMA_OBJECT.of(
  "fixedTPM",
  "fixedParent",
  "sensitiveDataOrigin",
  "userWithAuth",
  "restricted",
  "decrypt",
);
const SIGN = TPMA_OBJECT.of("fixedTPM", "fixedParent", "sensitiveDataOrigin", "userWithAuth", "sign");

interface KeyOptions {
  attributes?: number;
  authValue?: Uint8Array;
  authPolicy?: Uint8Array;
  hierarchy?: number;
  publicOnly?: boolean;
}

function softObject(kind: "rsa" | "ecc", o: KeyOptions = {}): SimObject {
  const jwk = KEYS[kind];
  const attributes = o.attributes ?? DECRYPT;
  const symmetric = TPMA_OBJECT.has(attributes, "restricted") && TPMA_OBJECT.has(attributes, "decrypt")
    ? AES_128_CFB
    : SYM_NULL;
  const scheme = { scheme: TPM_ALG.NULL, details: null };
  const common = { nameAlg: SHA256, objectAttributes: attributes, authPolicy: o.authPolicy ?? EMPTY };
  const pub: TPMT_PUBLIC = kind === "rsa"
    ? {
      type: TPM_ALG.RSA,
      ...common,
      parameters: { symmetric, scheme, keyBits: 2048, exponent: 0 },
      unique: b64(jwk.n),
    }
    : {
      type: TPM_ALG.ECC,
      ...common,
      parameters: { symmetric, scheme, curveID: TPM_ECC_CURVE.NIST_P256, kdf: scheme },
      unique: { x: b64(jwk.x), y: b64(jwk.y) },
    };
  const hierarchy = o.hierarchy ?? TPM_RH.OWNER;
  return makeObject({
    public: pub,
    hierarchy,
    authValue: o.authValue ?? EMPTY,
    seedValue: EMPTY,
    privateJwk: o.publicOnly ? null : jwk,
    secret: null,
  }, handleBytes(hierarchy));
}

/** Put an object into the lowest free transient slot, as Load would. */
function load(engine: SimTpm, o: SimObject): number {
  const h = engine.freeHandle(0x80000000, engine.volatile.objects, engine.objectSlots, TPM_RC.OBJECT_MEMORY);
  engine.volatile.objects.set(h, o);
  return h;
}

function startRaw(tpm: Tpm, fields: Partial<CommandArgs<typeof StartAuthSession>> = {}) {
  return tpm.execute(StartAuthSession, {
    tpmKey: TPM_RH.NULL,
    bind: TPM_RH.NULL,
    nonceCaller: new Uint8Array(32).fill(0x11),
    encryptedSalt: EMPTY,
    sessionType: TPM_SE.HMAC,
    symmetric: SYM_NULL,
    authHash: SHA256,
    ...fields,
  });
}

const secretArgs = (policySession: number, extra: Partial<{ nonceTPM: Uint8Array; expiration: number }> = {}) => ({
  authHandle: TPM_RH.ENDORSEMENT,
  policySession,
  nonceTPM: EMPTY,
  cpHashA: EMPTY,
  policyRef: EMPTY,
  expiration: 0,
  ...extra,
});

const contains = (haystack: Uint8Array, needle: Uint8Array) => Buffer.from(haystack).indexOf(Buffer.from(needle)) >= 0;

// ---- StartAuthSession ------------------------------------------------------------------------------

describe("StartAuthSession", () => {
  test("swtpm's request gets swtpm's answer: handle 0x03000000 and a 32-byte nonceTPM", async () => {
    const { engine } = await started();
    const rsp = await engine.execute(rawHex("StartAuthSession_policy_sha256.req.hex"));
    assert.equal(toHex(rsp.subarray(0, 16)), "80010000003000000000030000000020");
    assert.equal(rsp.length, 0x30);
    const s = engine.volatile.sessions.get(0x03000000)!;
    assert.equal(s.kind, "policy");
    assert.deepEqual(s.policy.digest, new Uint8Array(32));
    assert.equal(s.sessionKey.length, 0, "unbound and unsalted: no session key");
  });

  test("HMAC and policy sessions share slot indices, as in swtpm's trace", async () => {
    const { tpm } = await started();
    const a = await startRaw(tpm);
    const b = await startRaw(tpm, { sessionType: TPM_SE.POLICY });
    const c = await startRaw(tpm, { sessionType: TPM_SE.TRIAL });
    assert.deepEqual([a.sessionHandle, b.sessionHandle, c.sessionHandle], [0x02000000, 0x03000001, 0x03000002]);
    await tpm.execute(FlushContext, { flushHandle: b.sessionHandle });
    assert.equal((await startRaw(tpm)).sessionHandle, 0x02000001, "the lowest free index");
  });

  test("nonceCaller of 15 or 33 bytes with SHA-256 gives 0x1D5, as swtpm", async () => {
    const { tpm } = await started();
    assert.equal(await rcOf(startRaw(tpm, { nonceCaller: new Uint8Array(15) })), 0x1d5);
    assert.equal(await rcOf(startRaw(tpm, { nonceCaller: new Uint8Array(33) })), 0x1d5);
    assert.equal(
      (await startRaw(tpm, { nonceCaller: new Uint8Array(16), authHash: TPM_ALG.SHA1 })).nonceTPM.length,
      20,
    );
    assert.equal(
      (await startRaw(tpm, { nonceCaller: new Uint8Array(64), authHash: TPM_ALG.SHA512 })).nonceTPM.length,
      64,
    );
  });

  test("bad parameters: session type, symmetric, hash, a salt without a key", async () => {
    const { tpm } = await started();
    const aes = (keyBits: number, mode: number) => ({ algorithm: TPM_ALG.AES, keyBits, mode, details: null });
    assert.equal(await rcOf(startRaw(tpm, { sessionType: 2 })), TPM_RC.VALUE | 0x340);
    assert.equal(await rcOf(startRaw(tpm, { symmetric: aes(128, TPM_ALG.OFB) })), TPM_RC.MODE | 0x440);
    assert.equal(await rcOf(startRaw(tpm, { symmetric: aes(64, TPM_ALG.CFB) })), TPM_RC.VALUE | 0x440);
    // XOR obfuscation names a hash the TPM must have.
    const xor = (hashAlg: number) => ({ algorithm: TPM_ALG.XOR, keyBits: hashAlg, mode: null, details: null });
    assert.equal(await rcOf(startRaw(tpm, { symmetric: xor(TPM_ALG.SM3_256) })), TPM_RC.HASH | 0x440);
    await startRaw(tpm, { symmetric: xor(SHA256) });
    assert.equal(await rcOf(startRaw(tpm, { authHash: TPM_ALG.NULL })), TPM_RC.HASH | 0x540);
    assert.equal(await rcOf(startRaw(tpm, { encryptedSalt: Uint8Array.of(1) })), TPM_RC.VALUE | 0x240);
    for (const bits of [128, 192, 256]) await startRaw(tpm, { symmetric: aes(bits, TPM_ALG.CFB) });
  });

  test("tpmKey must be a loaded asymmetric decrypt key with its private part", async () => {
    const { engine, tpm } = await started();
    const salt = secretEncrypt(softObject("rsa").public, "SECRET").encryptedSecret;
    const signer = load(engine, softObject("rsa", { attributes: SIGN }));
    const publicOnly = load(engine, softObject("rsa", { publicOnly: true }));
    const decrypt = load(engine, softObject("rsa"));
    assert.equal(await rcOf(startRaw(tpm, { tpmKey: signer, encryptedSalt: salt })), 0x182, "ATTRIBUTES, handle 1");
    assert.equal(await rcOf(startRaw(tpm, { tpmKey: publicOnly, encryptedSalt: salt })), 0x18b, "HANDLE, handle 1");
    assert.equal(await rcOf(startRaw(tpm, { tpmKey: decrypt })), 0x2c4, "VALUE, parameter 2: no salt");
    assert.equal(await rcOf(startRaw(tpm, { tpmKey: decrypt, encryptedSalt: salt.map((b) => b ^ 1) })), 0x2c4);
    assert.equal(await rcOf(startRaw(tpm, { tpmKey: 0x80000007, encryptedSalt: salt })), 0x18b, "not loaded");
  });

  for (const kind of ["rsa", "ecc"] as const) {
    test(`salted with an ${kind.toUpperCase()} key: the TPM's session key is KDFa(salt) (the salt recovered)`, async () => {
      const { engine, tpm } = await started();
      const key = softObject(kind);
      const tpmKey = load(engine, key);
      const shared = secretEncrypt(key.public, "SECRET");
      const nonceCaller = new Uint8Array(32).fill(7);
      const r = await startRaw(tpm, { tpmKey, encryptedSalt: shared.encryptedSecret, nonceCaller });
      const expected = kdfa(SHA256, shared.seed, "ATH", r.nonceTPM, nonceCaller, 256);
      assert.deepEqual(engine.volatile.sessions.get(r.sessionHandle)!.sessionKey, expected);
    });
  }

  test("bound: the session key is KDFa(authValue without trailing zeros ‖ salt)", async () => {
    const { engine, tpm } = await started();
    engine.persistent.endorsement.authValue = enc.encode("eh\0\0");
    const key = softObject("ecc");
    const tpmKey = load(engine, key);
    const shared = secretEncrypt(key.public, "SECRET");
    const nonceCaller = new Uint8Array(20).fill(9);
    const r = await startRaw(tpm, {
      tpmKey,
      bind: TPM_RH.ENDORSEMENT,
      encryptedSalt: shared.encryptedSecret,
      nonceCaller,
    });
    const s = engine.volatile.sessions.get(r.sessionHandle)!;
    assert.deepEqual(
      s.sessionKey,
      kdfa(SHA256, concat(enc.encode("eh"), shared.seed), "ATH", r.nonceTPM, nonceCaller, 256),
    );
    assert.deepEqual(s.boundEntity, boundEntity(handleBytes(TPM_RH.ENDORSEMENT), enc.encode("eh")));
  });

  test("slots run out: SESSION_MEMORY for loaded sessions, SESSION_HANDLES counting saved ones", async () => {
    const { tpm } = await started({ sessionSlots: 2 });
    const first = await startRaw(tpm);
    await startRaw(tpm);
    assert.equal(await rcOf(startRaw(tpm)), TPM_RC.SESSION_MEMORY);
    // A saved session still counts as active.
    await tpm.execute(ContextSave, { saveHandle: first.sessionHandle });
    assert.equal(await rcOf(startRaw(tpm)), TPM_RC.SESSION_HANDLES);
  });
});

// ---- authorization through the sessions -------------------------------------------------------------

describe("HMAC sessions authorize PolicySecret", () => {
  const EH_AUTH = enc.encode("endorsement secret");

  async function withEh(options: SimTpmOptions = {}) {
    const sim = await started(options);
    sim.engine.persistent.endorsement.authValue = EH_AUTH;
    sim.engine.persistent.lockoutAuth = enc.encode("lockout secret");
    const p = await startAuthSession(sim.tpm, { kind: "policy", symmetric: SYM_NULL });
    return { ...sim, p };
  }

  test("unsalted, unbound: the HMACs check both ways; a wrong authValue fails with the session number", async () => {
    const { tpm, wire, p } = await withEh();
    const s = await startAuthSession(tpm, { symmetric: SYM_NULL });
    await tpm.execute(PolicySecret, secretArgs(p.handle), { sessions: [s.withAuth(EH_AUTH)] });
    assert.deepEqual(await policyGetDigest(tpm, p), POLICY_A);
    // The TPM checks the command HMAC: a flipped parameter bit changes the cpHash.
    wire.armed = "command";
    assert.equal(
      await rcOf(tpm.execute(PolicySecret, secretArgs(p.handle), { sessions: [s.withAuth(EH_AUTH)] })),
      0x9a2,
    );
    // ... and we check the response HMAC.
    wire.armed = "response";
    await assert.rejects(
      tpm.execute(PolicySecret, secretArgs(p.handle), { sessions: [s.withAuth(EH_AUTH)] }),
      (e) => e instanceof SessionError && /response HMAC of PolicySecret does not verify/.test(e.message),
    );
    const wrong = enc.encode("wrong");
    // The session is still good after all that: failures do not roll nonceTPM on either side.
    assert.equal(await rcOf(tpm.execute(PolicySecret, secretArgs(p.handle), { sessions: [s.withAuth(wrong)] })), 0x9a2);
    const lockout = { ...secretArgs(p.handle), authHandle: TPM_RH.LOCKOUT };
    assert.equal(
      await rcOf(tpm.execute(PolicySecret, lockout, { sessions: [s.withAuth(wrong)] })),
      0x98e,
      "DA: AUTH_FAIL",
    );
    await tpm.execute(PolicySecret, secretArgs(p.handle), { sessions: [s.withAuth(EH_AUTH)] });
    assert.equal(
      await rcOf(tpm.execute(PolicySecret, secretArgs(p.handle), { sessions: [new PasswordSession(wrong)] })),
      0x9a2,
    );
    await policySecret(tpm, p, TPM_RH.ENDORSEMENT, { auth: new PasswordSession(EH_AUTH) });
  });

  for (const kind of ["rsa", "ecc"] as const) {
    test(`salted with ${kind.toUpperCase()}, decrypt|encrypt: several commands in a row`, async () => {
      const { engine, tpm, p } = await withEh();
      const key = softObject(kind);
      const handle = load(engine, key);
      const s = await startAuthSession(tpm, {
        salt: { handle, public: key.public },
        flags: { decrypt: true, encrypt: true },
      });
      for (let i = 0; i < 3; i++) {
        await tpm.execute(PolicySecret, secretArgs(p.handle, { nonceTPM: p.nonceTPM }), {
          sessions: [s.withAuth(EH_AUTH)],
        });
      }
      const a1 = policySecretDigest(SHA256, POLICY_A, handleBytes(TPM_RH.ENDORSEMENT));
      assert.deepEqual(await policyGetDigest(tpm, p), policySecretDigest(SHA256, a1, handleBytes(TPM_RH.ENDORSEMENT)));
    });
  }

  test("bound to the entity it authorizes, to another one, and to an object", async () => {
    const { engine, tpm, p } = await withEh();
    const bound = await startAuthSession(tpm, {
      symmetric: SYM_NULL,
      bind: { handle: TPM_RH.ENDORSEMENT, name: handleBytes(TPM_RH.ENDORSEMENT), authValue: EH_AUTH },
    });
    await tpm.execute(PolicySecret, secretArgs(p.handle), { sessions: [bound.withAuth(EH_AUTH)] });
    const lockout = { ...secretArgs(p.handle), authHandle: TPM_RH.LOCKOUT };
    await tpm.execute(PolicySecret, lockout, { sessions: [bound.withAuth(engine.persistent.lockoutAuth)] });

    const objAuth = enc.encode("object secret");
    const obj = softObject("ecc", { attributes: SIGN, authValue: objAuth });
    const h = load(engine, obj);
    const boundToObject = await startAuthSession(tpm, {
      bind: { handle: h, name: obj.name, authValue: objAuth },
      flags: { decrypt: true, encrypt: true },
    });
    const names = [obj.name, handleBytes(p.handle)];
    const args = { ...secretArgs(p.handle, { nonceTPM: p.nonceTPM }), authHandle: h };
    await tpm.execute(PolicySecret, args, { sessions: [boundToObject.withAuth(objAuth)], names });
    // A different authValue is not the bound entity's (binding covers Name and authValue), so the
    // client puts it into the HMAC, and the TPM refuses the authorization.
    assert.ok(
      [0x98e, 0x9a2].includes(
        await rcOf(tpm.execute(PolicySecret, args, { sessions: [boundToObject.withAuth(enc.encode("x"))], names })),
      ),
      "a wrong authValue fails the HMAC of session 1",
    );
  });

  test("parameter encryption: nonceTPM goes out encrypted, the timeout comes back encrypted", async () => {
    const { engine, tpm, wire, p } = await withEh();
    const key = softObject("rsa");
    const handle = load(engine, key);
    const s = await startAuthSession(tpm, {
      salt: { handle, public: key.public },
      flags: { decrypt: true, encrypt: true },
    });
    const nonce = p.nonceTPM.slice();
    const before = engine.tickClock();
    const r = await tpm.execute(PolicySecret, secretArgs(p.handle, { nonceTPM: nonce, expiration: -60 }), {
      sessions: [s.withAuth(EH_AUTH)],
    });
    const after = engine.tickClock();
    // The TPM decrypted the nonce right (else TPM_RC_NONCE); it never crossed the wire in clear.
    assert.ok(!contains(wire.last!.command, nonce));
    assert.equal(r.timeout.length, 8);
    assert.ok(!contains(wire.last!.response, r.timeout), "the timeout travelled encrypted");
    const timeout = new DataView(r.timeout.buffer, r.timeout.byteOffset).getBigUint64(0);
    assert.ok(
      timeout >= before + 60000n && timeout <= after + 60000n,
      `timeout ${timeout} in [${before}, ${after}] + 60 s`,
    );
    assert.equal(r.policyTicket.tag, 0x8023);
    assert.equal(r.policyTicket.hierarchy, TPM_RH.ENDORSEMENT);
    assert.equal(r.policyTicket.digest.length, 32);

    // An encrypt/decrypt-only second session beside a password: its key is the session key alone.
    const p2 = await startAuthSession(tpm, { kind: "policy", symmetric: SYM_NULL });
    const r2 = await tpm.execute(PolicySecret, secretArgs(p2.handle, { nonceTPM: p2.nonceTPM, expiration: -1 }), {
      sessions: [new PasswordSession(EH_AUTH), s],
    });
    assert.equal(r2.timeout.length, 8);
    assert.ok(!contains(wire.last!.command, p2.nonceTPM));
    // A wrong nonce is refused: proof that the check looks at the decrypted bytes.
    const wrongNonce = secretArgs(p2.handle, { nonceTPM: new Uint8Array(32).fill(1) });
    assert.equal(
      await rcOf(tpm.execute(PolicySecret, wrongNonce, { sessions: [new PasswordSession(EH_AUTH), s] })),
      0x1cf,
    );
  });

  test("expiration 0: empty timeout and the NULL ticket, exactly swtpm's response bytes", async () => {
    const { engine } = await started();
    assert.equal(
      toHex((await engine.execute(rawHex("StartAuthSession_policy_sha256.req.hex"))).subarray(10, 14)),
      "03000000",
    );
    const rsp = await engine.execute(rawHex("PolicySecret_RH_ENDORSEMENT.req.hex"));
    assert.equal(toHex(rsp), toHex(rawHex("PolicySecret_RH_ENDORSEMENT.rsp.hex")));
    const digest = await engine.execute(rawHex("PolicyGetDigest_after_PolicySecret.req.hex"));
    assert.equal(toHex(digest), toHex(rawHex("PolicyGetDigest_after_PolicySecret.rsp.hex")));
  });
});

// ---- policy commands ---------------------------------------------------------------------------------

describe("policy commands", () => {
  test("digests equal src/tpm/policy.ts and the EK policies A and B", async () => {
    const { tpm } = await started();
    const p = await startAuthSession(tpm, { kind: "policy", symmetric: SYM_NULL });
    await policySecret(tpm, p, TPM_RH.ENDORSEMENT);
    assert.deepEqual(await policyGetDigest(tpm, p), POLICY_A);
    assert.deepEqual(policySecretDigest(SHA256, emptyPolicy(SHA256), handleBytes(TPM_RH.ENDORSEMENT)), POLICY_A);
    await policyOR(tpm, p, [POLICY_A, POLICY_C]);
    assert.deepEqual(await policyGetDigest(tpm, p), POLICY_B);
    assert.deepEqual(policyOrDigest(SHA256, [POLICY_A, POLICY_C]), POLICY_B);

    for (const authHash of [TPM_ALG.SHA1, SHA256, TPM_ALG.SHA384, TPM_ALG.SHA512]) {
      const t = await startAuthSession(tpm, { kind: "trial", authHash, symmetric: SYM_NULL });
      const ref = enc.encode("ref");
      await policySecret(tpm, t, TPM_RH.OWNER, { policyRef: ref });
      await policyCommandCode(tpm, t, TPM_CC.PolicySecret);
      await policyAuthValue(tpm, t);
      let d = policySecretDigest(authHash, emptyPolicy(authHash), handleBytes(TPM_RH.OWNER), ref);
      d = policyAuthValueDigest(authHash, policyCommandCodeDigest(authHash, d, TPM_CC.PolicySecret));
      assert.deepEqual(await policyGetDigest(tpm, t), d, `authHash 0x${authHash.toString(16)}`);
      await policyPassword(tpm, t); // the same extension as PolicyAuthValue
      assert.deepEqual(await policyGetDigest(tpm, t), policyAuthValueDigest(authHash, d));
      await flushSession(tpm, t);
    }
  });

  test("PolicyPCR: H(d ‖ CC ‖ TPML_PCR_SELECTION ‖ H(values)), checked against the PCRs", async () => {
    const { engine, tpm } = await started();
    // PCRs 0 and 17 of SHA-256 (zeros, ones), PCR 23 of SHA-1, and PCR 2 of an unallocated bank.
    const pcrs = [
      { hash: SHA256, pcrSelect: Uint8Array.of(0x01, 0x00, 0x02) },
      { hash: TPM_ALG.SHA1, pcrSelect: Uint8Array.of(0x00, 0x00, 0x80) },
      { hash: TPM_ALG.SHA512, pcrSelect: Uint8Array.of(0x04, 0x00, 0x00) },
    ];
    const values = hash(SHA256, new Uint8Array(32), new Uint8Array(32).fill(0xff), new Uint8Array(20));
    const filtered = [pcrs[0]!, pcrs[1]!, { hash: TPM_ALG.SHA512, pcrSelect: new Uint8Array(3) }];
    const expected = hash(
      SHA256,
      new Uint8Array(32),
      Uint8Array.of(0, 0, 1, 0x7f),
      encode(TPML_PCR_SELECTION, filtered),
      values,
    );

    const p = await startAuthSession(tpm, { kind: "policy", symmetric: SYM_NULL });
    await tpm.execute(PolicyPCR, { policySession: p.handle, pcrDigest: values, pcrs });
    assert.deepEqual(await policyGetDigest(tpm, p), expected);
    await tpm.execute(PolicyRestart, { sessionHandle: p.handle });
    assert.deepEqual(await policyGetDigest(tpm, p), new Uint8Array(32));
    await tpm.execute(PolicyPCR, { policySession: p.handle, pcrDigest: EMPTY, pcrs });
    assert.deepEqual(await policyGetDigest(tpm, p), expected, "an empty pcrDigest means the current values");
    const wrong = { policySession: p.handle, pcrDigest: new Uint8Array(32), pcrs };
    assert.equal(await rcOf(tpm.execute(PolicyPCR, wrong)), 0x1c4, "VALUE, parameter 1");
    // A PCR change between two PolicyPCRs invalidates the session.
    engine.volatile.pcrUpdateCounter++;
    assert.equal(await rcOf(tpm.execute(PolicyPCR, { ...wrong, pcrDigest: EMPTY })), TPM_RC.PCR_CHANGED);

    // A trial session takes the caller's pcrDigest as is.
    const t = await startAuthSession(tpm, { kind: "trial", symmetric: SYM_NULL });
    await tpm.execute(PolicyPCR, { policySession: t.handle, pcrDigest: new Uint8Array(32), pcrs: [pcrs[0]!] });
    const trial = hash(
      SHA256,
      new Uint8Array(32),
      Uint8Array.of(0, 0, 1, 0x7f),
      encode(TPML_PCR_SELECTION, [pcrs[0]!]),
      new Uint8Array(32),
    );
    assert.deepEqual(await policyGetDigest(tpm, t), trial);
  });

  test("errors: the wrong kind of session, OR without a match, two command codes, a stale nonce", async () => {
    const { tpm } = await started();
    const hmac = await startAuthSession(tpm, { symmetric: SYM_NULL });
    const p = await startAuthSession(tpm, { kind: "policy", symmetric: SYM_NULL });
    assert.equal(await rcOf(tpm.execute(PolicySecret, secretArgs(hmac.handle))), 0x284, "VALUE, handle 2");
    assert.equal(await rcOf(tpm.execute(PolicyGetDigest, { policySession: hmac.handle })), 0x184, "VALUE, handle 1");
    assert.equal(await rcOf(tpm.execute(PolicyGetDigest, { policySession: 0x03000077 })), 0x18b, "HANDLE, handle 1");
    const other = new Uint8Array(32).fill(3);
    assert.equal(await rcOf(tpm.execute(PolicyOR, { policySession: p.handle, pHashList: [other, other] })), 0x1c4);
    assert.equal(
      await rcOf(tpm.execute(PolicyOR, { policySession: p.handle, pHashList: [new Uint8Array(32)] })),
      0x1d5,
    );
    await tpm.execute(PolicyOR, { policySession: p.handle, pHashList: [other, new Uint8Array(32)] });
    await policyCommandCode(tpm, p, TPM_CC.PolicySecret);
    await policyCommandCode(tpm, p, TPM_CC.PolicySecret); // the same code again is fine
    assert.equal(await rcOf(policyCommandCode(tpm, p, TPM_CC.EvictControl)), 0x1c4, "a second, different code");
    const p2 = await startAuthSession(tpm, { kind: "policy", symmetric: SYM_NULL });
    assert.equal(await rcOf(policyCommandCode(tpm, p2, TPM_CC.Quote)), 0x1e4, "POLICY_CC: not implemented here");
    const stale = secretArgs(p2.handle, { nonceTPM: p.nonceTPM });
    assert.equal(await rcOf(tpm.execute(PolicySecret, stale)), 0x1cf, "NONCE, parameter 1");
    assert.equal(
      await rcOf(tpm.execute(PolicySecret, { ...stale, nonceTPM: EMPTY, cpHashA: Uint8Array.of(1) })),
      0x2d5,
    );
  });

  test("policy sessions authorize: PolicyAuthValue, PolicyPassword, POLICY_FAIL, POLICY_CC", async () => {
    const { engine, tpm } = await started();
    const authValue = enc.encode("object secret");
    const alg = SHA256;
    const authPolicy = policyAuthValueDigest(alg, policyCommandCodeDigest(alg, emptyPolicy(alg), TPM_CC.PolicySecret));
    const obj = softObject("rsa", {
      attributes: TPMA_OBJECT.of("fixedTPM", "fixedParent", "sign"),
      authValue,
      authPolicy,
    });
    const h = load(engine, obj);
    const target = await startAuthSession(tpm, { kind: "trial", symmetric: SYM_NULL });
    const names = [obj.name, handleBytes(target.handle)];
    const use = (auth: AuthSession, value = authValue) =>
      tpm.execute(PolicySecret, { ...secretArgs(target.handle), authHandle: h }, {
        sessions: [auth.withAuth(value)],
        names,
      });

    const hmac = await startAuthSession(tpm, { symmetric: SYM_NULL });
    assert.equal(await rcOf(use(hmac)), TPM_RC.AUTH_UNAVAILABLE, "no userWithAuth: only a policy will do");

    const p = await startAuthSession(tpm, { kind: "policy", symmetric: SYM_NULL });
    await policyCommandCode(tpm, p, TPM_CC.PolicySecret);
    await policyAuthValue(tpm, p);
    await use(p);
    // Used with continueSession, the policy starts over.
    assert.deepEqual(await policyGetDigest(tpm, p), new Uint8Array(32));
    assert.equal(await rcOf(use(p)), 0x99d, "POLICY_FAIL, session 1");

    await policyCommandCode(tpm, p, TPM_CC.PolicySecret);
    await policyAuthValue(tpm, p);
    assert.equal(await rcOf(use(p, enc.encode("wrong"))), 0x98e, "AUTH_FAIL, session 1");

    const pw = await startAuthSession(tpm, { kind: "policy", symmetric: SYM_NULL });
    await policyCommandCode(tpm, pw, TPM_CC.PolicySecret);
    await policyPassword(tpm, pw);
    await use(pw);

    // A session limited to another command.
    const cc = await startAuthSession(tpm, { kind: "policy", symmetric: SYM_NULL });
    await policyCommandCode(tpm, cc, TPM_CC.EvictControl);
    await policyAuthValue(tpm, cc);
    assert.equal(await rcOf(use(cc)), 0x9a4, "POLICY_CC, session 1");
  });
});

// ---- FlushContext, ContextSave, ContextLoad, EvictControl ----------------------------------------------

describe("contexts", () => {
  test("FlushContext: absent or unflushable handles give 0x1C4, as swtpm; swtpm's own request", async () => {
    const { engine, tpm } = await started();
    for (const h of [0x80000005, 0x02000007, 0x03000000, 0x81000001, 0x40000001, 0x00000007]) {
      assert.equal(await rcOf(tpm.execute(FlushContext, { flushHandle: h })), 0x1c4, `0x${h.toString(16)}`);
    }
    const s = await startAuthSession(tpm, { symmetric: SYM_NULL });
    const p = await startAuthSession(tpm, { kind: "policy", symmetric: SYM_NULL });
    assert.deepEqual([s.handle, p.handle], [0x02000000, 0x03000001]);
    // tpm2-tools flushing its HMAC session 0x02000000 (flow-trace/023), byte for byte.
    const flush = tracePairs().find((v) => v.name === "023_FlushContext")!;
    assert.equal(toHex(await engine.execute(flush.request)), toHex(flush.response));
    assert.deepEqual([...engine.volatile.sessions.keys()], [p.handle]);
    // The client's session object does not know; the TPM says session 1 is not loaded.
    assert.equal(await rcOf(tpm.execute(PolicySecret, secretArgs(p.handle), { sessions: [s] })), TPM_RC.REFERENCE_S0);
    const h = load(engine, softObject("ecc"));
    await tpm.execute(FlushContext, { flushHandle: h });
    assert.equal(engine.volatile.objects.size, 0);
  });

  test("a session's context: saved, its handle reserved, loaded back, and the client's AuthSession keeps working", async () => {
    const { engine, tpm } = await started();
    engine.persistent.endorsement.authValue = enc.encode("eh");
    const key = softObject("ecc");
    const handle = load(engine, key);
    const s = await startAuthSession(tpm, {
      salt: { handle, public: key.public },
      flags: { decrypt: true, encrypt: true },
    });
    const p = await startAuthSession(tpm, { kind: "policy", symmetric: SYM_NULL });
    const run = () =>
      tpm.execute(PolicySecret, secretArgs(p.handle, { nonceTPM: p.nonceTPM }), {
        sessions: [s.withAuth(enc.encode("eh"))],
      });
    await run();
    await policyCommandCode(tpm, p, TPM_CC.PolicySecret);
    const digest = await policyGetDigest(tpm, p);

    const { context: cs } = await tpm.execute(ContextSave, { saveHandle: s.handle });
    const { context: cp } = await tpm.execute(ContextSave, { saveHandle: p.handle });
    assert.equal(cs.savedHandle, s.handle);
    assert.equal(cs.hierarchy, TPM_RH.NULL);
    assert.equal(cp.sequence, cs.sequence + 1n);
    // Saved sessions cannot be used, but their slot indices stay taken.
    assert.equal(await rcOf(policyGetDigest(tpm, p)), 0x18b);
    assert.equal(await rcOf(run()), 0x28b);
    const other = await startAuthSession(tpm, { symmetric: SYM_NULL });
    assert.equal(other.handle, 0x02000002);

    assert.equal((await tpm.execute(ContextLoad, { context: cs })).loadedHandle, s.handle);
    assert.equal((await tpm.execute(ContextLoad, { context: cp })).loadedHandle, p.handle);
    assert.deepEqual(await policyGetDigest(tpm, p), digest, "the policy state came back");
    assert.equal(await rcOf(policyCommandCode(tpm, p, TPM_CC.EvictControl)), 0x1c4, "and the command code with it");
    await run(); // nonces, keys and parameter encryption all survived
    assert.equal(await rcOf(tpm.execute(ContextLoad, { context: cs })), 0x1cb, "a context loads once");

    // A newer save makes the older one stale; a flushed saved session does not load.
    const { context: again } = await tpm.execute(ContextSave, { saveHandle: s.handle });
    assert.equal(await rcOf(tpm.execute(ContextLoad, { context: cs })), 0x1cb);
    await tpm.execute(FlushContext, { flushHandle: s.handle });
    assert.equal(await rcOf(tpm.execute(ContextLoad, { context: again })), 0x1cb);
  });

  test("a tampered context is refused with TPM_RC_INTEGRITY", async () => {
    const { engine, tpm } = await started();
    const s = await startAuthSession(tpm, { symmetric: SYM_NULL });
    const { context: c } = await tpm.execute(ContextSave, { saveHandle: s.handle });
    const flipped = (i: number) => {
      const blob = c.contextBlob.slice();
      blob[i]! ^= 0x10;
      return { ...c, contextBlob: blob };
    };
    const variants: TPMS_CONTEXT[] = [
      flipped(5), // the HMAC
      flipped(40), // the encrypted sequence
      flipped(c.contextBlob.length - 1), // the session
      { ...c, sequence: c.sequence + 1n },
      { ...c, savedHandle: 0x02000001 },
      { ...c, hierarchy: TPM_RH.OWNER },
      { ...c, contextBlob: c.contextBlob.subarray(0, 20) },
    ];
    for (const v of variants) assert.equal(await rcOf(tpm.execute(ContextLoad, { context: v })), 0x1df);
    // Another TPM's context does not load either.
    const { tpm: tpm2 } = await started();
    assert.equal(await rcOf(tpm2.execute(ContextLoad, { context: c })), 0x1df);
    assert.equal((await tpm.execute(ContextLoad, { context: c })).loadedHandle, s.handle);
    assert.ok(engine.volatile.sessions.has(s.handle));
  });

  test("an object's context: loads into a new slot as often as asked; dies with TPM Reset; stClear with Restart", async () => {
    const { engine, tpm } = await started();
    const key = softObject("rsa");
    const h = load(engine, key);
    const { context: c } = await tpm.execute(ContextSave, { saveHandle: h });
    assert.equal(c.savedHandle, 0x80000000);
    assert.equal(c.hierarchy, TPM_RH.OWNER);
    await tpm.execute(FlushContext, { flushHandle: h });
    const a = (await tpm.execute(ContextLoad, { context: c })).loadedHandle;
    const b = (await tpm.execute(ContextLoad, { context: c })).loadedHandle;
    assert.deepEqual([a, b], [0x80000000, 0x80000001]);
    const loaded = engine.volatile.objects.get(b)!;
    assert.deepEqual(loaded.name, key.name);
    assert.deepEqual(loaded.qualifiedName, key.qualifiedName);
    assert.deepEqual(loaded.privateJwk, key.privateJwk);
    // The private key works: a salted session to the loaded copy.
    await startAuthSession(tpm, { salt: { handle: b, public: key.public } });

    const stClear = softObject("ecc", { attributes: DECRYPT | TPMA_OBJECT.of("stClear") });
    const { context: sc } = await tpm.execute(ContextSave, { saveHandle: load(engine, stClear) });
    assert.equal(sc.savedHandle, 0x80000002);
    // TPM Restart: Shutdown(STATE), _TPM_Init, Startup(CLEAR).
    await tpm.execute(Shutdown, { shutdownType: TPM_SU.STATE });
    await engine.init();
    await tpm.execute(Startup, { startupType: TPM_SU.CLEAR });
    assert.ok((await tpm.execute(ContextLoad, { context: c })).loadedHandle >= 0x80000000);
    assert.equal(await rcOf(tpm.execute(ContextLoad, { context: sc })), 0x1df);
    // TPM Reset: _TPM_Init, Startup(CLEAR) without a Shutdown(STATE).
    await engine.init();
    await tpm.execute(Startup, { startupType: TPM_SU.CLEAR });
    assert.equal(await rcOf(tpm.execute(ContextLoad, { context: c })), 0x1df);
  });

  test("EvictControl: persist under owner and platform, refuse what the reference refuses, evict", async () => {
    let saves = 0;
    const { engine, tpm } = await started({ store: () => Promise.resolve(void saves++) });
    const key = softObject("rsa");
    const h = load(engine, key);
    const evict = (auth: number, objectHandle: number, persistentHandle: number) =>
      tpm.execute(EvictControl, { auth, objectHandle, persistentHandle });
    const before = saves;
    await evict(TPM_RH.OWNER, h, 0x81000001);
    assert.equal(saves, before + 1, "the state file was written");
    const stored = engine.persistent.persistent.get(0x81000001)!;
    assert.deepEqual(stored.qualifiedName, key.qualifiedName);
    assert.deepEqual(engine.object(0x81000001).name, key.name);
    // The persistent copy decrypts salts.
    await startAuthSession(tpm, { salt: { handle: 0x81000001, public: key.public } });

    assert.equal(await rcOf(evict(TPM_RH.OWNER, h, 0x81000001)), TPM_RC.NV_DEFINED);
    assert.equal(await rcOf(evict(TPM_RH.OWNER, h, 0x81800000)), 0x1cd, "RANGE, parameter 1");
    assert.equal(await rcOf(evict(TPM_RH.OWNER, h, 0x80000001)), 0x1c4, "not a persistent handle");
    assert.equal(await rcOf(evict(TPM_RH.PLATFORM, h, 0x81800000)), 0x285, "HIERARCHY: platform persists only its own");
    assert.equal(await rcOf(evict(TPM_RH.ENDORSEMENT, h, 0x81000002)), 0x184, "VALUE, handle 1");
    assert.equal(await rcOf(evict(TPM_RH.OWNER, 0x81000001, 0x81000002)), 0x28b, "HANDLE, handle 2");
    const temporary = load(engine, softObject("ecc", { hierarchy: TPM_RH.NULL }));
    assert.equal(await rcOf(evict(TPM_RH.OWNER, temporary, 0x81000002)), 0x282, "ATTRIBUTES, handle 2");
    const platformKey = load(engine, softObject("ecc", { hierarchy: TPM_RH.PLATFORM }));
    assert.equal(await rcOf(evict(TPM_RH.PLATFORM, platformKey, 0x81000002)), 0x1cd);
    await evict(TPM_RH.PLATFORM, platformKey, 0x81800000);
    assert.equal(await rcOf(evict(TPM_RH.OWNER, 0x81800000, 0x81800000)), 0x285, "owner cannot evict platform's");

    await evict(TPM_RH.OWNER, 0x81000001, 0x81000001);
    await evict(TPM_RH.PLATFORM, 0x81800000, 0x81800000);
    assert.equal(engine.persistent.persistent.size, 0);
    assert.equal(await rcOf(startRaw(tpm, { tpmKey: 0x81000001 })), 0x18b);
  });
});

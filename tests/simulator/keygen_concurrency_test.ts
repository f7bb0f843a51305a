/**
 * An RSA key search does not stop the TPM serving others: while a CreatePrimary of an RSA-3072 key
 * runs for one client (seconds of prime search), another client's GetRandom is answered, in process
 * and over the socket. The key is the same one a blocking search finds (determinism is kept).
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { Tpm } from "../../src/tpm/client.ts";
import { CreatePrimary, GetRandom, Startup } from "../../src/tpm/commands.ts";
import { TPM_ALG, TPM_RH, TPM_SU } from "../../src/tpm/constants.ts";
import { EK_TEMPLATES } from "../../src/tpm/templates.ts";
import type { TPMT_PUBLIC } from "../../src/tpm/structures.ts";
import { SwtpmTransport } from "../../src/tpm/transport/swtpm.ts";
import { KdfStream, PRIMARY_OBJECT_CREATION } from "../../simulator/drbg.ts";
import { ALL_HANDLERS } from "../../simulator/handlers/all.ts";
import { makeMaterial } from "../../simulator/keys.ts";
import { generateRsaKey, generateRsaKeyAsync } from "../../simulator/rsa_keygen.ts";
import { SimTpm } from "../../simulator/sim_tpm.ts";
import { freshPersistent } from "../../simulator/state.ts";
import { startSwtpmServer } from "../../simulator/swtpm_server.ts";
import { EngineTransport, startedSim } from "../helpers/sim.ts";

const EMPTY = new Uint8Array(0);

/** CreatePrimary of `template` under the owner; `data` makes it a key no cache holds. */
function createPrimary(tpm: Tpm, template: TPMT_PUBLIC, data: Uint8Array) {
  return tpm.execute(CreatePrimary, {
    primaryHandle: TPM_RH.OWNER,
    inSensitive: { userAuth: EMPTY, data },
    inPublic: template,
    outsideInfo: EMPTY,
    creationPCR: [],
  });
}

/** Start a fresh RSA-3072 CreatePrimary on `a`, then a GetRandom on `b`: which finished first. */
async function race(a: Tpm, b: Tpm): Promise<string[]> {
  const order: string[] = [];
  const primary = createPrimary(a, EK_TEMPLATES.rsa3072, new Uint8Array(randomBytes(16))).then(() => {
    order.push("CreatePrimary");
  });
  const random = b.execute(GetRandom, { bytesRequested: 8 }).then((r) => {
    assert.equal(r.randomBytes.length, 8);
    order.push("GetRandom");
  });
  await Promise.all([primary, random]);
  return order;
}

describe("RSA key generation does not hold up other clients", () => {
  test("in process: GetRandom is answered while an RSA-3072 CreatePrimary searches for primes", async () => {
    const { engine, tpm } = await startedSim(ALL_HANDLERS);
    assert.deepEqual(await race(tpm, new Tpm(new EngineTransport(engine))), ["GetRandom", "CreatePrimary"]);
  });

  test("over the swtpm socket: another connection's GetRandom is answered first", async () => {
    const { engine } = await startedSim(ALL_HANDLERS);
    const server = await startSwtpmServer(engine, { warn: () => {} });
    const at = { host: "127.0.0.1", port: server.port! };
    const a = new Tpm(new SwtpmTransport(at, { timeoutMs: 120_000 }));
    const b = new Tpm(new SwtpmTransport(at));
    try {
      assert.deepEqual(await race(a, b), ["GetRandom", "CreatePrimary"]);
    } finally {
      await a.close();
      await b.close();
      await server.close();
    }
  });
});

describe("the key found in slices is the key found at once", () => {
  test("generateRsaKeyAsync and generateRsaKey agree", async () => {
    const stream = () => new KdfStream(TPM_ALG.SHA256, new Uint8Array(32).fill(3), PRIMARY_OBJECT_CREATION, EMPTY);
    assert.deepEqual(await generateRsaKeyAsync(stream(), 1024), generateRsaKey(stream(), 1024));
  });

  test("a CreatePrimary whose key was prepared returns the key derived without preparing", async () => {
    const fixed = () => freshPersistent((n) => new Uint8Array(n).fill(9));
    const engine = new SimTpm(fixed(), ALL_HANDLERS);
    const tpm = new Tpm(new EngineTransport(engine));
    await tpm.execute(Startup, { startupType: TPM_SU.CLEAR });
    const data = Uint8Array.of(1, 2, 3);
    const prepared = await createPrimary(tpm, EK_TEMPLATES.rsa, data);
    const direct = makeMaterial(EK_TEMPLATES.rsa, {
      kind: "primary",
      seed: fixed().owner.seed,
      sensitiveData: data,
      persistent: fixed(),
    });
    assert.deepEqual(prepared.outPublic.unique, direct.public.unique);
  });
});

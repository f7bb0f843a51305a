/**
 * Which error class each check raises: TpmResponseError only for a response code the TPM answered;
 * TpmUsageError for a request that cannot work, found before asking; TpmProtocolError for an answer
 * that is inconsistent. Against the embedded simulator, with a transport that alters answers.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { Tpm } from "../../src/tpm/client.ts";
import { EvictControl } from "../../src/tpm/commands.ts";
import { TPM_ALG, TPM_CC, TPM_ECC_CURVE, TPM_RH } from "../../src/tpm/constants.ts";
import { persistentEk } from "../../src/tpm/ek.ts";
import { PcrsUnstableError, TpmProtocolError, TpmResponseError, TpmUsageError } from "../../src/tpm/errors.ts";
import { createPrimary, flush, readPublic } from "../../src/tpm/objects.ts";
import { pcrRead, pcrSelection } from "../../src/tpm/pcrs.ts";
import { quote } from "../../src/tpm/quote.ts";
import { akTemplate, EK_TEMPLATES, ekPolicyB, parseAkKey } from "../../src/tpm/templates.ts";
import { ALL_HANDLERS } from "../../simulator/handlers/all.ts";
import { EngineTransport, startedSim } from "../helpers/sim.ts";
import { WrappedTransport } from "../helpers/transport_wrappers.ts";

/** A usage error, and not a response error that the TPM never sent. */
function usage(pattern: RegExp) {
  return (e: unknown) => {
    assert.ok(e instanceof TpmUsageError, `expected TpmUsageError, got ${String(e)}`);
    assert.ok(!(e instanceof TpmResponseError));
    assert.equal(e.code, "ERR_TPM_USAGE");
    assert.match(e.message, pattern);
    return true;
  };
}

describe("TpmUsageError: requests that cannot work", () => {
  test("an AK template with an encryption scheme (RSAES) for RSA", () => {
    assert.throws(
      () => akTemplate({ key: { type: "rsa", bits: 2048 }, signAlg: TPM_ALG.RSAES }),
      usage(/rsaes is not an RSA signing scheme/i),
    );
  });
  test("an AK template with an RSA scheme for an ECC key", () => {
    assert.throws(
      () => akTemplate({ key: { type: "ecc", curve: TPM_ECC_CURVE.NIST_P256 }, signAlg: TPM_ALG.RSASSA }),
      usage(/rsassa is not an ECC signing scheme/i),
    );
  });
  test("a key algorithm Keylime does not spell", () => {
    assert.throws(() => parseAkKey("dsa2048"), usage(/"dsa2048" is not a key algorithm/));
  });
  test("an EK PolicyB for a hash with no PolicyC", () => {
    assert.throws(() => ekPolicyB(TPM_ALG.SHA1), usage(/no EK PolicyC is known for hash sha1/i));
  });
  test("an EK handle that is not persistent, and an object that is not an EK", async () => {
    const { tpm } = await startedSim(ALL_HANDLERS);
    try {
      await assert.rejects(persistentEk(tpm, 0x80000001), usage(/0x80000001 is not a persistent handle/));
      // A signing key made persistent is no EK.
      const ak = await createPrimary(tpm, TPM_RH.OWNER, akTemplate());
      await tpm.execute(EvictControl, { auth: TPM_RH.OWNER, objectHandle: ak.handle, persistentHandle: 0x81000123 });
      await flush(tpm, ak.handle);
      await assert.rejects(persistentEk(tpm, 0x81000123), usage(/0x81000123 is not an EK/));
    } finally {
      await tpm.close();
    }
  });
});

/** Flips the last byte of the Name in a TPM2_ReadPublic answer (outPublic, name, qualifiedName). */
class AlterReadPublicName extends WrappedTransport {
  override async send(command: Uint8Array): Promise<Uint8Array> {
    const response = await this.inner.send(command);
    const code = new DataView(command.buffer, command.byteOffset).getUint32(6);
    if (code !== TPM_CC.ReadPublic || response.length <= 10) return response;
    const view = new DataView(response.buffer, response.byteOffset);
    const nameAt = 10 + 2 + view.getUint16(10);
    const out = response.slice();
    out[nameAt + 2 + view.getUint16(nameAt) - 1]! ^= 1;
    return out;
  }
}

describe("TpmProtocolError: answers that are inconsistent", () => {
  test("a Name that is not the public area's", async () => {
    const { engine, tpm } = await startedSim(ALL_HANDLERS);
    const altered = new Tpm(new AlterReadPublicName(new EngineTransport(engine)));
    try {
      const key = await createPrimary(tpm, TPM_RH.OWNER, EK_TEMPLATES.ecc);
      assert.deepEqual((await readPublic(tpm, key.handle)).name, key.name);
      await assert.rejects(readPublic(altered, key.handle), (e) => {
        assert.ok(e instanceof TpmProtocolError && !(e instanceof TpmResponseError), String(e));
        assert.equal(e.code, "ERR_TPM_PROTOCOL");
        assert.match(
          e.message,
          /TPM2_ReadPublic answered the Name [0-9a-f]+, which is not the Name of its public area/,
        );
        return true;
      });
    } finally {
      await tpm.close();
    }
  });
});

/** Changes TPM2_PCR_Read answers: a new pcrUpdateCounter each time, or a different last PCR value. */
class MovingPcrs extends WrappedTransport {
  #reads = 0;
  constructor(inner: EngineTransport, private readonly what: "counter" | "value") {
    super(inner);
  }
  override async send(command: Uint8Array): Promise<Uint8Array> {
    const response = await this.inner.send(command);
    const code = new DataView(command.buffer, command.byteOffset).getUint32(6);
    if (code !== TPM_CC.PCR_Read || response.length <= 10) return response;
    const out = response.slice();
    const view = new DataView(out.buffer);
    if (this.what === "counter") view.setUint32(10, view.getUint32(10) + ++this.#reads);
    else out[out.length - 1]! ^= 1;
    return out;
  }
}

describe("PcrsUnstableError: PCRs that keep changing, worth retrying", () => {
  const unstable = (pattern: RegExp) => (e: unknown) => {
    assert.ok(e instanceof PcrsUnstableError && e instanceof TpmProtocolError, String(e));
    assert.equal(e.code, "ERR_TPM_PCR_UNSTABLE");
    assert.match(e.message, pattern);
    return true;
  };

  test("while reading PCRs in several TPM2_PCR_Read calls", async () => {
    const { engine, tpm } = await startedSim(ALL_HANDLERS);
    const moving = new Tpm(new MovingPcrs(new EngineTransport(engine), "counter"));
    const all = [pcrSelection(TPM_ALG.SHA256, Array.from({ length: 24 }, (_, i) => i))];
    try {
      assert.equal((await pcrRead(tpm, all)).values.get(TPM_ALG.SHA256)!.size, 24);
      await assert.rejects(pcrRead(moving, all), unstable(/PCRs kept changing during \d+ attempts/));
    } finally {
      await tpm.close();
    }
  });

  test("between TPM2_Quote and TPM2_PCR_Read", async () => {
    const { engine, tpm } = await startedSim(ALL_HANDLERS);
    const moving = new Tpm(new MovingPcrs(new EngineTransport(engine), "value"));
    try {
      const ak = await createPrimary(tpm, TPM_RH.OWNER, akTemplate());
      const req = { nonce: Uint8Array.of(1, 2, 3), pcrs: [0, 1, 2], hashAlg: TPM_ALG.SHA256, attempts: 2 };
      assert.equal((await quote(tpm, ak, req)).pcrs.size, 3);
      await assert.rejects(
        quote(moving, ak, req),
        unstable(/PCRs changed between TPM2_Quote and TPM2_PCR_Read 2 times/),
      );
    } finally {
      await tpm.close();
    }
  });
});

/**
 * Golden vectors: every captured command and response decodes with our declarations and
 * re-encodes to the identical bytes.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { COMMANDS } from "../../src/tpm/commands.ts";
import {
  decodeCommand,
  decodeResponseFrame,
  encodeCommandFrame,
  encodeParameters,
  encodeResponseFrame,
} from "../../src/tpm/frame.ts";
import { decode, encode } from "../../src/tpm/marshal.ts";
import { TPMT_PUBLIC } from "../../src/tpm/structures.ts";
import { EK_TEMPLATES } from "../../src/tpm/templates.ts";
import { rawHex, rawPairs, toHex, tracePairs, type VectorPair } from "../helpers/vectors.ts";

function roundTrip(v: VectorPair) {
  const cmd = decodeCommand(v.request, COMMANDS);
  const params = encodeParameters(cmd.def, cmd.args);
  const again = encodeCommandFrame({
    code: cmd.def.code,
    handles: cmd.frame.handles,
    auths: cmd.frame.auths,
    parameters: params,
  });
  assert.equal(toHex(again), toHex(v.request), `${v.name}: command re-encodes byte for byte`);

  const rsp = decodeResponseFrame(v.response, {
    responseHandles: cmd.def.responseHandle === undefined ? 0 : 1,
    sessionCount: cmd.frame.auths.length,
  });
  if (rsp.rc !== 0) {
    assert.equal(toHex(encodeResponseFrame(rsp)), toHex(v.response));
    return { cmd, rsp, values: undefined };
  }
  const values = decode(cmd.def.response, rsp.parameters);
  const rspAgain = encodeResponseFrame({ ...rsp, parameters: encode(cmd.def.response, values) });
  assert.equal(toHex(rspAgain), toHex(v.response), `${v.name}: response re-encodes byte for byte`);
  return { cmd, rsp, values: values as Record<string, unknown> };
}

describe("raw vectors (swtpm 0.7.1)", () => {
  for (const v of rawPairs()) test(v.name, () => void roundTrip(v));

  test("EK templates decode as TPMT_PUBLIC and re-encode", () => {
    for (const f of ["template_ek_rsa2048_L1.TPMT_PUBLIC.hex", "template_ek_eccp256_L2.TPMT_PUBLIC.hex"]) {
      const bytes = rawHex(f);
      const pub = decode(TPMT_PUBLIC, bytes);
      assert.equal(pub.objectAttributes, 0x000300b2);
      assert.equal(toHex(encode(TPMT_PUBLIC, pub)), toHex(bytes));
    }
  });

  test("our EK templates are the TCG L-1 and L-2 templates, byte for byte", () => {
    assert.equal(toHex(encode(TPMT_PUBLIC, EK_TEMPLATES.rsa)), toHex(rawHex("template_ek_rsa2048_L1.TPMT_PUBLIC.hex")));
    assert.equal(toHex(encode(TPMT_PUBLIC, EK_TEMPLATES.ecc)), toHex(rawHex("template_ek_eccp256_L2.TPMT_PUBLIC.hex")));
  });

  test("decoded values carry the spec's meaning", () => {
    const pcr = roundTrip(rawPairs().find((v) => v.name === "PCR_Read_sha256_0_10")!).values!;
    const digests = pcr.pcrValues as Uint8Array[];
    assert.equal(digests.length, 2);
    assert.match(toHex(digests[1]!), /^ff16f4da/);
    const quote = roundTrip(rawPairs().find((v) => v.name.startsWith("Quote_"))!).values!;
    const attest = quote.quoted as { magic: number; type: number; extraData: Uint8Array };
    assert.equal(attest.magic, 0xff544347);
    assert.equal(attest.type, 0x8018);
    assert.equal(toHex(attest.extraData), "0011223344556677");
  });
});

describe("flow trace (tpm2-tools 5.4 against swtpm)", () => {
  const pairs = tracePairs();
  test("has the whole capture", () => assert.equal(pairs.length, 148));
  for (const v of pairs) test(v.name, () => void roundTrip(v));
});

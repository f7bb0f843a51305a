/** attest's policy file: parsing with errors naming the path, round trip, and the check against quoted PCRs. */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  attestPolicyJson,
  checkPcrPolicy,
  parseAttestPolicy,
  PolicyError,
  policyFromPcrs,
  policyPcrs,
} from "../../src/protocol/attest_policy.ts";
import { TPM_ALG } from "../../src/tpm/constants.ts";

const A = "aa".repeat(32);
const B = "bb".repeat(32);

describe("attest policy", () => {
  test("parses banks, PCRs and values (0x prefix and upper case allowed), prints them back sorted", () => {
    const p = parseAttestPolicy(
      JSON.stringify({ pcrs: { sha256: { "7": [A, "0x" + B.toUpperCase()], "0": [A] } }, uefi_log: true }),
    );
    assert.equal(p.uefiLog, true);
    assert.deepEqual([...p.pcrs.get(TPM_ALG.SHA256)!.keys()].sort(), [0, 7]);
    assert.deepEqual(policyPcrs(p), [0, 1, 2, 3, 4, 5, 6, 7]);
    assert.deepEqual(JSON.parse(attestPolicyJson(p)), { pcrs: { sha256: { "0": [A], "7": [A, B] } }, uefi_log: true });
    assert.deepEqual(parseAttestPolicy("{}"), { pcrs: new Map(), uefiLog: false });
  });

  test("bad policies name the path at fault", () => {
    const cases: [unknown, RegExp][] = [
      ["not json", /^policy: not JSON/],
      [[], /^policy: not a JSON object/],
      [{ pcr: {} }, /^policy pcr: unknown key/],
      [{ uefi_log: "yes" }, /^policy uefi_log: not true or false/],
      [{ pcrs: { md5: {} } }, /^policy pcrs\.md5: not a PCR bank/],
      [{ pcrs: { sha256: [] } }, /^policy pcrs\.sha256: not an object/],
      [{ pcrs: { sha256: { "24": [A] } } }, /^policy pcrs\.sha256\."24": not a PCR index 0-23/],
      [{ pcrs: { sha256: { "07": [A] } } }, /^policy pcrs\.sha256\."07": not a PCR index/],
      [{ pcrs: { sha256: { "7": A } } }, /^policy pcrs\.sha256\."7": not a list of 1 to 256 allowed values/],
      [{ pcrs: { sha256: { "7": [] } } }, /^policy pcrs\.sha256\."7": not a list/],
      [{ pcrs: { sha256: { "7": [A, "aa".repeat(20)] } } }, /^policy pcrs\.sha256\."7"\[1\]: not 64 hex digits/],
      [{ pcrs: { sha1: { "7": [A] } } }, /^policy pcrs\.sha1\."7"\[0\]: not 40 hex digits/],
    ];
    for (const [json, why] of cases) {
      const text = typeof json === "string" ? json : JSON.stringify(json);
      assert.throws(() => parseAttestPolicy(text), (e) => e instanceof PolicyError && why.test(e.message), text);
    }
  });

  test("the check lists each PCR whose quoted value is not allowed, and a missing one", () => {
    const p = parseAttestPolicy(JSON.stringify({ pcrs: { sha256: { "0": [A, B], "7": [A], "23": [A] } } }));
    const quoted = new Map(
      [[0, Buffer.from(B, "hex")], [7, Buffer.from(B, "hex")]].map((
        [k, v],
      ) => [k as number, new Uint8Array(v as Buffer)]),
    );
    const bad = checkPcrPolicy(p, TPM_ALG.SHA256, quoted);
    assert.deepEqual(bad.map((m) => [m.pcr, m.quoted === undefined]), [[7, false], [23, true]]);
  });

  test("a policy for a bank the agent does not quote is refused", () => {
    const p = parseAttestPolicy(JSON.stringify({ pcrs: { sha1: { "0": ["aa".repeat(20)] } } }));
    assert.throws(() => checkPcrPolicy(p, TPM_ALG.SHA256, new Map()), /pcrs\.sha1: the agent quotes the sha256 bank/);
  });

  test("policyFromPcrs allows exactly the given values", () => {
    const values = new Map([[23, new Uint8Array(32).fill(0xaa)]]);
    const p = policyFromPcrs(TPM_ALG.SHA256, values);
    assert.deepEqual(checkPcrPolicy(p, TPM_ALG.SHA256, values), []);
    assert.equal(checkPcrPolicy(p, TPM_ALG.SHA256, new Map([[23, new Uint8Array(32)]])).length, 1);
  });
});

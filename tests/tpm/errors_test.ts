/** Response-code decoding (Part 2 §6.6) against the codes observed on swtpm (spec/tpm.md §2.1). */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { decodeRc, describeRc, TpmResponseError } from "../../src/tpm/errors.ts";
import { TPM_RC } from "../../src/tpm/constants.ts";

describe("decodeRc", () => {
  const cases: [number, string][] = [
    [0x18b, "TPM_RC_HANDLE (handle 1)"],
    [0x1c4, "TPM_RC_VALUE (parameter 1)"],
    [0x1d5, "TPM_RC_SIZE (parameter 1)"],
    [0x98e, "TPM_RC_AUTH_FAIL (session 1)"],
    [0x9a2, "TPM_RC_BAD_AUTH (session 1)"],
    [0x982, "TPM_RC_ATTRIBUTES (session 1)"],
    [0x2c4, "TPM_RC_VALUE (parameter 2)"],
    [0x08b, "TPM_RC_HANDLE (handle unspecified)"],
    [0x09d, "TPM_RC_POLICY_FAIL (handle unspecified)"],
    [0x100, "TPM_RC_INITIALIZE"],
    [0x101, "TPM_RC_FAILURE"],
    [0x142, "TPM_RC_COMMAND_SIZE"],
    [0x143, "TPM_RC_COMMAND_CODE"],
    [0x14c, "TPM_RC_NV_DEFINED"],
    [0x902, "TPM_RC_OBJECT_MEMORY"],
    [0x907, "TPM_RC_LOCALITY"],
    [0x922, "TPM_RC_RETRY"],
    [0x01e, "TPM 1.2 code 0x1e"],
    [0x500, "vendor code 0x500"],
  ];
  for (const [rc, text] of cases) test(`0x${rc.toString(16)} → ${text}`, () => assert.equal(describeRc(rc), text));

  test("subjects and indices", () => {
    assert.deepEqual(
      { ...decodeRc(0x98e) },
      {
        rc: 0x98e,
        base: 0x08e,
        name: "TPM_RC_AUTH_FAIL",
        subject: "session",
        index: 1,
        warning: false,
        vendor: false,
        tpm12: false,
      },
    );
    const p15 = decodeRc(0xfc4);
    assert.equal(p15.subject, "parameter");
    assert.equal(p15.index, 15);
    assert.equal(decodeRc(0x902).warning, true);
  });
});

test("TpmResponseError names the command, the code and the subject", () => {
  const e = new TpmResponseError("TPM2_CreatePrimary", 0x9a2);
  assert.equal(e.code, "ERR_TPM_RC");
  assert.equal(e.rc, 0x9a2);
  assert.ok(e.is(TPM_RC.BAD_AUTH));
  assert.equal(e.message, "TPM2_CreatePrimary failed: TPM_RC_BAD_AUTH (session 1), rc 0x9a2");
  assert.match(new TpmResponseError("TPM2_Load", 0x902).message, /OBJECT_MEMORY.*flush/);
});

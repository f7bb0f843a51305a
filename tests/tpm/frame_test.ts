/** Response framing: what a malformed header is refused with. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { MarshalError } from "../../src/tpm/errors.ts";
import { decodeResponseFrame } from "../../src/tpm/frame.ts";
import { fromHex } from "../../src/util/encoding.ts";

const expect = { responseHandles: 0, sessionCount: 1 };

test("an error response is the bare header with tag TPM_ST_NO_SESSIONS", () => {
  assert.deepEqual(decodeResponseFrame(fromHex("80010000000a00000101"), expect), {
    rc: 0x101,
    handles: [],
    parameters: new Uint8Array(0),
    auths: [],
  });
});

test("an error response tagged TPM_ST_SESSIONS is malformed", () => {
  assert.throws(() => decodeResponseFrame(fromHex("80020000000a00000101"), expect), (e: unknown) => {
    assert.ok(e instanceof MarshalError, String(e));
    assert.equal(e.fault, "tag");
    assert.equal(
      e.message,
      "Cannot decode response header: error response (rc 0x101) tagged 0x8002; an error response has tag " +
        "TPM_ST_NO_SESSIONS (0x8001)",
    );
    return true;
  });
});

/**
 * Fuzzing the simulator with what tpm2-tools really sends, mutated, and with random bytes: every
 * answer must be a well-formed response, the simulator must keep serving, and its state file must
 * stay loadable. fast-check runs with a fixed seed so a failure reproduces.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { openSimulator, simulatorTransport, STATE_FILE } from "../../simulator/index.ts";
import { readState } from "../../simulator/state_file.ts";
import { Tpm } from "../../src/tpm/client.ts";
import { GetRandom, Startup } from "../../src/tpm/commands.ts";
import { TPM_SU } from "../../src/tpm/constants.ts";
import { tracePairs } from "../helpers/vectors.ts";
import { toHex } from "../../src/util/encoding.ts";

/** A response is well formed: size matches, tag is 8001/8002, an error carries nothing but its code. */
function assertWellFormed(rsp: Uint8Array, command: Uint8Array): void {
  const ctx = () => `for command ${toHex(command.subarray(0, 24))}...`;
  assert.ok(rsp.length >= 10, `response shorter than a header ${ctx()}`);
  const v = new DataView(rsp.buffer, rsp.byteOffset, rsp.byteLength);
  const tag = v.getUint16(0);
  assert.ok(tag === 0x8001 || tag === 0x8002, `tag 0x${tag.toString(16)} ${ctx()}`);
  assert.equal(v.getUint32(2), rsp.length, `responseSize ${ctx()}`);
  if (v.getUint32(6) !== 0) assert.equal(rsp.length, 10, `an error response carries only the header ${ctx()}`);
}

const SEED = 20261122;

test("mutated tpm2-tools commands and random bytes get well-formed answers", async () => {
  const dir = mkdtempSync(join(tmpdir(), "keylime-ts-fuzz-"));
  try {
    const { engine } = await openSimulator({ stateDir: dir });
    const tpm = new Tpm(simulatorTransport(engine));
    await tpm.execute(Startup, { startupType: TPM_SU.CLEAR });
    const commands = tracePairs().map((p) => p.request);
    const codes = new Map<number, number>();
    const send = async (bytes: Uint8Array) => {
      const rsp = await engine.execute(bytes);
      assertWellFormed(rsp, bytes);
      const rc = new DataView(rsp.buffer, rsp.byteOffset).getUint32(6);
      codes.set(rc, (codes.get(rc) ?? 0) + 1);
    };

    // The captured commands as they are first: the simulator must answer each well.
    for (const c of commands) await send(c);

    const mutation = fc.record({
      index: fc.nat({ max: commands.length - 1 }),
      flips: fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })), { maxLength: 6 }),
      cut: fc.option(fc.nat(), { nil: undefined }),
      extra: fc.uint8Array({ maxLength: 16 }),
      fixSize: fc.boolean(),
    });
    await fc.assert(
      fc.asyncProperty(mutation, async (m) => {
        let bytes = commands[m.index]!.slice();
        for (const [at, x] of m.flips) bytes[at % bytes.length]! ^= x;
        if (m.cut !== undefined) bytes = bytes.subarray(0, m.cut % (bytes.length + 1));
        bytes = new Uint8Array([...bytes, ...m.extra]);
        // Half the time keep commandSize consistent, so mutations reach past the header checks.
        if (m.fixSize && bytes.length >= 6) new DataView(bytes.buffer).setUint32(2, bytes.length);
        await send(bytes);
      }),
      { numRuns: 1500, seed: SEED },
    );
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 300 }), (bytes) => send(bytes)),
      { numRuns: 500, seed: SEED },
    );

    // The mutations reached past framing: many different answers, successes among them.
    assert.ok((codes.get(0) ?? 0) >= 50, `successes: ${codes.get(0)}`);
    assert.ok(codes.size >= 15, `distinct response codes: ${[...codes.keys()].map((c) => c.toString(16))}`);

    // Still serving, and the state file still loads.
    const r = await tpm.execute(GetRandom, { bytesRequested: 16 });
    assert.equal(r.randomBytes.length, 16);
    await engine.save();
    assert.ok(await readState(join(dir, STATE_FILE)), "the state file is loadable");
    await engine.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

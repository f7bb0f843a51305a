/**
 * Handlers are registered by their command declaration and typed by it. The `@ts-expect-error` lines
 * are the test of the types: `deno check` (and `deno test`, which checks first) fails if any of those
 * wrong handlers ever type-checks. The runtime tests cover the registry and a typed handler's run.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { command, type CommandArgs, type ResponseArgs } from "../../src/tpm/command.ts";
import { GetRandom, Quote, StirRandom } from "../../src/tpm/commands.ts";
import { TPM_ALG, TPM_CC, TPM_RC } from "../../src/tpm/constants.ts";
import { u16 } from "../../src/tpm/marshal.ts";
import { handle, registry } from "../../simulator/handlers/index.ts";
import { lifecycle } from "../../simulator/handlers/lifecycle.ts";
import { rcOf, startedSim } from "../helpers/sim.ts";

type QuoteOut = ResponseArgs<typeof Quote>;
const signature: QuoteOut["signature"] = { sigAlg: TPM_ALG.NULL, signature: null };
declare const quoted: QuoteOut["quoted"];

describe("handler types", () => {
  test("wrong handlers do not type-check", () => {
    const wrong = [
      // @ts-expect-error: a misspelt response field (signatur) in an inline handler
      handle(Quote, () => ({ quoted, signatur: signature })),
      // @ts-expect-error: an argument GetRandom does not have
      handle(GetRandom, (tpm, args) => ({ randomBytes: tpm.random(args.bytesRequestd) })),
      // @ts-expect-error: destructuring an argument GetRandom does not have
      handle(GetRandom, (tpm, { count }) => ({ randomBytes: tpm.random(count) })),
      // @ts-expect-error: a named handler whose inferred response has a field GetRandom does not declare
      handle(GetRandom, randomWithExtra),
      // @ts-expect-error: a named handler that declares an argument type the command does not give
      handle(GetRandom, randomWithWrongArgs),
      // @ts-expect-error: StirRandom declares no response parameters, so none may be returned
      handle(StirRandom, () => ({ stirred: true })),
    ];
    // They register fine at run time: only the compiler can tell they are wrong.
    assert.deepEqual(wrong.map((h) => h.def.name), [
      "Quote",
      "GetRandom",
      "GetRandom",
      "GetRandom",
      "GetRandom",
      "StirRandom",
    ]);
  });

  test("a handler with a declared response type is checked field by field", () => {
    const random = (
      _tpm: unknown,
      { bytesRequested }: CommandArgs<typeof GetRandom>,
    ): ResponseArgs<typeof GetRandom> => // @ts-expect-error: excess property in an object literal of the declared response type
    ({ randomBytes: new Uint8Array(bytesRequested), randombytes: new Uint8Array(0) });
    assert.equal(handle(GetRandom, random).def, GetRandom);
  });
});

function randomWithExtra() {
  return { randomBytes: new Uint8Array(1), moreData: true };
}

function randomWithWrongArgs(_tpm: unknown, args: { bytesWanted: number }) {
  return { randomBytes: new Uint8Array(args.bytesWanted) };
}

describe("registry", () => {
  const random = handle(GetRandom, (_tpm, { bytesRequested }) => ({ randomBytes: new Uint8Array(bytesRequested) }));

  test("keys handlers by command code", () => {
    const r = registry([random], lifecycle);
    assert.equal(r.get(TPM_CC.GetRandom), random);
    assert.equal(r.size, 1 + lifecycle.length);
  });

  test("refuses two handlers for one command", () => {
    assert.throws(() => registry([random], [random]), /two handlers for GetRandom/);
  });

  test("refuses a handler for a command that is not declared in commands.ts", () => {
    const Bogus = command("Bogus", 0x2000_0001, { params: { x: u16 } });
    assert.throws(() => registry([handle(Bogus, () => ({}))]), /handler for undeclared command Bogus/);
    // Same code as a declared command, but another declaration: still not the declared command.
    const Lookalike = command("GetRandom", TPM_CC.GetRandom, { params: { bytesRequested: u16 } });
    assert.throws(
      () => registry([handle(Lookalike, () => ({}))]),
      /handler for undeclared command GetRandom/,
    );
  });
});

describe("a typed handler in the simulator", () => {
  test("receives its decoded arguments and its response is encoded by the declaration", async () => {
    const seen: number[] = [];
    const random = handle(GetRandom, (_tpm, { bytesRequested }) => {
      seen.push(bytesRequested);
      return { randomBytes: new Uint8Array(bytesRequested).fill(0xab) };
    });
    const { tpm } = await startedSim(registry(lifecycle, [random]));
    const r = await tpm.execute(GetRandom, { bytesRequested: 5 });
    assert.deepEqual(r.randomBytes, new Uint8Array(5).fill(0xab));
    assert.deepEqual(seen, [5]);
  });

  test("a command the registry lacks answers TPM_RC_COMMAND_CODE", async () => {
    const { tpm } = await startedSim(registry(lifecycle));
    assert.equal(await rcOf(tpm.execute(GetRandom, { bytesRequested: 1 })), TPM_RC.COMMAND_CODE);
  });
});

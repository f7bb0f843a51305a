/**
 * The client's own behaviour, against a real swtpm: one command in flight however many are issued
 * at once, and TPM_RC_RETRY / YIELDED / TESTING answered by resending the same bytes. The retry
 * cases put a fault injector in front of the real transport: it answers the first attempts itself
 * with the warning, then lets the command through to swtpm.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { Tpm } from "../../src/tpm/client.ts";
import { GetRandom, PCR_Read } from "../../src/tpm/commands.ts";
import { TPM_ALG, TPM_RC } from "../../src/tpm/constants.ts";
import { TpmResponseError } from "../../src/tpm/errors.ts";
import { encodeResponseFrame } from "../../src/tpm/frame.ts";
import { pcrSelection } from "../../src/tpm/pcrs.ts";
import type { Transport } from "../../src/tpm/transport/transport.ts";
import { openTransport } from "../../src/tpm/transport/uri.ts";
import { startSwtpm, type SwtpmInstance, swtpmSkipReason } from "../helpers/swtpm.ts";
import { WrappedTransport } from "../helpers/transport_wrappers.ts";

/** Answers the first `count` commands with `rc` itself; records every command it sees. */
class WarningInjector extends WrappedTransport {
  readonly seen: Uint8Array[] = [];
  constructor(inner: Transport, private readonly rc: number, private count: number) {
    super(inner);
  }
  send(command: Uint8Array): Promise<Uint8Array> {
    this.seen.push(command);
    if (this.count-- > 0) {
      return Promise.resolve(
        encodeResponseFrame({ rc: this.rc, handles: [], parameters: new Uint8Array(), auths: [] }),
      );
    }
    return this.inner.send(command);
  }
}

/** Counts commands in flight on the real transport. */
class InFlightProbe extends WrappedTransport {
  inFlight = 0;
  maxInFlight = 0;
  async send(command: Uint8Array): Promise<Uint8Array> {
    this.maxInFlight = Math.max(this.maxInFlight, ++this.inFlight);
    try {
      return await this.inner.send(command);
    } finally {
      this.inFlight--;
    }
  }
}

describe("Tpm client", { skip: swtpmSkipReason() }, () => {
  let swtpm: SwtpmInstance;
  before(async () => {
    swtpm = await startSwtpm({ transport: "tcp" });
  });
  after(async () => {
    await swtpm?.stop();
  });

  test("commands issued together go one at a time and each gets its own answer", async () => {
    const probe = new InFlightProbe(openTransport(swtpm.uri));
    const tpm = new Tpm(probe);
    try {
      const sizes = Array.from({ length: 40 }, (_, i) => 1 + (i % 32));
      const results = await Promise.all([
        ...sizes.map((n) => tpm.execute(GetRandom, { bytesRequested: n })),
        tpm.execute(PCR_Read, { pcrSelectionIn: [pcrSelection(TPM_ALG.SHA256, [0, 1, 2])] }),
      ]);
      assert.equal(probe.maxInFlight, 1);
      sizes.forEach((n, i) => assert.equal((results[i] as { randomBytes: Uint8Array }).randomBytes.length, n));
      assert.equal((results[40] as { pcrValues: Uint8Array[] }).pcrValues.length, 3);
    } finally {
      await tpm.close();
    }
  });

  test("a failed command does not stop the queue", async () => {
    const tpm = new Tpm(openTransport(swtpm.uri));
    try {
      const bad = tpm.execute(PCR_Read, { pcrSelectionIn: [pcrSelection(0x0099, [0])] });
      const good = tpm.execute(GetRandom, { bytesRequested: 4 });
      await assert.rejects(bad, TpmResponseError);
      assert.equal((await good).randomBytes.length, 4);
    } finally {
      await tpm.close();
    }
  });

  for (
    const [name, rc] of [["RETRY", TPM_RC.RETRY], ["YIELDED", TPM_RC.YIELDED], ["TESTING", TPM_RC.TESTING]] as const
  ) {
    test(`TPM_RC_${name} is retried with the same bytes`, async () => {
      const injector = new WarningInjector(openTransport(swtpm.uri), rc, 2);
      const tpm = new Tpm(injector, { retryDelayMs: 1 });
      try {
        const r = await tpm.execute(GetRandom, { bytesRequested: 16 });
        assert.equal(r.randomBytes.length, 16);
        assert.equal(injector.seen.length, 3);
        assert.deepEqual(injector.seen[1], injector.seen[0]);
        assert.deepEqual(injector.seen[2], injector.seen[0]);
      } finally {
        await tpm.close();
      }
    });
  }

  test("retries stop after maxAttempts with the warning named", async () => {
    const injector = new WarningInjector(openTransport(swtpm.uri), TPM_RC.RETRY, 100);
    const tpm = new Tpm(injector, { retryDelayMs: 1, maxAttempts: 4 });
    try {
      await assert.rejects(tpm.execute(GetRandom, { bytesRequested: 16 }), {
        name: "TpmResponseError",
        message: /^TPM2_GetRandom failed: TPM_RC_RETRY/,
      });
      assert.equal(injector.seen.length, 4);
    } finally {
      await tpm.close();
    }
  });

  test("other errors are not retried", async () => {
    const injector = new WarningInjector(openTransport(swtpm.uri), TPM_RC.OBJECT_MEMORY, 1);
    const tpm = new Tpm(injector, { retryDelayMs: 1 });
    try {
      await assert.rejects(tpm.execute(GetRandom, { bytesRequested: 16 }), /OBJECT_MEMORY/);
      assert.equal(injector.seen.length, 1);
    } finally {
      await tpm.close();
    }
  });
});

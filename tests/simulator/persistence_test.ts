/**
 * The simulator's state across restarts: the same EKs come back from the state file, a saved AK
 * loads again, a seed reproduces a TPM, and a damaged state file is an error, never a new TPM.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openSimulator, simulatorTransport, STATE_FILE } from "../../simulator/index.ts";
import { StateFileError } from "../../simulator/state_file.ts";
import { createAk, loadAk, type SavedAk } from "../../src/tpm/ak.ts";
import { Tpm } from "../../src/tpm/client.ts";
import { Shutdown, Startup } from "../../src/tpm/commands.ts";
import { TPM_ALG, TPM_RH, TPM_SU } from "../../src/tpm/constants.ts";
import { createEk, persistentEk, releaseEk } from "../../src/tpm/ek.ts";
import { EK_TEMPLATES } from "../../src/tpm/templates.ts";
import { createPrimary, flush } from "../../src/tpm/objects.ts";
import { quote } from "../../src/tpm/quote.ts";
import { toHex } from "../../src/util/encoding.ts";

async function session(dir: string | undefined, seed?: Uint8Array) {
  const opened = await openSimulator({ ...(dir ? { stateDir: dir } : {}), ...(seed ? { seed } : {}) });
  const tpm = new Tpm(simulatorTransport(opened.engine));
  await tpm.execute(Startup, { startupType: TPM_SU.CLEAR });
  return { ...opened, tpm };
}

async function ekNames(tpm: Tpm): Promise<string[]> {
  const out: string[] = [];
  for (const alg of ["rsa", "ecc"] as const) {
    const ek = await createEk(tpm, alg);
    out.push(toHex(ek.name));
    await releaseEk(tpm, ek);
  }
  return out;
}

test("EKs and a saved AK survive a restart from the state file", async () => {
  const dir = mkdtempSync(join(tmpdir(), "keylime-ts-sim-"));
  try {
    const first = await session(dir);
    assert.equal(first.manufactured, true);
    assert.equal(statSync(join(dir, STATE_FILE)).mode & 0o777, 0o600, "the state holds seeds: 0600");
    const names = await ekNames(first.tpm);
    const ek = await createEk(first.tpm, "rsa");
    const saved: SavedAk = await createAk(first.tpm, ek, {});
    await releaseEk(first.tpm, ek);
    await first.tpm.execute(Shutdown, { shutdownType: TPM_SU.CLEAR });
    await first.engine.close();

    const second = await session(dir);
    assert.equal(second.manufactured, false);
    assert.deepEqual(await ekNames(second.tpm), names);
    const ek2 = await createEk(second.tpm, "rsa");
    const ak = await loadAk(second.tpm, ek2, saved);
    const q = await quote(second.tpm, ak, { nonce: new Uint8Array([1]), pcrs: [16], hashAlg: TPM_ALG.SHA256 });
    assert.equal(q.attestation.clockInfo.resetCount, 2, "two TPM Resets: one per start");
    assert.equal(q.attestation.clockInfo.safe, true, "the first run shut down in order");
    await flush(second.tpm, ak.handle);
    await releaseEk(second.tpm, ek2);
    await second.engine.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a seed reproduces the TPM; without one, TPMs differ", async () => {
  const seed = new Uint8Array(32).fill(0x42);
  const a = await session(undefined, seed);
  const b = await session(undefined, seed);
  const c = await session(undefined);
  assert.deepEqual(await ekNames(a.tpm), await ekNames(b.tpm));
  assert.notDeepEqual(await ekNames(a.tpm), await ekNames(c.tpm));
});

test("a damaged or foreign state file is an error that says so, never a new TPM", async () => {
  const dir = mkdtempSync(join(tmpdir(), "keylime-ts-sim-"));
  try {
    const s = await session(dir);
    await s.engine.close();
    const path = join(dir, STATE_FILE);
    const good = readFileSync(path, "utf8");
    const cases: [string, string, RegExp][] = [
      ["truncated", good.slice(0, good.length / 2), /not JSON/],
      ["a flipped byte", good.replace(/"content":"\{/, '"content":"{ '), /checksum/],
      ["another version", good.replace('"version":1', '"version":99'), /version 99/],
      ["another program's JSON", JSON.stringify({ hello: "world" }), /not a keylime-ts simulator state file/],
    ];
    for (const [what, text, message] of cases) {
      writeFileSync(path, text);
      await assert.rejects(openSimulator({ stateDir: dir }), (e) => {
        assert.ok(e instanceof StateFileError, `${what}: ${String(e)}`);
        assert.equal(e.code, "ERR_SIM_STATE");
        assert.match(e.message, message, what);
        return true;
      });
      assert.equal(readFileSync(path, "utf8"), text, `${what}: the file was left alone`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("the NULL hierarchy changes at TPM Reset only, not at Restart or Resume", async () => {
  const { engine, tpm } = await session(undefined);
  const nullPrimary = async () => {
    const k = await createPrimary(tpm, TPM_RH.NULL, EK_TEMPLATES.ecc);
    await flush(tpm, k.handle);
    return toHex(k.name);
  };
  const cycle = async (shutdown: number, startup: number) => {
    await tpm.execute(Shutdown, { shutdownType: shutdown });
    await engine.init();
    await tpm.execute(Startup, { startupType: startup });
  };
  const first = await nullPrimary();
  await cycle(TPM_SU.STATE, TPM_SU.STATE); // TPM Resume
  assert.equal(await nullPrimary(), first);
  await cycle(TPM_SU.STATE, TPM_SU.CLEAR); // TPM Restart
  assert.equal(await nullPrimary(), first);
  await cycle(TPM_SU.CLEAR, TPM_SU.CLEAR); // TPM Reset
  assert.notEqual(await nullPrimary(), first);
});

test("manufacturing provisions the RSA and P-256 EKs at 0x81010001 and 0x8101000a", async () => {
  const { tpm } = await session(undefined);
  for (const [alg, handle] of [["rsa", 0x81010001], ["ecc", 0x8101000a]] as const) {
    const persistent = await persistentEk(tpm, handle);
    const created = await createEk(tpm, alg);
    assert.deepEqual(persistent.name, created.name);
    await releaseEk(tpm, created);
  }
});

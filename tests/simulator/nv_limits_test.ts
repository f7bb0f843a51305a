/**
 * NV memory is finite, as on a real TPM: NV_DefineSpace and EvictControl answer TPM_RC_NV_SPACE once
 * the indices and persistent objects fill it, persistent objects stop at the number GetCapability
 * reports, and room for TPM_PT_HR_PERSISTENT_MIN objects is kept whatever the indices take.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { EvictControl } from "../../src/tpm/commands.ts";
import { TPM_PT, TPM_RC, TPM_RH } from "../../src/tpm/constants.ts";
import { getProperty } from "../../src/tpm/capabilities.ts";
import { EK_TEMPLATES } from "../../src/tpm/templates.ts";
import { nvDefine, nvUndefine } from "../../src/tpm/nv.ts";
import { createPrimary } from "../../src/tpm/objects.ts";
import type { Tpm } from "../../src/tpm/client.ts";
import { ALL_HANDLERS } from "../../simulator/handlers/all.ts";
import { NV_INDEX_MAX, NV_MEMORY_BYTES, PERSISTENT_MAX, PERSISTENT_MIN } from "../../simulator/nv_limits.ts";
import { rcOf, startedSim } from "../helpers/sim.ts";

const FIRST_INDEX = 0x01500000;
const FIRST_PERSISTENT = 0x81000100;

/** Define indices of `size` bytes until the TPM answers an error; returns how many fit and that error. */
async function fillWithIndices(
  tpm: Tpm,
  size: number,
  bound: number,
  first = FIRST_INDEX,
): Promise<{ defined: number; rc: number }> {
  for (let i = 0; i < bound; i++) {
    const rc = await rcOf(nvDefine(tpm, first + i, size)).catch(() => undefined);
    if (rc !== undefined) return { defined: i, rc };
  }
  throw new Error(`${bound} indices of ${size} bytes were all accepted`);
}

/** EvictControl of the loaded object to `handle`; the response code (0 on success). */
function persist(tpm: Tpm, object: number, handle: number): Promise<number> {
  return tpm.execute(EvictControl, { auth: TPM_RH.OWNER, objectHandle: object, persistentHandle: handle })
    .then(() => 0, (e) => rcOf(Promise.reject(e)));
}

test("NV_DefineSpace answers TPM_RC_NV_SPACE once NV is full, and defines again after an undefine", async () => {
  const { tpm } = await startedSim(ALL_HANDLERS);
  // The smallest index takes the most entries: the bound is what NV memory holds of them.
  const { defined, rc } = await fillWithIndices(tpm, 1, NV_MEMORY_BYTES / 100);
  assert.equal(rc, TPM_RC.NV_SPACE);
  assert.ok(defined > 100, `${defined} one-byte indices fit`);
  assert.equal(await getProperty(tpm, TPM_PT.HR_NV_INDEX), defined);
  await nvUndefine(tpm, FIRST_INDEX);
  await nvDefine(tpm, FIRST_INDEX, 1);
  assert.equal(await rcOf(nvDefine(tpm, FIRST_INDEX + defined, 1)), TPM_RC.NV_SPACE);
});

test("the largest indices fill NV after about NV memory / TPM_PT_NV_INDEX_MAX of them", async () => {
  const { tpm } = await startedSim(ALL_HANDLERS);
  assert.equal(await getProperty(tpm, TPM_PT.NV_INDEX_MAX), NV_INDEX_MAX);
  const { defined, rc } = await fillWithIndices(tpm, NV_INDEX_MAX, 1000);
  assert.equal(rc, TPM_RC.NV_SPACE);
  assert.ok(defined < NV_MEMORY_BYTES / NV_INDEX_MAX, `${defined} indices of ${NV_INDEX_MAX} bytes`);
  assert.ok(defined > NV_MEMORY_BYTES / NV_INDEX_MAX / 2, `${defined} indices of ${NV_INDEX_MAX} bytes`);
});

test("persistent objects stop at the number reported (HR_PERSISTENT_AVAIL), with TPM_RC_NV_SPACE", async () => {
  const { tpm } = await startedSim(ALL_HANDLERS);
  const key = await createPrimary(tpm, TPM_RH.OWNER, EK_TEMPLATES.ecc);
  const avail = await getProperty(tpm, TPM_PT.HR_PERSISTENT_AVAIL);
  assert.equal(avail, PERSISTENT_MAX);
  for (let i = 0; i < PERSISTENT_MAX; i++) assert.equal(await persist(tpm, key.handle, FIRST_PERSISTENT + i), 0);
  assert.equal(await getProperty(tpm, TPM_PT.HR_PERSISTENT_AVAIL), 0);
  assert.equal(await getProperty(tpm, TPM_PT.HR_PERSISTENT), PERSISTENT_MAX);
  assert.equal(await persist(tpm, key.handle, FIRST_PERSISTENT + PERSISTENT_MAX), TPM_RC.NV_SPACE);
  // Evicting one makes room for one.
  assert.equal(await persist(tpm, FIRST_PERSISTENT, FIRST_PERSISTENT), 0);
  assert.equal(await persist(tpm, key.handle, FIRST_PERSISTENT + PERSISTENT_MAX), 0);
});

test("indices leave room for TPM_PT_HR_PERSISTENT_MIN persistent objects", async () => {
  const { tpm } = await startedSim(ALL_HANDLERS);
  assert.equal(await getProperty(tpm, TPM_PT.HR_PERSISTENT_MIN), PERSISTENT_MIN);
  assert.equal((await fillWithIndices(tpm, NV_INDEX_MAX, 1000)).rc, TPM_RC.NV_SPACE);
  assert.equal((await fillWithIndices(tpm, 1, 1000, FIRST_INDEX + 0x1000)).rc, TPM_RC.NV_SPACE);
  const key = await createPrimary(tpm, TPM_RH.OWNER, EK_TEMPLATES.rsa);
  for (let i = 0; i < PERSISTENT_MIN; i++) assert.equal(await persist(tpm, key.handle, FIRST_PERSISTENT + i), 0);
});

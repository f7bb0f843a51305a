/**
 * attest's UEFI log check end to end, in process: the simulator's PCRs 0-7 extended with the events of a
 * crypto-agile log built here (sha1 and sha256 banks), the agent serving that log with its quotes, the
 * reference registrar; --uefi-log passes, then fails naming the PCR a later extension (not in the log)
 * changed. The log parser itself is checked against a real log and tpm2_eventlog in event_log_test.ts.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { attestAgent } from "../../src/attest/run.ts";
import type { AttestReport } from "../../src/attest/report.ts";
import type { AttestState } from "../../src/attest/state.ts";
import { readTenantTls } from "../../src/attest/tls_dir.ts";
import { ekTrustFrom } from "../../src/cli/attest.ts";
import {
  DEMO_UUID,
  type DemoAgent,
  extendPcr,
  type Machine,
  startDemoAgent,
  startMachine,
  startRegistrarIn,
  stopMachine,
  UEFI_LOG_FILE,
} from "../../src/cli/demo_world.ts";
import type { RunningRegistrar } from "../../src/registrar/server.ts";
import { TPM_ALG } from "../../src/tpm/constants.ts";
import { concat, hash } from "../../src/tpm/crypto.ts";
import { pcrExtend } from "../../src/tpm/pcrs.ts";

const enc = new TextEncoder();
const le32 = (n: number) => new Uint8Array(new Uint32Array([n]).buffer);
const le16 = (n: number) => new Uint8Array(new Uint16Array([n]).buffer);

/** TCG PC Client PFP §10.2: the SHA-1 format header with "Spec ID Event03", then TCG_PCR_EVENT2 records. */
function eventLog(events: { pcr: number; data: Uint8Array }[]): Uint8Array {
  const specId = concat(
    enc.encode("Spec ID Event03\0"),
    le32(0), // platformClass
    new Uint8Array([0, 2, 0, 2]), // specVersionMinor, specVersionMajor, specErrata, uintnSize
    le32(2),
    le16(TPM_ALG.SHA1),
    le16(20),
    le16(TPM_ALG.SHA256),
    le16(32),
    new Uint8Array([0]), // vendorInfoSize
  );
  const header = concat(le32(0), le32(3), new Uint8Array(20), le32(specId.length), specId);
  return concat(
    header,
    ...events.map((e) =>
      concat(
        le32(e.pcr),
        le32(1), // EV_POST_CODE
        le32(2),
        le16(TPM_ALG.SHA1),
        hash(TPM_ALG.SHA1, e.data),
        le16(TPM_ALG.SHA256),
        hash(TPM_ALG.SHA256, e.data),
        le32(e.data.length),
        e.data,
      )
    ),
  );
}

let dir: string;
let machine: Machine;
let registrar: RunningRegistrar;
let agent: DemoAgent;
let state: AttestState = {};

async function attest(): Promise<AttestReport> {
  const out = await attestAgent({
    registrar: `127.0.0.1:${registrar.tlsPort}`,
    tls: await readTenantTls(registrar.tlsDir),
    uuid: DEMO_UUID,
    ekTrust: await ekTrustFrom([machine.tpmCaDir]),
    uefiLog: true,
    state,
  });
  state = out.state;
  return out.report;
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "attest-uefi-"));
  machine = await startMachine(dir);
  const events = [0, 1, 2, 3, 4, 5, 6, 7, 7].map((pcr, i) => ({ pcr, data: enc.encode(`firmware event ${i}`) }));
  for (const e of events) {
    await pcrExtend(machine.tpm, e.pcr, [
      { hashAlg: TPM_ALG.SHA1, digest: hash(TPM_ALG.SHA1, e.data) },
      { hashAlg: TPM_ALG.SHA256, digest: hash(TPM_ALG.SHA256, e.data) },
    ]);
  }
  writeFileSync(join(dir, UEFI_LOG_FILE), eventLog(events));
  registrar = await startRegistrarIn(dir, machine.tpmCaDir);
  agent = await startDemoAgent(dir, machine, registrar);
});

after(async () => {
  await agent?.close();
  await registrar?.close();
  if (machine) await stopMachine(machine);
  await rm(dir, { recursive: true, force: true });
});

test("the UEFI log the agent serves replays to the quoted PCRs 0-7", async () => {
  const r = await attest();
  const uefi = r.checks.find((c) => c.id === "uefi-log")!;
  assert.equal(uefi.status, "pass", JSON.stringify(r.checks));
  assert.match(uefi.detail, /PCRs 0,1,2,3,4,5,6,7 match the log/);
  assert.match(r.checks.find((c) => c.id === "integrity-quote")!.detail, /UEFI log \d+ bytes/);
  assert.equal(r.ok, true);
});

test("a PCR extended outside the log fails the UEFI check naming it", async () => {
  await extendPcr(machine, 4, "not in the log");
  const r = await attest();
  const uefi = r.checks.find((c) => c.id === "uefi-log")!;
  assert.equal(uefi.status, "fail");
  assert.match(uefi.detail, /^PCR 4: the log gives [0-9a-f]{16}…, the quote has [0-9a-f]{16}…$/);
  assert.deepEqual(r.checks.filter((c) => c.status === "fail").map((c) => c.id), ["uefi-log"]);
});

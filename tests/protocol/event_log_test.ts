/**
 * The crypto-agile UEFI event log: a real log (tests/testdata/uefi-eventlog) parsed and replayed, every PCR
 * checked against tpm2_eventlog, the referee. PCR 0 is the exception the TCG profile explains: the log
 * starts with a StartupLocality event for locality 3 (PCR 0 starts at 0…03) and EV_NO_ACTION events are not
 * extended; tpm2-tools before 5.5 did neither (tpm2-software/tpm2-tools#3224, #3146), so for PCR 0 the test
 * checks that its figure is exactly that older computation and ours the profile's. Truncated and hostile
 * logs fail naming the offset.
 */
import { describe, test } from "node:test";
import fc from "fast-check";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { EV_NO_ACTION, EventLogError, parseEventLog, replayEventLog } from "../../src/protocol/event_log.ts";
import { TPM_ALG } from "../../src/tpm/constants.ts";
import { hash } from "../../src/tpm/crypto.ts";
import { toHex } from "../../src/util/encoding.ts";
import { requireTools } from "../helpers/swtpm.ts";

const FILE = join(import.meta.dirname!, "..", "testdata", "uefi-eventlog", "binary_bios_measurements");
const bytes = new Uint8Array(readFileSync(FILE));

/** tpm2_eventlog's final PCR values: {sha1: {0: hex}, sha256: {...}}. */
function referee(): Record<string, Record<string, string>> {
  const out = execFileSync("tpm2_eventlog", [FILE]).toString();
  const pcrs: Record<string, Record<string, string>> = {};
  let bank = "";
  for (const line of out.slice(out.lastIndexOf("\npcrs:")).split("\n")) {
    const b = /^ {2}(sha1|sha256|sha384|sha512):$/.exec(line);
    if (b) pcrs[bank = b[1]!] = {};
    const v = /^\s+(\d+)\s*:\s*0x([0-9A-Fa-f]+)$/.exec(line);
    if (v && bank) pcrs[bank]![v[1]!] = v[2]!.toLowerCase();
  }
  return pcrs;
}

describe("UEFI event log", () => {
  const log = parseEventLog(bytes);

  test("parses the Spec ID banks and every event", () => {
    assert.deepEqual([...log.banks], [[TPM_ALG.SHA1, 20], [TPM_ALG.SHA256, 32]]);
    assert.equal(log.events.length, 120);
    assert.equal(log.events[0]!.type, EV_NO_ACTION);
    assert.equal(new TextDecoder().decode(log.events[0]!.data.subarray(0, 15)), "StartupLocality");
  });

  test("the replay gives tpm2_eventlog's values in both banks", { skip: requireTools("tpm2_eventlog") }, () => {
    const ref = referee();
    for (const [name, alg] of [["sha1", TPM_ALG.SHA1], ["sha256", TPM_ALG.SHA256]] as const) {
      const ours = replayEventLog(log, alg);
      assert.deepEqual([...ours.keys()].sort((a, b) => a - b), Object.keys(ref[name]!).map(Number));
      for (const [pcr, value] of ours) {
        if (pcr === 0) continue;
        assert.equal(toHex(value), ref[name]![String(pcr)], `${name} PCR ${pcr}`);
      }
      // PCR 0: ours starts at the locality and skips EV_NO_ACTION; the referee's older rule starts at zero
      // and extends every event of PCR 0.
      const size = alg === TPM_ALG.SHA1 ? 20 : 32;
      const older = log.events.filter((e) => e.pcr === 0)
        .reduce<Uint8Array>((v, e) => hash(alg, v, e.digests.get(alg)!), new Uint8Array(size));
      const profile = log.events.filter((e) => e.pcr === 0 && e.type !== EV_NO_ACTION)
        .reduce<Uint8Array>((v, e) => hash(alg, v, e.digests.get(alg)!), new Uint8Array(size).fill(3, size - 1));
      assert.equal(toHex(older), ref[name]!["0"]);
      assert.deepEqual(ours.get(0), profile);
    }
  });

  test("known sha256 PCR 0 (locality 3) and PCR 7", () => {
    const v = replayEventLog(log, TPM_ALG.SHA256);
    assert.equal(toHex(v.get(0)!), "0ee9a7feba8f4172f1a7451594aa5731665a4d353ac61814042ce107a00742f2");
    assert.equal(toHex(v.get(7)!), "741fd028c51b4d2fbdcc7f28014cc758d17ccc1fe2ea7ca17b0e8009480a557c");
  });

  test("a bank the log does not have is refused", () => {
    assert.throws(() => replayEventLog(log, TPM_ALG.SHA384), /no sha384 bank \(it has sha1, sha256\)/);
  });

  test("truncated and hostile logs fail naming the offset, never crash", () => {
    for (const cut of [0, 3, 40, 80, 200, bytes.length - 1]) {
      assert.throws(() => parseEventLog(bytes.subarray(0, cut)), EventLogError, `cut at ${cut}`);
    }
    const notAgile = bytes.slice();
    notAgile[32] = 0x41; // inside "Spec ID Event03"
    assert.throws(() => parseEventLog(notAgile), /not a "Spec ID Event03"/);
    const hugeEvent = bytes.slice();
    // The first TCG_PCR_EVENT2's eventSize, after pcrIndex, type, count and two digests.
    const first = 32 + new DataView(bytes.buffer).getUint32(28, true);
    new DataView(hugeEvent.buffer).setUint32(first + 12 + 2 + 20 + 2 + 32, 0xffffffff, true);
    assert.throws(() => parseEventLog(hugeEvent), /eventSize 4294967295 is larger than/);
    const badPcr = bytes.slice();
    new DataView(badPcr.buffer).setUint32(first, 99, true);
    assert.throws(() => parseEventLog(badPcr), new RegExp(`byte ${first}: pcrIndex 99 is not a PCR 0-23`));
  });
});

test("any corruption of the real log parses or fails with EventLogError, never anything else", () => {
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.nat(bytes.length - 1), fc.integer({ min: 0, max: 255 })), { maxLength: 8 }),
      fc.nat(bytes.length),
      (flips, cut) => {
        const b = bytes.slice(0, cut);
        for (const [at, v] of flips) if (at < b.length) b[at] = v;
        try {
          const log = parseEventLog(b);
          for (const alg of log.banks.keys()) replayEventLog(log, alg);
        } catch (e) {
          if (!(e instanceof EventLogError)) throw e;
        }
      },
    ),
    { numRuns: 300 },
  );
});

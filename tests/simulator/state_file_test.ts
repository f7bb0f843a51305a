/**
 * The state file's content is checked entry by entry on load: an edit that keeps the checksum
 * consistent (anyone can recompute a SHA-256) but breaks a field is refused with the entry and the
 * field named, instead of loading and then failing commands with TPM_RC_FAILURE.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openSimulator, STATE_FILE } from "../../simulator/index.ts";
import { parseState, StateFileError } from "../../simulator/state_file.ts";

let dir: string;
let good: string;
before(async () => {
  dir = mkdtempSync(join(tmpdir(), "keylime-ts-sim-state-"));
  const s = await openSimulator({ stateDir: dir, seed: new Uint8Array(32).fill(7) });
  await s.engine.close();
  good = readFileSync(join(dir, STATE_FILE), "utf8");
});
after(() => rmSync(dir, { recursive: true, force: true }));

type Json = Record<string, unknown>;

/** The state file with its content edited and the checksum made to match again. */
function edited(edit: (content: Json) => void): string {
  const outer = JSON.parse(good);
  const content = JSON.parse(outer.content);
  edit(content);
  outer.content = JSON.stringify(content);
  outer.sha256 = createHash("sha256").update(outer.content).digest("hex");
  return JSON.stringify(outer);
}

/** The value saved under `key` in a tagged map ({$map: [[k, v], ...]}). */
function entry(m: unknown, key: number | string): Json {
  const e = (m as { $map: [unknown, Json][] }).$map.find(([k]) => k === key);
  assert.ok(e, `entry ${key}`);
  return e[1];
}

const EK_RSA = 0x81010001;
const EK_CERT_RSA = 0x01c00002;

function rejects(text: string, message: RegExp): void {
  assert.throws(() => parseState(text, "tpm-state.json"), (e: unknown) => {
    assert.ok(e instanceof StateFileError, String(e));
    assert.equal(e.code, "ERR_SIM_STATE");
    assert.match(e.message, message);
    return true;
  });
}

test("the state a run wrote checks out", () => {
  const p = parseState(good);
  assert.equal(p.persistent.size, 2);
  assert.equal(p.nv.size, 2);
});

test("a byte field of a persistent object replaced by an object: refused, naming the object and the field", async () => {
  const text = edited((c) => (entry(c.persistent, EK_RSA).seedValue = { hello: "world" }));
  rejects(text, /persistent\[0x81010001\]\.seedValue: not bytes/);
  // Through the front door too: an error, and the file left alone.
  const path = join(dir, STATE_FILE);
  writeFileSync(path, text);
  try {
    await assert.rejects(openSimulator({ stateDir: dir }), /persistent\[0x81010001\]\.seedValue/);
    assert.equal(readFileSync(path, "utf8"), text);
  } finally {
    writeFileSync(path, good);
  }
});

test("counters out of range: a clock of 10^40, a negative or fractional count", () => {
  rejects(edited((c) => (c.clock = { $big: "1" + "0".repeat(40) })), /clock: not a millisecond count/);
  rejects(edited((c) => (c.resetCount = -1)), /resetCount: not a count/);
  rejects(edited((c) => (c.failedTries = 1.5)), /failedTries: not a count/);
  rejects(edited((c) => (c.maxTries = "32")), /maxTries: not a count/);
});

test("public areas are checked field by field against their TPM declarations", () => {
  rejects(
    edited((c) => ((entry(c.persistent, EK_RSA).public as Json).nameAlg = "sha256")),
    /persistent\[0x81010001\]\.public\.nameAlg: not a 16-bit integer/,
  );
  rejects(
    edited((c) => (((entry(c.persistent, EK_RSA).public as Json).parameters as Json).keyBits = "2048")),
    /persistent\[0x81010001\]\.public\.parameters\.keyBits: not a 16-bit integer/,
  );
  rejects(
    edited((c) => ((entry(c.persistent, EK_RSA).public as Json).type = 0x99)),
    /persistent\[0x81010001\]\.public/,
  );
  rejects(
    edited((c) => ((entry(c.nv, EK_CERT_RSA).public as Json).authPolicy = [1, 2])),
    /nv\[0x01c00002\]\.public\.authPolicy: not bytes/,
  );
});

test("entries must agree with their keys and with themselves", () => {
  rejects(
    edited((c) => ((entry(c.nv, EK_CERT_RSA).public as Json).dataSize = 7)),
    /nv\[0x01c00002\]\.data: \d+ bytes, but the index holds 7/,
  );
  rejects(
    edited((c) => ((entry(c.nv, EK_CERT_RSA).public as Json).nvIndex = 0x01c00003)),
    /nv\[0x01c00002\]\.public\.nvIndex: 0x01c00003 is not the index it is saved under/,
  );
  rejects(
    edited((c) => ((c.persistent as { $map: unknown[][] }).$map[0]![0] = 0x80000000)),
    /persistent\[2147483648\]: not a persistent handle/,
  );
  rejects(edited((c) => (entry(c.persistent, EK_RSA).hierarchy = 0x40000007)), /\.hierarchy: not owner/);
  rejects(
    edited((c) => ((entry(c.persistent, EK_RSA).privateJwk as Json).p = "not/base64url")),
    /persistent\[0x81010001\]\.privateJwk\.p: not base64url/,
  );
  rejects(
    edited((c) => (((entry(c.persistent, EK_RSA).public as Json).unique as { $hex: string }).$hex = "00".repeat(256))),
    /persistent\[0x81010001\]\.privateJwk: not the key of the public area/,
  );
  rejects(edited((c) => (c.owner = { seed: { $hex: "00" } })), /owner\.seed: 1 bytes, fewer than 32/);
  rejects(edited((c) => (c.nv = [])), /nv: not a map/);
});

test("a version that is not a number says so, instead of 'version 1; this build reads version 1'", () => {
  const text = good.replace('"version":1', '"version":"1"');
  rejects(text, /format version "1", which is not a number/);
  assert.doesNotMatch(
    (() => {
      try {
        parseState(text);
      } catch (e) {
        return (e as Error).message;
      }
      return "";
    })(),
    /has format version 1;/,
  );
  rejects(good.replace('"version":1', '"version":99'), /format version 99; this build reads version 1/);
});

/**
 * The bootstrap key service: the tenant's keys/ukey and the verifier's keys/vkey in either order, keys/verify
 * before and after K, the payload stored in the background only when payloads may run, and refusals.
 */
import { afterEach, beforeEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHmac, generateKeyPairSync } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { zipSync } from "fflate";
import { BootstrapKeys, type BootstrapKeysOptions } from "../../src/agent/keys.ts";
import { prepareSecureDir, type StoredPayload } from "../../src/agent/payload_store.ts";
import { importNkPrivateKey, importNkPublicKey, PayloadError, tenantKeyRequests } from "../../src/protocol/payload.ts";
import { buildPayloadZip } from "../../src/protocol/payload_zip_build.ts";
import { recordingLog } from "../helpers/agent_log.ts";
import { defaultStoreOptions, deliverKeys } from "../helpers/payload_delivery.ts";

const UUID = "d432fbb3-d2f1-4a97-9ef7-75bd81c00000";
const enc = (s: string) => new TextEncoder().encode(s);
const nk = generateKeyPairSync("rsa", { modulusLength: 2048 });
const nkPub = await importNkPublicKey(nk.publicKey);
const nkPriv = await importNkPrivateKey(nk.privateKey);

let root: string;
let log: ReturnType<typeof recordingLog>;
let stored: StoredPayload[];
let opts: BootstrapKeysOptions;

beforeEach(async () => {
  root = mkdtempSync(join(tmpdir(), "keys-"));
  log = recordingLog();
  stored = [];
  const secure = await prepareSecureDir({ keylimeDir: root, secureSize: "1m", log, mount: false });
  opts = {
    uuid: UUID,
    nk: nkPriv,
    runPayloads: true,
    log,
    onPayloadStored: (s) => stored.push(s),
    store: defaultStoreOptions(secure.path, log),
  };
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

const unzipped = () => join(opts.store.secureDir, "unzipped");

describe("tenant and verifier halves", () => {
  for (const order of ["ukey first", "vkey first"]) {
    test(`${order}: K derived, keys/verify answers, the payload is stored and run`, async () => {
      const zip = buildPayloadZip({ "autorun.sh": enc("echo delivered > delivered.txt") });
      const { key, ukey, vkey } = await tenantKeyRequests(nkPub, UUID, { payload: zip });
      const keys = new BootstrapKeys(opts);
      assert.equal(keys.verify("challenge1"), undefined);
      if (order === "ukey first") {
        await keys.ukey(ukey);
        assert.equal(keys.verify("challenge1"), undefined);
        await keys.vkey(vkey);
      } else {
        await keys.vkey(vkey);
        await keys.ukey(ukey);
      }
      assert.equal(keys.verify("challenge1"), createHmac("sha384", key.k).update("challenge1").digest("hex"));
      await keys.idle();
      assert.equal(stored.length, 1);
      assert.equal(readFileSync(join(unzipped(), "delivered.txt"), "utf8"), "delivered\n");
      assert.deepEqual(new Uint8Array(readFileSync(join(unzipped(), "derived_tci_key"))), key.k);
      assert.ok(log.lines.includes("INFO Successfully derived symmetric payload decryption key"));
    });
  }

  test("without a payload only K is derived; nothing is written", async () => {
    const keys = new BootstrapKeys(opts);
    await deliverKeys(keys, await tenantKeyRequests(nkPub, UUID));
    assert.ok(keys.key);
    assert.deepEqual(readdirSync(opts.store.secureDir), []);
  });

  test("payloads are not run without mTLS (or enable_insecure_payload)", async () => {
    const keys = new BootstrapKeys({ ...opts, runPayloads: false });
    await deliverKeys(keys, await tenantKeyRequests(nkPub, UUID, { payload: buildPayloadZip({ a: enc("a") }) }));
    assert.ok(keys.key);
    assert.ok(!existsSync(unzipped()));
    assert.ok(log.lines.some((l) => l.includes("payloads cannot be deployed")));
  });
});

describe("refusals", () => {
  test("a wrong auth_tag derives nothing and writes nothing", async () => {
    const keys = new BootstrapKeys(opts);
    await deliverKeys(keys, await tenantKeyRequests(nkPub, "someone-else", { payload: enc("x") }));
    assert.equal(keys.key, undefined);
    assert.equal(keys.verify("abc"), undefined);
    assert.deepEqual(readdirSync(opts.store.secureDir), []);
  });

  test("U for another NK, or a malformed auth_tag, is a PayloadError", async () => {
    const other = await importNkPublicKey(generateKeyPairSync("rsa", { modulusLength: 2048 }).publicKey);
    const forOther = await tenantKeyRequests(other, UUID);
    const keys = new BootstrapKeys(opts);
    await assert.rejects(keys.ukey(forOther.ukey), (e) => e instanceof PayloadError && e.reason === "key-decrypt");
    await assert.rejects(keys.vkey(forOther.vkey), (e) => e instanceof PayloadError && e.reason === "key-decrypt");
    const mine = await tenantKeyRequests(nkPub, UUID);
    await assert.rejects(
      keys.ukey({ ...mine.ukey, auth_tag: "abcd" }),
      (e) => e instanceof PayloadError && e.reason === "auth-tag",
    );
  });

  test("an unsafe payload zip is logged and writes nothing", async () => {
    const keys = new BootstrapKeys(opts);
    await deliverKeys(keys, await tenantKeyRequests(nkPub, UUID, { payload: zipSync({ "../x": enc("x") }) }));
    assert.ok(keys.key);
    assert.deepEqual(readdirSync(opts.store.secureDir), []);
    assert.ok(log.lines.some((l) => /WARN Failed to run encrypted payload: payload zip entry "\.\.\/x"/.test(l)));
  });
});

/** The registrar's SQLite store: records survive a reopen, a failed transaction leaves nothing, versions are checked. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  type AgentRecord,
  memoryStore,
  openSqliteStore,
  SCHEMA_VERSION,
  StoreError,
} from "../../src/registrar/store.ts";

const record = (id: string, over: Partial<AgentRecord> = {}): AgentRecord => ({
  agent_id: id,
  aik_tpm: new Uint8Array([1, 2, 3]),
  ek_tpm: new Uint8Array([4, 5]),
  ekcert: null,
  ek_trust: "absent",
  key: "a2V5",
  active: false,
  ip: "127.0.0.1",
  port: 9002,
  mtls_cert: "disabled",
  regcount: 1,
  ...over,
});

function withDir(fn: (dir: string) => Promise<void>) {
  return async () => {
    const dir = mkdtempSync(join(tmpdir(), "registrar-store-"));
    try {
      await fn(dir);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
}

test(
  "SQLite: a reopened file has every record, field for field",
  withDir(async (dir) => {
    const file = join(dir, "r.sqlite");
    let store = await openSqliteStore(file);
    const a = record("a", {
      ekcert: new Uint8Array([9, 9]),
      ek_trust: "untrusted",
      active: true,
      port: null,
      ip: null,
    });
    store.transaction((tx) => {
      tx.put(a);
      tx.put(record("b"));
      tx.put(record("c"));
    });
    store.transaction((tx) => assert.equal(tx.delete("c"), true));
    store.close();
    store = await openSqliteStore(file);
    assert.deepEqual(store.listIds(), ["a", "b"]);
    assert.deepEqual(store.get("a"), a);
    assert.deepEqual(store.get("b"), record("b"));
    store.close();
  }),
);

test(
  "a transaction that throws writes nothing (SQLite and memory)",
  withDir(async (dir) => {
    for (const store of [await openSqliteStore(join(dir, "r.sqlite")), memoryStore()]) {
      store.transaction((tx) => tx.put(record("kept")));
      assert.throws(() =>
        store.transaction((tx) => {
          tx.put(record("new"));
          tx.delete("kept");
          throw new Error("refused");
        }), /refused/);
      assert.deepEqual(store.listIds(), ["kept"]);
      store.close();
    }
  }),
);

test(
  "a transaction may not await (it would commit early)",
  withDir(async (dir) => {
    const store = await openSqliteStore(join(dir, "r.sqlite"));
    assert.throws(() => store.transaction((tx) => Promise.resolve(tx.put(record("x")))), StoreError);
    assert.deepEqual(store.listIds(), []);
    store.close();
  }),
);

test(
  "a file from a newer schema is refused, not damaged",
  withDir(async (dir) => {
    const file = join(dir, "r.sqlite");
    const { DatabaseSync } = await import("node:sqlite");
    const db = new DatabaseSync(file);
    db.exec(`PRAGMA user_version = ${SCHEMA_VERSION + 1}`);
    db.close();
    await assert.rejects(openSqliteStore(file), /schema version 2, newer than this registrar's 1/);
  }),
);

test(
  "the schema refuses what the model does not allow",
  withDir(async (dir) => {
    const store = await openSqliteStore(join(dir, "r.sqlite"));
    assert.throws(() => store.transaction((tx) => tx.put(record("x".repeat(81)))), /CHECK constraint/);
    store.close();
  }),
);

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
import { sampleAgentRecord } from "../helpers/registrar_record.ts";

const record = sampleAgentRecord;

/** A record after an activation with a certified NK (the values are only stored, not checked, here). */
const certified = (id: string): AgentRecord =>
  record(id, {
    active: true,
    transport_key: "-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----\n",
    certify_nonce: { nonce: new Uint8Array(32).fill(7), issued_at: 1_700_000_000_123, used: true },
    nk_binding: {
      nk_tpm: new Uint8Array([1, 1]),
      nk_attest: new Uint8Array([2, 2]),
      nk_sign: new Uint8Array([3, 3]),
      nonce: new Uint8Array(32).fill(7),
      verified_at: "2026-12-02T00:00:00.000Z",
    },
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
      tx.put(certified("d"));
      tx.put(record("e", { certify_nonce: { nonce: new Uint8Array(32), issued_at: 5, used: false } }));
    });
    store.transaction((tx) => assert.equal(tx.delete("c"), true));
    store.close();
    store = await openSqliteStore(file);
    assert.deepEqual(store.listIds(), ["a", "b", "d", "e"]);
    assert.deepEqual(store.get("a"), a);
    assert.deepEqual(store.get("b"), record("b"));
    assert.deepEqual(store.get("d"), certified("d"));
    assert.deepEqual(store.get("e")!.certify_nonce, { nonce: new Uint8Array(32), issued_at: 5, used: false });
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
    await assert.rejects(
      openSqliteStore(file),
      new RegExp(`schema version ${SCHEMA_VERSION + 1}, newer than this registrar's ${SCHEMA_VERSION}`),
    );
  }),
);

test(
  "a schema 1 file (before the NK certify extension) is migrated: its records kept, the new fields empty",
  withDir(async (dir) => {
    const file = join(dir, "r.sqlite");
    const { DatabaseSync } = await import("node:sqlite");
    const db = new DatabaseSync(file);
    db.exec(`CREATE TABLE registrarmain (
        agent_id TEXT PRIMARY KEY NOT NULL CHECK (length(agent_id) <= 80),
        aik_tpm BLOB NOT NULL, ek_tpm BLOB NOT NULL, ekcert BLOB,
        ek_trust TEXT NOT NULL CHECK (ek_trust IN ('trusted', 'untrusted', 'absent')),
        key TEXT NOT NULL, active INTEGER NOT NULL, ip TEXT, port INTEGER, mtls_cert TEXT, regcount INTEGER NOT NULL
      ) STRICT; PRAGMA user_version = 1;`);
    db.prepare(
      "INSERT INTO registrarmain VALUES (?, ?, ?, NULL, 'absent', 'a2V5', 1, '127.0.0.1', 9002, 'disabled', 1)",
    )
      .run("old", new Uint8Array([1, 2, 3]), new Uint8Array([4, 5]));
    db.close();
    const store = await openSqliteStore(file);
    assert.deepEqual(store.get("old"), record("old", { active: true }));
    store.transaction((tx) => tx.put(certified("new")));
    assert.deepEqual(store.get("new"), certified("new"));
    store.close();
    const again = new DatabaseSync(file);
    assert.equal(Number((again.prepare("PRAGMA user_version").get() as { user_version: number }).user_version), 2);
    again.close();
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

test(
  "update writes what changed over the record read, as put would, and nothing for another or a missing agent",
  withDir(async (dir) => {
    for (const store of [await openSqliteStore(join(dir, "r.sqlite")), memoryStore()]) {
      store.transaction((tx) => {
        tx.put(record("a", { certify_nonce: { nonce: new Uint8Array(32).fill(7), issued_at: 1, used: false } }));
        tx.put(record("b"));
      });
      const after = { ...certified("a"), regcount: 5 };
      store.transaction((tx) => tx.update(tx.get("a")!, after));
      assert.deepEqual(store.get("a"), after);
      assert.deepEqual(store.get("b"), record("b"));
      // Nothing changed: nothing to write, and no error.
      store.transaction((tx) => tx.update(tx.get("a")!, after));
      assert.deepEqual(store.get("a"), after);
      store.close();
    }
    const sqlite = await openSqliteStore(join(dir, "r.sqlite"));
    assert.throws(() => sqlite.transaction((tx) => tx.update(tx.get("a")!, record("b"))), /cannot change agent_id/);
    assert.throws(
      () => sqlite.transaction((tx) => tx.update(record("gone"), record("gone", { active: true }))),
      /agent gone is not stored/,
    );
    assert.deepEqual(sqlite.get("b"), record("b"));
    sqlite.close();
  }),
);

test(
  "the file is the open store's own: a second store on it is refused, naming the file, until the first closes",
  withDir(async (dir) => {
    const file = join(dir, "r.sqlite");
    const first = await openSqliteStore(file);
    first.transaction((tx) => tx.put(record("a")));
    await assert.rejects(openSqliteStore(file), (e: Error) => {
      assert.ok(e instanceof StoreError);
      assert.match(e.message, /cannot open the registrar database .*r\.sqlite: database is locked/);
      return true;
    });
    assert.deepEqual(first.get("a"), record("a"));
    first.close();
    const second = await openSqliteStore(file);
    assert.deepEqual(second.get("a"), record("a"));
    second.close();
  }),
);

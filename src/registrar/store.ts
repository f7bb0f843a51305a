/**
 * The registrar's records (keylime.md §2, upstream's `registrarmain` table) and where they live: an
 * interface, a memory store for tests, and SQLite through node:sqlite (loaded by dynamic import, so nothing
 * on the agent's path needs a Node with node:sqlite). Every change runs in one transaction; node:sqlite is
 * synchronous, so a transaction is also atomic with respect to other requests of this process.
 */
import { sameBytes } from "../tpm/bytes.ts";

/** How the EK certificate stands against the trust store when it was registered. */
export type EkTrust = "trusted" | "untrusted" | "absent";

export interface AgentRecord {
  agent_id: string;
  /** TPM2B_PUBLIC bytes as the agent sent them. */
  aik_tpm: Uint8Array;
  ek_tpm: Uint8Array;
  /** DER of the EK certificate (the first of the chain the agent sent), or null. */
  ekcert: Uint8Array | null;
  /** Beyond upstream: whether `ekcert` chained to the trust store (`untrusted` only with --allow-untrusted-ek). */
  ek_trust: EkTrust;
  /** base64(challenge): the HMAC key for the auth_tag. */
  key: string;
  active: boolean;
  ip: string | null;
  port: number | null;
  /** PEM or "disabled". */
  mtls_cert: string | null;
  regcount: number;
  /** Beyond upstream (spec/nk-certify.md): PEM SPKI of the NK when mtls_cert is "disabled". */
  transport_key: string | null;
  /** The nonce of the last registration with nk_certify, until its activation. */
  certify_nonce: CertifyNonce | null;
  /** The NK's certification, as verified at activation. */
  nk_binding: NkBinding | null;
}

export interface CertifyNonce {
  /** 32 random bytes. */
  nonce: Uint8Array;
  /** When it was issued, ms since the epoch. */
  issued_at: number;
  /** Single use: set by the first activation that presents it. */
  used: boolean;
}

export interface NkBinding {
  nk_tpm: Uint8Array;
  nk_attest: Uint8Array;
  nk_sign: Uint8Array;
  /** The certify nonce it was made over. */
  nonce: Uint8Array;
  /** ISO 8601 (UTC) time of the verification. */
  verified_at: string;
}

/** What a transaction may do. */
export interface StoreTx {
  get(agentId: string): AgentRecord | undefined;
  put(record: AgentRecord): void;
  /** Write `after` over `before`, the record as this transaction read it: only what changed is written. */
  update(before: AgentRecord, after: AgentRecord): void;
  delete(agentId: string): boolean;
}

export interface RegistrarStore {
  /** Run `fn` as one transaction: all its writes land, or (when it throws) none. */
  transaction<T>(fn: (tx: StoreTx) => T): T;
  get(agentId: string): AgentRecord | undefined;
  listIds(): string[];
  close(): void;
}

const copy = (r: AgentRecord): AgentRecord => ({
  ...r,
  certify_nonce: r.certify_nonce && { ...r.certify_nonce },
  nk_binding: r.nk_binding && { ...r.nk_binding },
});

/** Records in memory: for tests and benchmarks that measure everything but SQLite. */
export function memoryStore(): RegistrarStore {
  const rows = new Map<string, AgentRecord>();
  return {
    transaction<T>(fn: (tx: StoreTx) => T): T {
      const staged = new Map<string, AgentRecord | null>();
      const tx: StoreTx = {
        get: (id) => {
          const s = staged.get(id);
          if (s !== undefined) return s === null ? undefined : copy(s);
          const r = rows.get(id);
          return r && copy(r);
        },
        put: (r) => void staged.set(r.agent_id, copy(r)),
        update: (_before, after) => tx.put(after),
        delete: (id) => {
          const had = tx.get(id) !== undefined;
          staged.set(id, null);
          return had;
        },
      };
      const out = fn(tx);
      for (const [id, r] of staged) r === null ? rows.delete(id) : rows.set(id, r);
      return out;
    },
    get: (id) => {
      const r = rows.get(id);
      return r && copy(r);
    },
    listIds: () => [...rows.keys()].sort(),
    close: () => {},
  };
}

/** The schema this code writes; older files are migrated forward on open, newer ones refused. */
export const SCHEMA_VERSION = 2;

const COLUMNS = [
  "agent_id",
  "aik_tpm",
  "ek_tpm",
  "ekcert",
  "ek_trust",
  "key",
  "active",
  "ip",
  "port",
  "mtls_cert",
  "regcount",
  "transport_key",
  "certify_nonce",
  "certify_nonce_issued_at",
  "certify_nonce_used",
  "nk_tpm",
  "nk_attest",
  "nk_sign",
  "nk_nonce",
  "nk_verified_at",
] as const;

const MIGRATIONS: Record<number, string> = {
  1: `CREATE TABLE registrarmain (
        agent_id TEXT PRIMARY KEY NOT NULL CHECK (length(agent_id) <= 80),
        aik_tpm BLOB NOT NULL,
        ek_tpm BLOB NOT NULL,
        ekcert BLOB,
        ek_trust TEXT NOT NULL CHECK (ek_trust IN ('trusted', 'untrusted', 'absent')),
        key TEXT NOT NULL,
        active INTEGER NOT NULL,
        ip TEXT,
        port INTEGER,
        mtls_cert TEXT,
        regcount INTEGER NOT NULL
      ) STRICT`,
  // The NK certify extension (spec/nk-certify.md): the pending nonce and the verified binding.
  2: `ALTER TABLE registrarmain ADD COLUMN transport_key TEXT;
      ALTER TABLE registrarmain ADD COLUMN certify_nonce BLOB;
      ALTER TABLE registrarmain ADD COLUMN certify_nonce_issued_at INTEGER;
      ALTER TABLE registrarmain ADD COLUMN certify_nonce_used INTEGER;
      ALTER TABLE registrarmain ADD COLUMN nk_tpm BLOB;
      ALTER TABLE registrarmain ADD COLUMN nk_attest BLOB;
      ALTER TABLE registrarmain ADD COLUMN nk_sign BLOB;
      ALTER TABLE registrarmain ADD COLUMN nk_nonce BLOB;
      ALTER TABLE registrarmain ADD COLUMN nk_verified_at TEXT;`,
};

export class StoreError extends Error {
  readonly code = "ERR_REGISTRAR_STORE";
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "StoreError";
  }
}

type Row = Record<string, unknown>;

function fromRow(r: Row): AgentRecord {
  const bytes = (v: unknown) => (v == null ? null : new Uint8Array(v as Uint8Array));
  const nonce = bytes(r.certify_nonce);
  const nk = [bytes(r.nk_tpm), bytes(r.nk_attest), bytes(r.nk_sign), bytes(r.nk_nonce)] as const;
  return {
    agent_id: String(r.agent_id),
    aik_tpm: bytes(r.aik_tpm)!,
    ek_tpm: bytes(r.ek_tpm)!,
    ekcert: bytes(r.ekcert),
    ek_trust: r.ek_trust as EkTrust,
    key: String(r.key),
    active: Number(r.active) === 1,
    ip: r.ip == null ? null : String(r.ip),
    port: r.port == null ? null : Number(r.port),
    mtls_cert: r.mtls_cert == null ? null : String(r.mtls_cert),
    regcount: Number(r.regcount),
    transport_key: r.transport_key == null ? null : String(r.transport_key),
    certify_nonce: nonce && {
      nonce,
      issued_at: Number(r.certify_nonce_issued_at),
      used: Number(r.certify_nonce_used) === 1,
    },
    nk_binding: nk.every((b) => b !== null) && r.nk_verified_at != null
      ? { nk_tpm: nk[0]!, nk_attest: nk[1]!, nk_sign: nk[2]!, nonce: nk[3]!, verified_at: String(r.nk_verified_at) }
      : null,
  };
}

type Value = string | number | Uint8Array | null;

const sameValue = (a: Value, b: Value) =>
  a instanceof Uint8Array && b instanceof Uint8Array ? sameBytes(a, b) : a === b;

function toRow(r: AgentRecord): Value[] {
  return [
    r.agent_id,
    r.aik_tpm,
    r.ek_tpm,
    r.ekcert,
    r.ek_trust,
    r.key,
    r.active ? 1 : 0,
    r.ip,
    r.port,
    r.mtls_cert,
    r.regcount,
    r.transport_key,
    r.certify_nonce?.nonce ?? null,
    r.certify_nonce?.issued_at ?? null,
    r.certify_nonce ? (r.certify_nonce.used ? 1 : 0) : null,
    r.nk_binding?.nk_tpm ?? null,
    r.nk_binding?.nk_attest ?? null,
    r.nk_binding?.nk_sign ?? null,
    r.nk_binding?.nonce ?? null,
    r.nk_binding?.verified_at ?? null,
  ];
}

/**
 * How hard a commit holds, in WAL mode. "normal": a committed change survives a crash (or restart) of the
 * process; a power loss may take back the last commits (no fsync per commit). "full": it survives a power
 * loss too, at one fsync per change (registrations per second then follow the disk's fsync rate).
 */
export type StoreSync = "normal" | "full";

/**
 * node:sqlite, or a StoreError saying the registrar cannot run here: the armv7 executable's Node 20.11 has
 * no node:sqlite (docs/binary.md), and the registrar is the only part of the program that needs it.
 */
export async function loadSqlite(): Promise<typeof import("node:sqlite")> {
  try {
    return await import("node:sqlite");
  } catch (e) {
    const runtime = typeof process.versions.deno === "string"
      ? `Deno ${process.versions.deno}`
      : `Node ${process.version}`;
    throw new StoreError(
      `the registrar is not part of this build: it needs node:sqlite (Node >= 22.13 or Deno >= 2.2), and this ` +
        `runtime is ${runtime} (${(e as Error).message}); run the registrar from the x86_64 executable or from source`,
      { cause: e },
    );
  }
}

/**
 * Open (or create) the SQLite file (WAL journal). The registrar owns its file: exclusive locking, set before
 * WAL mode, keeps the WAL index in this process's memory and the file locked while it is open, so a
 * transaction takes no file locks of its own (seven fcntl calls fewer each), and a second registrar on the
 * same file is refused instead of sharing it.
 */
export async function openSqliteStore(path: string, sync: StoreSync = "normal"): Promise<RegistrarStore> {
  const sqlite = await loadSqlite();
  let db: InstanceType<typeof sqlite.DatabaseSync>;
  try {
    db = new sqlite.DatabaseSync(path);
    db.exec("PRAGMA busy_timeout = 5000; PRAGMA locking_mode = EXCLUSIVE;");
    db.exec(`PRAGMA journal_mode = WAL; PRAGMA synchronous = ${sync === "full" ? "FULL" : "NORMAL"};`);
    // Takes the lock now: a file another process holds is refused here, with the path.
    db.exec("BEGIN IMMEDIATE; COMMIT;");
  } catch (e) {
    throw new StoreError(`cannot open the registrar database ${path}: ${(e as Error).message}`, { cause: e });
  }
  const version = Number((db.prepare("PRAGMA user_version").get() as Row).user_version);
  if (version > SCHEMA_VERSION) {
    db.close();
    throw new StoreError(
      `${path} has schema version ${version}, newer than this registrar's ${SCHEMA_VERSION}; use a newer keylime-ts`,
    );
  }
  for (let v = version + 1; v <= SCHEMA_VERSION; v++) {
    db.exec("BEGIN IMMEDIATE");
    try {
      db.exec(MIGRATIONS[v]!);
      db.exec(`PRAGMA user_version = ${v}`);
      db.exec("COMMIT");
    } catch (e) {
      db.exec("ROLLBACK");
      db.close();
      throw new StoreError(`cannot migrate ${path} to schema version ${v}: ${(e as Error).message}`, { cause: e });
    }
  }

  const select = db.prepare(`SELECT ${COLUMNS.join(", ")} FROM registrarmain WHERE agent_id = ?`);
  const upsert = db.prepare(
    `INSERT OR REPLACE INTO registrarmain (${COLUMNS.join(", ")}) VALUES (${COLUMNS.map(() => "?").join(", ")})`,
  );
  const remove = db.prepare("DELETE FROM registrarmain WHERE agent_id = ?");
  const ids = db.prepare("SELECT agent_id FROM registrarmain ORDER BY agent_id");
  // Prepared once: db.exec would parse them again for every transaction.
  const [begin, commit, rollback] = ["BEGIN IMMEDIATE", "COMMIT", "ROLLBACK"].map((sql) => db.prepare(sql));
  /** UPDATE statements by the columns they set (an activation sets the same few each time). */
  const updates = new Map<string, ReturnType<typeof db.prepare>>();
  const get = (id: string) => {
    const r = select.get(id) as Row | undefined;
    return r && fromRow(r);
  };
  const tx: StoreTx = {
    get,
    put: (r) => void upsert.run(...toRow(r)),
    update: (before, after) => {
      if (before.agent_id !== after.agent_id) throw new StoreError("an update cannot change agent_id");
      // An UPDATE of the changed columns rewrites the row in place; INSERT OR REPLACE deletes and
      // reinserts it, its index entry too.
      const [old, row] = [toRow(before), toRow(after)];
      const changed = COLUMNS.flatMap((_, i) => sameValue(old[i]!, row[i]!) ? [] : [i]);
      if (!changed.length) return;
      const key = changed.join(",");
      let statement = updates.get(key);
      if (!statement) {
        const set = changed.map((i) => `${COLUMNS[i]} = ?`).join(", ");
        statement = db.prepare(`UPDATE registrarmain SET ${set} WHERE agent_id = ?`);
        updates.set(key, statement);
      }
      const done = statement.run(...changed.map((i) => row[i]!), after.agent_id);
      if (Number(done.changes) !== 1) throw new StoreError(`agent ${after.agent_id} is not stored: nothing to update`);
    },
    delete: (id) => Number(remove.run(id).changes) > 0,
  };
  let depth = 0;
  return {
    transaction<T>(fn: (tx: StoreTx) => T): T {
      if (depth > 0) throw new StoreError("transactions do not nest");
      depth++;
      begin!.run();
      try {
        const out = fn(tx);
        if (out instanceof Promise) throw new StoreError("a transaction must not await: it would commit early");
        commit!.run();
        return out;
      } catch (e) {
        rollback!.run();
        throw e;
      } finally {
        depth--;
      }
    },
    get,
    listIds: () => (ids.all() as Row[]).map((r) => String(r.agent_id)),
    close: () => db.close(),
  };
}

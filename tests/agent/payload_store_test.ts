/**
 * Payload delivery end to end on the file system: the tenant's U, V and zip through the agent's decryption,
 * pairing and store; the secure directory's mount handling; refusals that must write nothing (wrong auth_tag,
 * unsafe zips) and never anything outside secure/; the payload script with its output and timeout.
 */
import { afterEach, beforeEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { zipSync } from "fflate";
import {
  decryptKeyShare,
  importNkPrivateKey,
  importNkPublicKey,
  KeyPairing,
  parseAuthTag,
  tenantKeyRequests,
} from "../../src/protocol/payload.ts";
import { ZipError } from "../../src/protocol/payload_zip.ts";
import { buildPayloadZip } from "../../src/protocol/payload_zip_build.ts";
import {
  mountTypeOf,
  PayloadStoreError,
  type PayloadStoreOptions,
  prepareSecureDir,
  storeDerivedPayload,
  storePayload,
} from "../../src/agent/payload_store.ts";
import { recordingLog } from "../helpers/agent_log.ts";
import { toBase64, toHex } from "../../src/util/encoding.ts";
import { defaultStoreOptions } from "../helpers/payload_delivery.ts";

const UUID = "d432fbb3-d2f1-4a97-9ef7-75bd81c00000";
const enc = (s: string) => new TextEncoder().encode(s);
const nk = generateKeyPairSync("rsa", { modulusLength: 2048 });
const nkPub = await importNkPublicKey(nk.publicKey);
const nkPriv = await importNkPrivateKey(nk.privateKey);

/** Every path under dir, relative, sorted. */
function tree(dir: string): string[] {
  return (readdirSync(dir, { recursive: true, encoding: "utf8" }) as string[]).sort();
}

const mode = (p: string) => statSync(p).mode & 0o777;

let root: string;
let keylimeDir: string;
let log: ReturnType<typeof recordingLog>;
let opts: PayloadStoreOptions;

beforeEach(async () => {
  root = mkdtempSync(join(tmpdir(), "payload-store-"));
  keylimeDir = join(root, "keylime");
  mkdirSync(keylimeDir);
  log = recordingLog();
  const secure = await prepareSecureDir({
    keylimeDir,
    secureSize: "1m",
    log,
    mount: false,
    mountinfoPath: join(root, "none"),
  });
  opts = { ...defaultStoreOptions(secure.path, log), scriptTimeoutMs: 30_000 };
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

/** The tenant's requests, received by the agent: decrypted, paired; the DerivedKey or undefined. */
async function deliver(payload: Uint8Array, tagUuid = UUID) {
  const { key, ukey, vkey } = await tenantKeyRequests(nkPub, tagUuid, { payload });
  const pairing = new KeyPairing(UUID);
  pairing.addV(await decryptKeyShare(nkPriv, vkey.encrypted_key));
  const derived = pairing.addU({
    share: await decryptKeyShare(nkPriv, ukey.encrypted_key),
    authTag: parseAuthTag(ukey.auth_tag),
    payload: ukey.payload!,
  });
  return { key, derived };
}

describe("delivery", () => {
  test("tenant zip -> K, plaintext and extracted files 0600, autorun.sh run in unzipped/ with its output logged", async () => {
    const zip = buildPayloadZip({
      "autorun.sh": enc('echo "hello from autorun $(pwd)"\necho ran > ran.txt\necho oops >&2\n'),
      "RevocationNotifier-cert.crt": enc("CERT"),
      "local_action_x": enc("#!/bin/sh\necho x\n"),
      "action_list": enc("local_action_x\nmissing_action\n"),
      "keys/extra.bin": Uint8Array.of(1, 2, 3),
    });
    const { key, derived } = await deliver(zip);
    assert.ok(derived);
    const stored = await storeDerivedPayload(opts, derived);
    assert.ok(stored);
    const unzipped = stored.unzipped;
    assert.equal(unzipped, join(keylimeDir, "secure", "unzipped"));
    assert.deepEqual(new Uint8Array(readFileSync(join(unzipped, "derived_tci_key"))), key.k);
    assert.deepEqual(new Uint8Array(readFileSync(join(unzipped, "decrypted_payload"))), zip);
    assert.equal(readFileSync(join(unzipped, "keys/extra.bin")).length, 3);
    assert.equal(mode(join(unzipped, "derived_tci_key")), 0o600);
    assert.equal(mode(join(unzipped, "decrypted_payload")), 0o600);
    assert.equal(mode(join(unzipped, "RevocationNotifier-cert.crt")), 0o600);
    assert.equal(mode(join(keylimeDir, "secure")), 0o700);
    // The script ran in unzipped/ and its output reached the log.
    assert.equal(readFileSync(join(unzipped, "ran.txt"), "utf8"), "ran\n");
    assert.equal(stored.script?.code, 0);
    assert.deepEqual(stored.script?.output, [`hello from autorun ${unzipped}`, "oops"]);
    assert.ok(log.lines.includes(`INFO hello from autorun ${unzipped}`));
    assert.equal(mode(join(unzipped, "autorun.sh")), 0o700);
    // action_list: the existing script is made executable, the missing one ignored.
    assert.deepEqual(stored.actions, ["local_action_x"]);
    assert.equal(mode(join(unzipped, "local_action_x")), 0o700);
    // K never reaches the log.
    const hexK = toHex(key.k);
    assert.ok(log.lines.every((l) => !l.includes(hexK) && !l.includes(toBase64(key.k))));
  });

  test("a second payload replaces the first one's unzipped/", async () => {
    const first = await deliver(buildPayloadZip({ "old.txt": enc("old") }));
    await storeDerivedPayload({ ...opts, payloadScript: "" }, first.derived!);
    const second = await deliver(buildPayloadZip({ "new.txt": enc("new") }));
    const stored = await storeDerivedPayload({ ...opts, payloadScript: "" }, second.derived!);
    assert.deepEqual(tree(stored!.unzipped), ["decrypted_payload", "derived_tci_key", "new.txt"]);
  });

  test("a payload that is not a zip is stored as is, with a warning", async () => {
    const { derived } = await deliver(enc("just text"));
    const stored = await storeDerivedPayload(opts, derived!);
    assert.deepEqual(tree(stored!.unzipped), ["decrypted_payload", "derived_tci_key"]);
    assert.ok(log.lines.some((l) => l.startsWith("WARN extract_payload_zip is set but the payload is not a zip")));
  });

  test("extract_payload_zip=false stores the zip without extracting it", async () => {
    const stored = await storePayload(
      { ...opts, extractPayloadZip: false },
      new Uint8Array(32),
      buildPayloadZip({ "a.txt": enc("a") }),
    );
    assert.deepEqual(tree(stored.unzipped), ["decrypted_payload", "derived_tci_key"]);
  });

  test("no payload, nothing written", async () => {
    assert.equal(await storeDerivedPayload(opts, { k: new Uint8Array(32) }), undefined);
    assert.deepEqual(tree(opts.secureDir), []);
  });
});

describe("refusals write nothing", () => {
  test("a wrong auth_tag derives no key: nothing is written", async () => {
    const { derived } = await deliver(buildPayloadZip({ "autorun.sh": enc("touch pwned") }), "another-uuid");
    assert.equal(derived, undefined);
    assert.deepEqual(tree(opts.secureDir), []);
  });

  test("a zip with ../ entries or a symlink is refused; nothing is written in or outside secure/", async () => {
    const before = tree(root);
    for (
      const zip of [
        zipSync({ "autorun.sh": enc("touch pwned"), "../../escaped": enc("x") }),
        zipSync({ "../escaped": enc("x") }),
        zipSync({ "cert.crt": [enc("/etc/passwd"), { os: 3, attrs: 0o120777 << 16 }] }),
        zipSync({ "/tmp/abs": enc("x") }),
      ]
    ) {
      const { derived } = await deliver(zip);
      await assert.rejects(storeDerivedPayload(opts, derived!), ZipError);
    }
    assert.deepEqual(tree(root), before);
    assert.ok(!existsSync(join(opts.secureDir, "unzipped")));
  });

  test("a refused zip leaves the previous payload in place", async () => {
    await storePayload({ ...opts, payloadScript: "" }, new Uint8Array(32), buildPayloadZip({ "keep.txt": enc("k") }));
    await assert.rejects(
      storePayload(opts, new Uint8Array(32), zipSync({ "../x": enc("x") })),
      ZipError,
    );
    assert.ok(existsSync(join(opts.secureDir, "unzipped", "keep.txt")));
  });

  test("a zip bomb is refused within the limits", async () => {
    const bomb = zipSync({ zeros: new Uint8Array(4 << 20) }, { level: 9 });
    await assert.rejects(
      storePayload({ ...opts, zipLimits: { maxEntries: 10, maxTotalBytes: 1 << 20 } }, new Uint8Array(32), bomb),
      ZipError,
    );
    assert.deepEqual(tree(opts.secureDir), []);
  });

  test("config names that leave unzipped/ are refused", async () => {
    for (const bad of [{ encKeyname: "../k" }, { decPayloadFile: "/etc/x" }, { encKeyname: "" }]) {
      await assert.rejects(storePayload({ ...opts, ...bad }, new Uint8Array(32), enc("x")), PayloadStoreError);
    }
    assert.deepEqual(tree(opts.secureDir), []);
  });
});

describe("payload script", () => {
  test("a script that does not end is killed after the timeout", async () => {
    const zip = buildPayloadZip({ "autorun.sh": enc("echo started\nsleep 60\necho never\n") });
    // Long enough for a shell to start and print on a loaded machine, far shorter than the script's sleep.
    const stored = await storePayload({ ...opts, scriptTimeoutMs: 2000 }, new Uint8Array(32), zip);
    assert.equal(stored.script?.timedOut, true);
    assert.deepEqual(stored.script?.output, ["started"]);
    assert.ok(log.lines.some((l) => /WARN .*autorun\.sh failed: timed out after 2000 ms/.test(l)));
  });

  test("a failing script is logged with its exit code; no script, no run", async () => {
    const failing = await storePayload(opts, new Uint8Array(32), buildPayloadZip({ "autorun.sh": enc("exit 3") }));
    assert.equal(failing.script?.code, 3);
    assert.ok(log.lines.some((l) => /failed: exit code 3/.test(l)));
    const none = await storePayload(opts, new Uint8Array(32), buildPayloadZip({ "a.txt": enc("") }));
    assert.equal(none.script, undefined);
  });
});

describe("secure directory", () => {
  const line = (point: string, type: string) =>
    `36 35 98:0 / ${point} rw,noatime master:1 - ${type} none rw,errors=continue`;

  test("mountTypeOf reads /proc/self/mountinfo, escapes included; the last mount wins", () => {
    const info = [
      line("/", "ext4"),
      line("/var/lib/key\\040lime/secure", "tmpfs"),
      line("/x", "ext4"),
      line("/x", "tmpfs"),
    ]
      .join("\n");
    assert.equal(mountTypeOf(info, "/var/lib/key lime/secure"), "tmpfs");
    assert.equal(mountTypeOf(info, "/x"), "tmpfs");
    assert.equal(mountTypeOf(info, "/nope"), undefined);
  });

  test("already a tmpfs: used as is; another file system: refused", async () => {
    const info = join(root, "mountinfo");
    writeFileSync(info, line(join(keylimeDir, "secure"), "tmpfs"));
    const ok = await prepareSecureDir({ keylimeDir, secureSize: "1m", log, mountinfoPath: info });
    assert.equal(ok.tmpfs, true);
    writeFileSync(info, line(join(keylimeDir, "secure"), "ext4"));
    await assert.rejects(
      prepareSecureDir({ keylimeDir, secureSize: "1m", log, mountinfoPath: info }),
      /already mounted on wrong file system type: ext4/,
    );
  });

  test("a mount that fails leaves a warning and a 0700 directory", async () => {
    const failingMount = join(root, "failing-mount");
    writeFileSync(failingMount, "#!/bin/sh\necho 'mount: permission denied' >&2\nexit 32\n");
    chmodSync(failingMount, 0o755);
    const dir = join(root, "other");
    mkdirSync(dir);
    const r = await prepareSecureDir({
      keylimeDir: dir,
      secureSize: "2m",
      log,
      mount: true,
      mountinfoPath: join(root, "none"),
      mountProgram: failingMount,
    });
    assert.deepEqual(r, { path: join(dir, "secure"), tmpfs: false });
    assert.equal(mode(r.path), 0o700);
    assert.ok(log.lines.some((l) => /WARN Unable to mount tmpfs on .*mount: permission denied/.test(l)));
  });

  test("a secure path that is a symlink or a file is refused", async () => {
    const other = join(root, "sym");
    mkdirSync(join(other, "target"), { recursive: true });
    symlinkSync(join(other, "target"), join(other, "secure"));
    await assert.rejects(
      prepareSecureDir({ keylimeDir: other, secureSize: "1m", log, mount: false }),
      /is not a directory \(a symlink or a file\)/,
    );
  });

  test("secure_size must look like a size", async () => {
    await assert.rejects(
      prepareSecureDir({ keylimeDir, secureSize: "1m,exec", log, mount: false }),
      PayloadStoreError,
    );
  });
});

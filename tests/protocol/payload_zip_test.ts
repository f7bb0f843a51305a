/**
 * Payload zip planning: what a tenant's zip extracts to, and every refusal (traversal, absolute paths,
 * symlinks and devices by their Unix mode, zip bombs by declared size and by actual inflation, corrupt data).
 * Zips come from fflate (the tenant helper) and from the system's `zip` when installed.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { zipSync } from "fflate";
import { crc32, isZip, planZipExtraction, safeEntryPath, ZipError } from "../../src/protocol/payload_zip.ts";
import { buildPayloadZip } from "../../src/protocol/payload_zip_build.ts";

const enc = (s: string) => new TextEncoder().encode(s);
const refused = (pattern: RegExp) => (e: unknown) => e instanceof ZipError && pattern.test(e.message);
const UNIX = 3;
const mode = (m: number) => ({ os: UNIX, attrs: m << 16 });

/** A zip made by the system's `zip` in a fresh directory (`prepare` fills `in/`), or undefined when not installed. */
function zipWithTool(prepare: (inDir: string) => void, options: string[], files: string[]): Uint8Array | undefined {
  try {
    execFileSync("zip", ["-v"], { stdio: "ignore" });
  } catch {
    return undefined;
  }
  const dir = mkdtempSync(join(tmpdir(), "zip-"));
  try {
    mkdirSync(join(dir, "in"));
    prepare(join(dir, "in"));
    execFileSync("zip", [...options, "../p.zip", ...files], { cwd: join(dir, "in") });
    return new Uint8Array(readFileSync(join(dir, "p.zip")));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Offsets of every header signature in a zip, to patch declared sizes. */
function patchSizes(zip: Uint8Array, size: number): Uint8Array {
  const out = zip.slice();
  const dv = new DataView(out.buffer);
  for (let i = 0; i + 4 <= out.length; i++) {
    const sig = dv.getUint32(i, true);
    if (sig === 0x04034b50) dv.setUint32(i + 22, size, true);
    if (sig === 0x02014b50) dv.setUint32(i + 24, size, true);
  }
  return out;
}

describe("a tenant's payload", () => {
  test("files, nested directories and the executable bit are planned in order", () => {
    const zip = buildPayloadZip({
      "autorun.sh": { data: enc("#!/bin/sh\necho hi\n"), executable: true },
      "RevocationNotifier-cert.crt": enc("PEM"),
      "action_list": enc("local_action_x\n"),
      "sub/dir/file.txt": enc("deep"),
    });
    assert.ok(isZip(zip));
    const plan = planZipExtraction(zip);
    const files = plan.filter((p) => p.kind === "file");
    assert.deepEqual(files.map((f) => f.path), [
      "autorun.sh",
      "RevocationNotifier-cert.crt",
      "action_list",
      "sub/dir/file.txt",
    ]);
    assert.deepEqual(plan.filter((p) => p.kind === "dir").map((d) => d.path), ["sub", "sub/dir"]);
    assert.ok(plan.findIndex((p) => p.path === "sub/dir") < plan.findIndex((p) => p.path === "sub/dir/file.txt"));
    const autorun = files[0]!;
    assert.ok(autorun.kind === "file" && autorun.executable);
    assert.ok(files[1]!.kind === "file" && !files[1]!.executable);
    assert.equal(new TextDecoder().decode((files[3] as { data: Uint8Array }).data), "deep");
  });

  test("an empty zip plans nothing; non-zips are refused", () => {
    assert.deepEqual(planZipExtraction(zipSync({})), []);
    assert.ok(!isZip(enc("plain text payload")));
    assert.throws(() => planZipExtraction(enc("plain text payload")), refused(/no end of central directory/));
  });

  test("a zip made by the system's zip tool, with a directory entry and ./ prefixes", (t) => {
    const zip = zipWithTool(
      (dir) => {
        mkdirSync(join(dir, "d"));
        writeFileSync(join(dir, "d/a.txt"), "a".repeat(5000));
        writeFileSync(join(dir, "run.sh"), "#!/bin/sh\n", { mode: 0o755 });
      },
      ["-qr"],
      ["."],
    );
    if (!zip) return t.skip("zip is not installed");
    const byPath = new Map(planZipExtraction(zip).map((p) => [p.path, p]));
    assert.equal(byPath.get("d")?.kind, "dir");
    const a = byPath.get("d/a.txt");
    assert.ok(a?.kind === "file" && a.data.length === 5000);
    const run = byPath.get("run.sh");
    assert.ok(run?.kind === "file" && run.executable);
  });
});

describe("paths", () => {
  test("traversal, absolute, drive and backslash paths are refused", () => {
    for (const name of ["../evil", "a/../../evil", "a/..", "/etc/passwd", "C:/x", "a\\..\\b", "x\0y"]) {
      assert.throws(() => planZipExtraction(zipSync({ [name]: enc("x") })), ZipError, name);
    }
  });

  test("a symlink in the zip (whatever its target) is refused, as is an archive made with one by `zip -y`", (t) => {
    const link = zipSync({ "cert.crt": [enc("/etc/shadow"), mode(0o120777)] });
    assert.throws(() => planZipExtraction(link), refused(/symbolic link/));
    const zip = zipWithTool((dir) => symlinkSync("/etc/passwd", join(dir, "link")), ["-qy"], ["link"]);
    if (!zip) return t.skip("zip is not installed");
    assert.throws(() => planZipExtraction(zip), refused(/symbolic link/));
  });

  test("device files, fifos and sockets are refused", () => {
    for (const type of [0o020000, 0o060000, 0o010000, 0o140000]) {
      assert.throws(() => planZipExtraction(zipSync({ dev: [enc(""), mode(type | 0o600)] })), refused(/device/));
    }
  });

  test("duplicates and file/directory clashes are refused", () => {
    assert.throws(
      () => planZipExtraction(zipSync({ "a": enc("1"), "./a": enc("2") })),
      refused(/appears twice/),
    );
    assert.throws(() => planZipExtraction(zipSync({ "a": enc("1"), "a/b": enc("2") })), refused(/both a file/));
  });

  test("safeEntryPath normalises . and empty segments", () => {
    assert.equal(safeEntryPath("./a//b/./c"), "a/b/c");
    assert.throws(() => safeEntryPath("./"), refused(/names no file/));
  });
});

describe("limits", () => {
  test("entry count", () => {
    const files: Record<string, Uint8Array> = {};
    for (let i = 0; i < 11; i++) files[`f${i}`] = enc("x");
    assert.throws(
      () => planZipExtraction(zipSync(files), { maxEntries: 10, maxTotalBytes: 1 << 20 }),
      refused(/11 entries is more than the limit of 10/),
    );
    assert.equal(planZipExtraction(zipSync(files), { maxEntries: 11, maxTotalBytes: 1 << 20 }).length, 11);
  });

  test("a zip bomb is refused by its declared size before inflating", () => {
    const bomb = zipSync({ zeros: new Uint8Array(8 << 20) }, { level: 9 });
    assert.ok(bomb.length < 64 * 1024);
    assert.throws(
      () => planZipExtraction(bomb, { maxEntries: 10, maxTotalBytes: 1 << 20 }),
      refused(/declares 8388608 uncompressed bytes/),
    );
  });

  test("a zip bomb that lies about its size stops while inflating", () => {
    const bomb = patchSizes(zipSync({ zeros: new Uint8Array(8 << 20) }, { level: 9 }), 1000);
    assert.throws(
      () => planZipExtraction(bomb, { maxEntries: 10, maxTotalBytes: 1 << 20 }),
      refused(/inflates to more than its declared 1000 bytes/),
    );
  });

  test("entries sharing one compressed stream count against the total", () => {
    // Two central directory entries pointing at the same local entry (the overlapping-file bomb).
    const one = zipSync({ a: new Uint8Array(600_000) }, { level: 9 });
    const dv = new DataView(one.buffer);
    let cd = -1;
    for (let i = 0; i < one.length - 4; i++) if (dv.getUint32(i, true) === 0x02014b50) cd = i;
    const cdEntry = one.slice(cd, one.length - 22);
    const second = cdEntry.slice();
    second[46] = "b".charCodeAt(0);
    const end = one.slice(one.length - 22);
    const edv = new DataView(end.buffer);
    edv.setUint16(8, 2, true);
    edv.setUint16(10, 2, true);
    edv.setUint32(12, cdEntry.length * 2, true);
    const zip = new Uint8Array([...one.subarray(0, one.length - 22), ...second, ...end]);
    assert.equal(planZipExtraction(zip, { maxEntries: 10, maxTotalBytes: 2_000_000 }).length, 2);
    assert.throws(
      () => planZipExtraction(zip, { maxEntries: 10, maxTotalBytes: 1_000_000 }),
      refused(/declares 1200000 uncompressed bytes/),
    );
  });
});

describe("corruption", () => {
  test("flipped data fails the CRC or the inflater; truncation is refused", () => {
    const zip = zipSync({ "a.txt": enc("hello hello hello hello") }, { level: 0 });
    const bad = zip.slice();
    bad[30 + 5 + 2]! ^= 0xff;
    assert.throws(() => planZipExtraction(bad), refused(/CRC-32 mismatch/));
    assert.throws(() => planZipExtraction(zip.subarray(0, zip.length - 10)), ZipError);
    assert.throws(() => planZipExtraction(zip.subarray(10)), ZipError);
  });

  test("encrypted entries are refused", () => {
    const zip = zipSync({ a: enc("x") }).slice();
    const dv = new DataView(zip.buffer);
    for (let i = 0; i < zip.length - 4; i++) if (dv.getUint32(i, true) === 0x02014b50) dv.setUint16(i + 8, 1, true);
    assert.throws(() => planZipExtraction(zip), refused(/encrypted/));
  });

  test("crc32 known answer", () => {
    assert.equal(crc32(enc("123456789")), 0xcbf43926);
  });
});

/**
 * `make install DESTDIR=... PREFIX=/usr` lays out the installed tree: the executable (a stand-in file unless
 * dist/keylime-ts was built by `make binary`, then the real one, which must run), the keylime_agent link,
 * the systemd unit pointing at it, and /etc/keylime/agent.conf (0600) that a second install keeps. Without
 * the executable it stops and says to run make binary.
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import {
  existsSync,
  lstatSync,
  mkdtempSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const REPO = fileURLToPath(new URL("../../", import.meta.url));
const BUILT = join(REPO, "dist/keylime-ts");
const dir = mkdtempSync(join(tmpdir(), "keylime-ts-install-"));
after(() => rmSync(dir, { recursive: true, force: true }));

function make(...args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve) =>
    execFile(
      "make",
      ["--no-print-directory", "-C", REPO, ...args],
      { timeout: 60_000 },
      (err, stdout, stderr) => resolve({ code: err ? (err as { code?: number }).code ?? 1 : 0, out: stdout + stderr }),
    )
  );
}

const mode = (p: string) => statSync(p).mode & 0o777;

test("make install lays out the executable, the keylime_agent link, the unit and the config", async () => {
  const built = existsSync(BUILT);
  const binary = built ? BUILT : join(dir, "stand-in");
  if (!built) writeFileSync(binary, "#!/bin/sh\necho stand-in\n");
  const root = join(dir, "root");
  const r = await make("install", `DESTDIR=${root}`, "PREFIX=/usr", `BINARY=${binary}`);
  assert.equal(r.code, 0, r.out);

  const exe = join(root, "usr/bin/keylime-ts");
  assert.equal(mode(exe), 0o755);
  assert.deepEqual(readFileSync(exe), readFileSync(binary));
  const link = join(root, "usr/bin/keylime_agent");
  assert.ok(lstatSync(link).isSymbolicLink());
  assert.equal(readlinkSync(link), "keylime-ts");

  const unit = readFileSync(join(root, "usr/lib/systemd/system/keylime_agent.service"), "utf8");
  assert.match(unit, /^ExecStart=\/usr\/bin\/keylime_agent$/m);
  assert.match(unit, /^Restart=on-failure$/m);
  assert.match(unit, /^StateDirectory=keylime$/m);

  const conf = join(root, "etc/keylime/agent.conf");
  assert.equal(readFileSync(conf, "utf8"), readFileSync(join(REPO, "packaging/agent.conf"), "utf8"));
  assert.equal(mode(conf), 0o600);

  // A second install keeps the operator's config.
  writeFileSync(conf, "[agent]\nregistrar_port = 9999\n");
  const again = await make("install", `DESTDIR=${root}`, "PREFIX=/usr", `BINARY=${binary}`);
  assert.equal(again.code, 0, again.out);
  assert.match(again.out, /keeping .*agent\.conf/);
  assert.equal(readFileSync(conf, "utf8"), "[agent]\nregistrar_port = 9999\n");

  if (built) {
    const version = await new Promise<string>((resolve, reject) =>
      execFile(exe, ["--version"], (e, out) => (e ? reject(e) : resolve(out.trim())))
    );
    assert.match(version, /^\d+\.\d+\.\d+/);
  }
});

test("PREFIX=/usr/local: the unit runs the executable where it went", async () => {
  const binary = join(dir, "stand-in-2");
  writeFileSync(binary, "x");
  const root = join(dir, "local");
  assert.equal((await make("install", `DESTDIR=${root}`, `BINARY=${binary}`)).code, 0);
  const unit = readFileSync(join(root, "usr/local/lib/systemd/system/keylime_agent.service"), "utf8");
  assert.match(unit, /^ExecStart=\/usr\/local\/bin\/keylime_agent$/m);
  assert.ok(existsSync(join(root, "usr/local/bin/keylime-ts")));
});

test("without the executable: stops, telling to run make binary", async () => {
  const r = await make("install", `DESTDIR=${join(dir, "none")}`, `BINARY=${join(dir, "absent")}`);
  assert.notEqual(r.code, 0);
  assert.match(r.out, /absent is missing: run make binary first/);
  assert.ok(!existsSync(join(dir, "none")));
});

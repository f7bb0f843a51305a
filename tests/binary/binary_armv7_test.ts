/**
 * dist/keylime-ts-armv7 (make binary-armv7) under qemu user-mode emulation, with a clean environment: it
 * starts and prints its version, says the registrar is not part of it, and registers (on swtpm) with a
 * registrar on this host. Runs wherever qemu-arm is (CI installs it); slow (emulated: ~10 s a start).
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startTestRegistrar } from "../helpers/agent_process.ts";
import { buildBinary, qemuArmSkipReason, runClean, writeAgentConf } from "../helpers/binary.ts";
import { freePort } from "../helpers/free_port.ts";
import { startSwtpm, swtpmSkipReason } from "../helpers/swtpm.ts";
import { VERSION } from "../../src/main.ts";

const skip = qemuArmSkipReason();
const home = mkdtempSync(join(tmpdir(), "keylime-ts-binary-armv7-"));
let exe = "";
before(async () => void (skip ? undefined : exe = await buildBinary("armv7")));
after(() => rmSync(home, { recursive: true, force: true }));
const armv7 = { home, armv7: true };

test("armv7: --version", { skip }, async () => {
  const r = await runClean(exe, ["--version"], armv7);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.trim(), VERSION);
});

test("armv7: the registrar is not part of this build, and says so", { skip }, async () => {
  const r = await runClean(exe, ["registrar", "--db", join(home, "never.sqlite")], armv7);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /the registrar is not part of this build: it needs node:sqlite .*Node v20\./);
});

test("armv7: agent register with the host's registrar, on swtpm", { skip: skip ?? swtpmSkipReason() }, async () => {
  const dir = join(home, "flow");
  mkdirSync(dir);
  const registrar = await startTestRegistrar(dir);
  const swtpm = await startSwtpm({ transport: "tcp" });
  try {
    const uuid = "b1a7e0e1-0000-4000-8000-0000000000a7";
    const conf = writeAgentConf(join(dir, "agent"), { uuid, registrarPort: registrar.port, port: await freePort() });
    const r = await runClean(exe, ["agent", "register"], {
      ...armv7,
      env: { KEYLIME_AGENT_CONFIG: conf, TCTI: swtpm.uri },
    });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`agent ${uuid} is active`));
    assert.equal(registrar.service.store.get(uuid)?.active, true);
  } finally {
    await swtpm.stop();
    await registrar.close();
  }
});

/** The registrar's NK certify settings: require_nk_certify and certify_nonce_ttl from TOML and options, checked. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError, loadRegistrarConfig } from "../../src/registrar/config.ts";
import { DEFAULT_CERTIFY_NONCE_TTL } from "../../src/registrar/registration.ts";

test("defaults: the extension offered, not required; nonces valid 300 s", async () => {
  const c = await loadRegistrarConfig(undefined);
  assert.equal(c.require_nk_certify, false);
  assert.equal(c.certify_nonce_ttl, DEFAULT_CERTIFY_NONCE_TTL);
  assert.equal(DEFAULT_CERTIFY_NONCE_TTL, 300);
});

test("from a [registrar] table, overridden by options; bad values named", async () => {
  const dir = mkdtempSync(join(tmpdir(), "registrar-nk-config-"));
  try {
    const file = join(dir, "registrar.toml");
    writeFileSync(file, "[registrar]\nrequire_nk_certify = true\ncertify_nonce_ttl = 60\n");
    const c = await loadRegistrarConfig(file);
    assert.equal(c.require_nk_certify, true);
    assert.equal(c.certify_nonce_ttl, 60);
    assert.equal((await loadRegistrarConfig(file, { certify_nonce_ttl: 30 })).certify_nonce_ttl, 30);
    writeFileSync(file, "[registrar]\ncertify_nonce_ttl = 0\n");
    await assert.rejects(loadRegistrarConfig(file), (e: unknown) => {
      assert.ok(e instanceof ConfigError);
      assert.match(e.message, /^\[registrar\] certify_nonce_ttl: expected seconds \(1-86400\), got 0/);
      return true;
    });
    writeFileSync(file, `[registrar]\nrequire_nk_certify = "yes"\n`);
    await assert.rejects(loadRegistrarConfig(file), /require_nk_certify: expected true or false/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

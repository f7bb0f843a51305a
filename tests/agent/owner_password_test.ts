/**
 * tpm_ownerpassword against swtpm whose endorsement hierarchy has a password (tpm2_changeauth -c e): without
 * it the EK cannot be created; with it (as text or hex:) the EK is created and every EK use (AK create and
 * load, ActivateCredential: PolicySecret on the endorsement hierarchy) works, as rust-keylime's
 * tr_set_auth(Endorsement) makes them work. A malformed hex: value is a configuration error before TPM work.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { loadAgentConfig } from "../../src/agent/config.ts";
import { ConfigError } from "../../src/agent/errors.ts";
import { openEk } from "../../src/agent/identity.ts";
import { activateCredential } from "../../src/tpm/activate.ts";
import { createAk, loadAk } from "../../src/tpm/ak.ts";
import { Tpm } from "../../src/tpm/client.ts";
import { TPM_RC } from "../../src/tpm/constants.ts";
import { makeCredential } from "../../src/tpm/credential.ts";
import { releaseEk } from "../../src/tpm/ek.ts";
import { TpmResponseError } from "../../src/tpm/errors.ts";
import { flush } from "../../src/tpm/objects.ts";
import { SwtpmTransport } from "../../src/tpm/transport/swtpm.ts";
import { requireTools, startSwtpm, type SwtpmInstance, swtpmSkipReason } from "../helpers/swtpm.ts";

const skip = swtpmSkipReason() ?? requireTools("tpm2_changeauth");
const PASSWORD = "owner-pw";
const root = mkdtempSync(join(tmpdir(), "owner-password-"));
const configWith = (pw?: string) =>
  loadAgentConfig({ root, env: pw === undefined ? {} : { KEYLIME_AGENT_TPM_OWNERPASSWORD: pw } }).config;

let swtpm: SwtpmInstance;
let transport: SwtpmTransport;
let tpm: Tpm;
before(async () => {
  if (skip) return;
  swtpm = await startSwtpm({ transport: "tcp" });
  await promisify(execFile)("tpm2_changeauth", ["-c", "e", PASSWORD], {
    env: { ...process.env, TPM2TOOLS_TCTI: swtpm.tctiForTools },
  });
  transport = new SwtpmTransport({ host: "127.0.0.1", port: swtpm.port! });
  tpm = new Tpm(transport);
});
after(async () => {
  await tpm?.close();
  await swtpm?.stop();
  rmSync(root, { recursive: true, force: true });
});

test("without tpm_ownerpassword the EK cannot be created", { skip }, async () => {
  await assert.rejects(
    openEk(tpm, configWith()),
    (e) => e instanceof TpmResponseError && (e.is(TPM_RC.AUTH_FAIL) || e.is(TPM_RC.BAD_AUTH)),
  );
});

for (const value of [PASSWORD, `hex:${Buffer.from(PASSWORD).toString("hex")}`]) {
  test(`tpm_ownerpassword = ${value.startsWith("hex:") ? "hex:..." : "text"}: EK, AK and ActivateCredential`, {
    skip,
  }, async () => {
    const ek = await openEk(tpm, configWith(value));
    try {
      const ak = await loadAk(tpm, ek, await createAk(tpm, ek));
      try {
        const made = await makeCredential(ek.public, ak.name, new TextEncoder().encode("secret"));
        const got = await activateCredential(tpm, ak, ek, made.credentialBlob, made.secret);
        assert.equal(new TextDecoder().decode(got), "secret");
      } finally {
        await flush(tpm, ak.handle);
      }
    } finally {
      await releaseEk(tpm, ek);
    }
  });
}

test("a malformed or too long value is a configuration error", { skip }, async () => {
  for (const bad of ["hex:abc", "hex:zz", "x".repeat(65)]) {
    await assert.rejects(
      openEk(tpm, configWith(bad)),
      (e) => e instanceof ConfigError && /tpm_ownerpassword/.test(e.message),
    );
  }
});

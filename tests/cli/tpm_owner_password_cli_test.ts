/**
 * `keylime-ts tpm ek|ak|quote --owner-password` against swtpm whose endorsement hierarchy has a password
 * (tpm2_changeauth -c e), as the agent's tpm_ownerpassword: refused without it, the same EK as
 * tpm2_createek -P with it, and read from KEYLIME_AGENT_TPM_OWNERPASSWORD when not given.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { envName } from "../../src/agent/config_keys.ts";
import { requireTools, startSwtpm, type SwtpmInstance, swtpmSkipReason } from "../helpers/swtpm.ts";
import { runProcess } from "../helpers/run_process.ts";

const MAIN = fileURLToPath(new URL("../../src/main.ts", import.meta.url));
const skip = swtpmSkipReason() ?? requireTools("tpm2_changeauth", "tpm2_createek", "tpm2_flushcontext");
const PASSWORD = "endorse-pw";
const ENV = envName("tpm_ownerpassword");

const run = runProcess;

describe("tpm subcommands with an endorsement hierarchy password", { skip }, () => {
  let swtpm: SwtpmInstance;
  let dir: string;
  /** The environment without the password variable, whatever the test runner has. */
  const clean = () => Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== ENV));
  const cli = (args: string[], env: NodeJS.ProcessEnv = clean()) =>
    run(process.execPath, ["run", "--allow-all", MAIN, "tpm", ...args, "--tpm", swtpm.uri], env);

  before(async () => {
    swtpm = await startSwtpm({ transport: "tcp" });
    dir = mkdtempSync(join(tmpdir(), "keylime-ts-owner-pw-"));
    const tools = await run("tpm2_changeauth", ["-c", "e", PASSWORD], {
      ...process.env,
      TPM2TOOLS_TCTI: swtpm.tctiForTools,
    });
    assert.equal(tools.code, 0, tools.stderr);
  });
  after(async () => {
    await swtpm?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test("tpm ek: refused without the password, the same key as tpm2_createek -P with it", async () => {
    const without = await cli(["ek", "--json"]);
    assert.equal(without.code, 1);
    assert.match(
      without.stderr,
      new RegExp(
        `TPM_RC_(BAD_AUTH|AUTH_FAIL).*the endorsement hierarchy has a password: give it with --owner-password or ${ENV} \\[ERR_TPM_USAGE\\]`,
      ),
    );
    const wrong = await cli(["ek", "--owner-password", "not-it"]);
    assert.match(wrong.stderr, /the owner password given is not the endorsement hierarchy's password/);

    const ours = await cli(["ek", "--json", "--owner-password", PASSWORD]);
    assert.equal(ours.code, 0, ours.stderr);
    const env = { ...process.env, TPM2TOOLS_TCTI: swtpm.tctiForTools };
    const created = await run("tpm2_createek", [
      ...["-P", PASSWORD, "-G", "rsa", "-f", "pem"],
      ...["-u", join(dir, "ek.pem"), "-c", join(dir, "ek.ctx")],
    ], env);
    assert.equal(created.code, 0, created.stderr);
    await run("tpm2_flushcontext", ["-t"], env); // raw swtpm: no resource manager
    assert.equal(JSON.parse(ours.stdout).publicKeyPem, readFileSync(join(dir, "ek.pem"), "utf8"));
  });

  test("tpm ak and tpm quote take it from the agent's variable, as hex: too", async () => {
    const env = { ...clean(), [ENV]: `hex:${Buffer.from(PASSWORD).toString("hex")}` };
    const ak = await cli(["ak", "--json"], env);
    assert.equal(ak.code, 0, ak.stderr);
    assert.match(JSON.parse(ak.stdout).aikTpm, /^[A-Za-z0-9+/]+=*$/);
    const quote = await cli(["quote", "--json", "--nonce", "abcdef0123", "--pcrs", "0,16"], env);
    assert.equal(quote.code, 0, quote.stderr);
  });

  test("a malformed value is refused before any TPM work, naming tpm_ownerpassword", async () => {
    const bad = await cli(["ek", "--owner-password", "hex:zz"]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /--owner-password.*tpm_ownerpassword: after hex: an even number of hex digits/);
  });
});

/**
 * The simulator from the command line (the demo has its own test, demo_cli_test.ts): `keylime-ts simulator`
 * serves another keylime-ts and tpm2-tools, `simulator ca` exports the CA its EK certificates verify
 * against (with openssl), and with no TPM at all the CLI falls back to it with an INSECURE warning.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { requireTools } from "../helpers/swtpm.ts";

const MAIN = fileURLToPath(new URL("../../src/main.ts", import.meta.url));

function run(file: string, args: string[], env: NodeJS.ProcessEnv = process.env) {
  return new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
    execFile(
      file,
      args,
      { env, timeout: 60_000 },
      (err, stdout, stderr) =>
        resolve({
          code: err ? (typeof err.code === "number" ? err.code : 1) : 0,
          stdout: String(stdout),
          stderr: String(stderr),
        }),
    )
  );
}
const cli = (args: string[], env?: NodeJS.ProcessEnv) =>
  run(process.execPath, ["run", "--allow-all", MAIN, ...args], env);

describe("keylime-ts simulator", () => {
  test("with no TPM, the CLI uses the embedded simulator and says it is insecure", async () => {
    const data = mkdtempSync(join(tmpdir(), "keylime-ts-data-"));
    try {
      const env = { ...process.env, KEYLIME_TS_DATA: data, TCTI: "", TPM2TOOLS_TCTI: "" };
      const r = await cli(["tpm", "info", "--json"], env);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /INSECURE: software TPM/);
      assert.equal(JSON.parse(r.stdout).vendorString, "SW TPM");
      // The next process finds the same TPM (same EK) in the data directory.
      const a = JSON.parse((await cli(["tpm", "ek", "--json"], env)).stdout);
      const b = JSON.parse((await cli(["tpm", "ek", "--json"], env)).stdout);
      assert.equal(a.name, b.name);
      assert.equal(a.certificate.matchesEk, true);
    } finally {
      rmSync(data, { recursive: true, force: true });
    }
  });

  test("simulator serves keylime-ts and tpm2-tools; its EK certificate verifies against `simulator ca`", {
    skip: requireTools("tpm2_getrandom", "tpm2_nvread", "openssl"),
  }, async () => {
    const state = mkdtempSync(join(tmpdir(), "keylime-ts-sim-"));
    const child = spawn(process.execPath, [
      "run",
      "--allow-all",
      MAIN,
      "simulator",
      "--listen",
      "swtpm:host=127.0.0.1,port=0",
      "--state",
      state,
      "--json",
    ], { stdio: ["ignore", "pipe", "pipe"] });
    try {
      let out = "";
      const listening: { listen: string[] } = await new Promise((resolve, reject) => {
        child.stdout.on("data", (d) => {
          out += d;
          try {
            resolve(JSON.parse(out));
          } catch { /* not complete yet */ }
        });
        child.once("exit", (code) => reject(new Error(`simulator exited with ${code}`)));
      });
      const uri = listening.listen[0]!;
      const info = await cli(["tpm", "info", "--json", "--tpm", uri]);
      assert.equal(JSON.parse(info.stdout).vendorString, "SW TPM");
      const env = { ...process.env, TPM2TOOLS_TCTI: uri };
      const rnd = await run("tpm2_getrandom", ["16", "--hex"], env);
      assert.match(rnd.stdout, /^[0-9a-f]{32}$/, rnd.stderr);
      const certDer = join(state, "ek.der");
      const nv = await run("tpm2_nvread", ["0x01c00002", "-o", certDer], env);
      assert.equal(nv.code, 0, nv.stderr);
      const ca = await cli(["simulator", "ca", "--state", state]);
      writeFileSync(join(state, "ca.pem"), ca.stdout);
      const pem = await run("openssl", ["x509", "-inform", "der", "-in", certDer, "-out", join(state, "ek.pem")]);
      assert.equal(pem.code, 0, pem.stderr);
      const verify = await run("openssl", ["verify", "-CAfile", join(state, "ca.pem"), join(state, "ek.pem")]);
      assert.match(verify.stdout, /ek\.pem: OK/, verify.stderr);
    } finally {
      child.kill("SIGTERM");
      await new Promise((r) => child.once("exit", r));
      rmSync(state, { recursive: true, force: true });
    }
  });

  test("every new subcommand has --help", async () => {
    for (const args of [["demo"], ["simulator"], ["simulator", "ca"]]) {
      const r = await cli([...args, "--help"]);
      assert.equal(r.code, 0);
      assert.match(r.stdout, /Usage: keylime-ts/);
    }
  });
});

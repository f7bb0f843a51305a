/**
 * `keylime-ts demo` as a process (what `make demo` runs): every step passes in one run on the embedded
 * simulator; attest passes, then names pcr-policy after the PCR change and nk-binding after the NK swap;
 * --keep leaves the directory with what the printed commands need; the software-TPM warning is on stderr.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync, rmSync } from "node:fs";
import { join } from "node:path";
import { ROOT } from "../helpers/agent_process.ts";

test("keylime-ts demo --json --keep: attest passes, then catches the PCR change and the NK swap", async () => {
  const { code, stdout, stderr } = await new Promise<{ code: number; stdout: string; stderr: string }>((ok) => {
    execFile(
      process.execPath,
      ["run", "--allow-all", "--quiet", join(ROOT, "src", "main.ts"), "demo", "--json", "--keep"],
      (err, stdout, stderr) => ok({ code: err ? Number(err.code ?? 1) : 0, stdout, stderr }),
    );
  });
  const report = JSON.parse(stdout);
  try {
    assert.equal(code, 0, stdout + stderr);
    assert.match(stderr, /INSECURE: software TPM/);
    assert.equal(report.ok, true);
    assert.deepEqual(report.steps.map((s: { ok: boolean }) => s.ok), Array(9).fill(true));
    const [pass, changed, swapped] = report.reports as { ok: boolean; checks: { id: string; status: string }[] }[];
    const failed = (r: typeof pass) => r!.checks.filter((c) => c.status === "fail").map((c) => c.id);
    assert.equal(pass!.ok, true);
    assert.equal((pass as { binding?: string }).binding, "certify");
    assert.deepEqual(failed(changed), ["pcr-policy"]);
    assert.ok(failed(swapped).includes("nk-binding"));
    assert.match(report.steps[8].detail, /^nk-binding: the agent's NK changed/);
    for (
      const f of ["policy.json", "agent.conf", "tls/client-cert.crt", "tpm-ca/simulator-ca.pem", "tpm/tpm-state.json"]
    ) {
      assert.ok(existsSync(join(report.dir, f)), f);
    }
  } finally {
    if (report?.dir) rmSync(report.dir, { recursive: true, force: true });
  }
});

/**
 * `keylime-ts attest` as a process against keylime_agent on swtpm and the reference registrar (one setup for
 * the file): a healthy agent passes (exit 0) with a policy written by `attest policy`; then each way
 * attestation must fail exits 1 naming the failed check: a replayed quote (the state remembers a later
 * clock), an IMA entry that does not replay, a policy mismatch, a PCR extended on the machine, a swapped NK.
 * Bad input (policy file, TLS directory) is a clear error.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFile, execFileSync } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { imaExtendDigest, imaNgLine, parseImaLine } from "../../src/protocol/ima_replay.ts";
import { TPM_ALG } from "../../src/tpm/constants.ts";
import { hash } from "../../src/tpm/crypto.ts";
import { toHex } from "../../src/util/encoding.ts";
import { type AgentProcess, ROOT, startAgentProcess } from "../helpers/agent_process.ts";
import { requireTools, swtpmSkipReason } from "../helpers/swtpm.ts";

const UUID = "a77e5700-d2f1-4a97-9ef7-75bd81c00000";
const MAIN = join(ROOT, "src", "main.ts");
const enc = new TextEncoder();
const IMA_LINES = [
  imaNgLine("boot_aggregate", hash(TPM_ALG.SHA256, enc.encode("boot"))),
  imaNgLine("/usr/bin/true", hash(TPM_ALG.SHA256, enc.encode("true"))),
];

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function cli(...args: string[]): Promise<Run> {
  return new Promise((ok) => {
    execFile(process.execPath, ["run", "--allow-all", "--quiet", MAIN, ...args], (err, stdout, stderr) => {
      ok({ code: err ? (typeof err.code === "number" ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

describe("keylime-ts attest against keylime_agent on swtpm", {
  skip: swtpmSkipReason() ?? requireTools("tpm2_pcrextend"),
}, () => {
  let agent: AgentProcess;
  let dir: string;
  let caDir: string;
  let tools: NodeJS.ProcessEnv;
  const extend = (pcr: number, digest: Uint8Array) =>
    execFileSync("tpm2_pcrextend", [`${pcr}:sha256=${toHex(digest)}`], { env: tools });
  const peer =
    () => ["--registrar", `127.0.0.1:${agent.registrar.tlsPort}`, "--tls-dir", agent.registrar.tlsDir, "--uuid", UUID];
  const attest = (stateDir: string, ...more: string[]) =>
    cli("attest", ...peer(), "--tpm-ca-dir", caDir, "--state-dir", stateDir, ...more);
  /** A fresh state directory, or a copy of `from`. */
  const stateDir = (from?: string) => {
    const d = mkdtempSync(join(dir, "state-"));
    if (from) cpSync(from, d, { recursive: true });
    return d;
  };
  let healthy: string;
  let policyFile: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "attest-cli-"));
    // PCR 16 binding only: attest finds the registrar's certification, the agent refuses certify, PCR 16 it is.
    // (The demo's test covers the TPM2_Certify binding.)
    agent = await startAgentProcess({
      uuid: UUID,
      imaList: IMA_LINES.join("\n") + "\n",
      registrarClientCa: true,
      conf: [`nk_binding = "pcr16"`],
    });
    tools = { ...process.env, TPM2TOOLS_TCTI: agent.swtpm.tctiForTools };
    for (const [i, line] of IMA_LINES.entries()) extend(10, imaExtendDigest(parseImaLine(line, i), TPM_ALG.SHA256));
    caDir = join(dir, "tpm-ca");
    mkdirSync(caDir);
    writeFileSync(join(caDir, "swtpm-ca.pem"), agent.swtpm.intermediateCertPem! + agent.swtpm.rootCertPem!);
  });

  after(async () => {
    await agent?.stop();
  });

  test("attest policy prints the quoted PCRs as a policy", async () => {
    const r = await cli("attest", "policy", ...peer(), "--pcrs", "0-7,23");
    assert.equal(r.code, 0, r.stderr);
    const policy = JSON.parse(r.stdout);
    assert.deepEqual(Object.keys(policy.pcrs.sha256), ["0", "1", "2", "3", "4", "5", "6", "7", "23"]);
    assert.match(policy.pcrs.sha256["23"][0], /^[0-9a-f]{64}$/);
    policyFile = join(dir, "policy.json");
    writeFileSync(policyFile, r.stdout);
  });

  test("a healthy agent passes every check (exit 0), the report says why", async () => {
    healthy = stateDir();
    const r = await attest(healthy, "--policy", policyFile);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    for (const line of ["registrar record", "EK certificate", "NK bound", "quote signed", "PCR values", "IMA list"]) {
      assert.match(r.stdout, new RegExp(`pass {2}${line}`));
    }
    assert.match(r.stdout, /2 new entries \(2 in all\) replay to PCR 10/);
    assert.match(r.stdout, /PCR 16 = H\(0 ‖ H\(NK\)\) \(the agent gives no certify proof\)/);
    assert.match(r.stdout, /skip {2}UEFI event log/);
    assert.match(r.stdout, /attestation passed/);
    // The state keeps the clock and the IMA position: the next run asks only for new entries.
    const state = JSON.parse(readFileSync(join(healthy, `${UUID}.json`), "utf8"));
    assert.equal(state.ima.entries, 2);
    const again = await attest(healthy, "--json");
    assert.equal(again.code, 0, again.stdout);
    const report = JSON.parse(again.stdout);
    assert.equal(report.ok, true);
    assert.match(report.checks.find((c: { id: string }) => c.id === "ima").detail, /^0 new entries \(2 in all\)/);
  });

  test("--watch repeats with the kept state and says what changed", async () => {
    const r = await attest(stateDir(healthy), "--watch", "1", "--count", "2");
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.equal(r.stdout.match(/attestation passed/g)?.length, 2);
    assert.match(r.stdout, /no change since the last round/);
    const rounds = (await attest(stateDir(healthy), "--watch", "1", "--count", "2", "--json")).stdout.trim().split(
      "\n",
    );
    assert.equal(rounds.length, 2);
    const [a, b] = rounds.map((l) => JSON.parse(l));
    const clock = (r: { checks: { id: string; detail: string }[] }) =>
      BigInt(/clock (\d+)/.exec(r.checks.find((c) => c.id === "clock")!.detail)![1]!);
    assert.ok(clock(b) > clock(a));
  });

  test("a replayed quote (the last run saw a later clock) fails the clock check", async () => {
    const replay = stateDir(healthy);
    const file = join(replay, `${UUID}.json`);
    const state = JSON.parse(readFileSync(file, "utf8"));
    state.clock.clock = (BigInt(state.clock.clock) + 10n ** 12n).toString();
    writeFileSync(file, JSON.stringify(state));
    const r = await attest(replay);
    assert.equal(r.code, 1);
    assert.match(r.stdout, /FAIL {2}quote clock after the last run.*clock went from/);
    assert.match(r.stdout, /attestation FAILED: clock$/m);
  });

  test("an IMA entry that does not replay fails the IMA check", async () => {
    const ima = join(agent.dir, "ima");
    const good = readFileSync(ima, "utf8");
    // Same length, another file digest: the kernel would have extended something else.
    writeFileSync(ima, good.replace(/sha256:([0-9a-f])/g, (_m, c) => `sha256:${c === "0" ? "1" : "0"}`));
    try {
      const r = await attest(stateDir(), "--json");
      assert.equal(r.code, 1);
      const report = JSON.parse(r.stdout);
      const failed = report.checks.filter((c: { status: string }) => c.status === "fail");
      assert.deepEqual(failed.map((c: { id: string }) => c.id), ["ima"]);
      assert.match(failed[0].detail, /IMA list line 0: the template hash is not the SHA-1 of the entry/);
    } finally {
      writeFileSync(ima, good);
    }
  });

  test("a policy that allows other values fails the policy check naming the PCR", async () => {
    const other = join(dir, "other-policy.json");
    writeFileSync(other, JSON.stringify({ pcrs: { sha256: { "7": ["ab".repeat(32)] } } }));
    const r = await attest(stateDir(), "--policy", other);
    assert.equal(r.code, 1);
    assert.match(r.stdout, /FAIL {2}PCR values allowed by the policy .* PCR 7 is 0{16}…, allowed abababab/);
  });

  test("a PCR extended on the machine fails the policy check", async () => {
    extend(23, hash(TPM_ALG.SHA256, enc.encode("a change on the machine")));
    const r = await attest(stateDir(healthy), "--policy", policyFile);
    assert.equal(r.code, 1);
    assert.match(r.stdout, /FAIL {2}PCR values allowed by the policy .* PCR 23 is/);
    assert.match(r.stdout, /attestation FAILED: pcr-policy$/m);
  });

  test("an NK that is not the one PCR 16 holds fails the NK binding", async () => {
    extend(16, hash(TPM_ALG.SHA256, enc.encode("another NK")));
    const r = await attest(stateDir(healthy));
    assert.equal(r.code, 1);
    assert.match(r.stdout, /FAIL {2}NK bound to the registered AK .*invalid_pcr_16/);
  });

  test("bad input is a clear error naming what was wrong", async () => {
    const bad = join(dir, "bad-policy.json");
    writeFileSync(bad, JSON.stringify({ pcrs: { sha256: { "24": ["00"] } } }));
    const r = await attest(stateDir(), "--policy", bad);
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      /--policy .*bad-policy\.json: policy pcrs\.sha256\."24": not a PCR index 0-23 \[ERR_POLICY\]/,
    );
    const noTls = await cli("attest", "--registrar", "127.0.0.1:1", "--tls-dir", dir, "--uuid", UUID);
    assert.equal(noTls.code, 1);
    assert.match(noTls.stderr, /--tls-dir .*: cannot read cacert\.crt/);
    const wrongBank = await cli("attest", "policy", ...peer(), "--pcrs", "0", "--bank", "sha1");
    assert.equal(wrongBank.code, 1);
    assert.match(wrongBank.stderr, /the agent quotes the sha256 bank, not sha1/);
    const badAddr = await cli("attest", "--registrar", "nohost", "--tls-dir", dir, "--uuid", UUID);
    assert.notEqual(badAddr.code, 0);
    assert.match(badAddr.stderr, /"nohost" is not HOST:PORT/);
  });
});

test("attest, attest run and attest policy have --help", async () => {
  for (const args of [["attest"], ["attest", "run"], ["attest", "policy"]]) {
    const r = await cli(...args, "--help");
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /Usage: keylime-ts attest/);
  }
});

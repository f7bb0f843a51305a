/** `keylime-ts agent config` and `agent register` as processes: origins of values, the reference, refusals. */
import { strict as assert } from "node:assert";
import { execFile } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { freePort } from "../helpers/free_port.ts";

const dir = mkdtempSync(join(tmpdir(), "agent-cli-conf-"));
after(() => rmSync(dir, { recursive: true, force: true }));

function cli(
  env: Record<string, string>,
  ...args: string[]
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ["run", "-A", "src/main.ts", ...args],
      { env: { ...process.env, KEYLIME_TS_CONFIG_ROOT: dir, ...env }, timeout: 120_000 },
      (err, stdout, stderr) => resolve({ code: err ? (err as { code?: number }).code ?? 1 : 0, stdout, stderr }),
    );
  });
}

describe("keylime-ts agent", () => {
  it("config --json: every key with its value, origin and environment variable", async () => {
    mkdirSync(join(dir, "etc/keylime"), { recursive: true });
    writeFileSync(join(dir, "etc/keylime/agent.conf"), '[agent]\nregistrar_port = 9999\niak_password = "pw"\n');
    const r = await cli({ KEYLIME_AGENT_CONTACT_PORT: "7777" }, "agent", "config", "--json");
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.deepEqual(out.keys.registrar_port, {
      value: 9999,
      origin: join(dir, "etc/keylime/agent.conf"),
      env: "KEYLIME_AGENT_REGISTRAR_PORT",
      actedOn: true,
    });
    assert.equal(out.keys.contact_port.origin, "env KEYLIME_AGENT_CONTACT_PORT");
    assert.equal(out.keys.iak_password.value, "(set)", "secrets are not printed");
    assert.equal(out.keys.uuid.origin, "default");
    assert.match(r.stderr, /iak_password is accepted but this agent does not act on it yet/);
  });

  it("config --reference is docs/agent_config.md", async () => {
    const r = await cli({}, "agent", "config", "--reference");
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, readFileSync("docs/agent_config.md", "utf8"));
  });

  it("a bad value stops with ERR_CONFIG naming key and file", async () => {
    const r = await cli({ KEYLIME_AGENT_CONFIG: join(dir, "bad.conf") }, "agent", "config");
    assert.equal(r.code, 1);
    assert.match(r.stderr, /bad\.conf.*configuration file not found.*ERR_CONFIG/);
    writeFileSync(join(dir, "bad.conf"), '[agent]\ntpm_signing_alg = "dsa"\n');
    const bad = await cli({ KEYLIME_AGENT_CONFIG: join(dir, "bad.conf") }, "agent", "config");
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /bad\.conf: tpm_signing_alg = "dsa" is not allowed; expected one of "rsassa"/);
  });

  it("register with no registrar: a line per retry, then exit 1 with ERR_REGISTRAR", async () => {
    const r = await cli(
      {
        KEYLIME_DIR: join(dir, "agent"),
        KEYLIME_AGENT_REGISTRAR_PORT: String(await freePort()),
        KEYLIME_AGENT_EXPONENTIAL_BACKOFF_MAX_RETRIES: "2",
        KEYLIME_AGENT_EXPONENTIAL_BACKOFF_INITIAL_DELAY: "10",
      },
      "agent",
      "register",
      "--tpm",
      `sim:${join(dir, "sim")}`,
    );
    assert.equal(r.code, 1);
    assert.equal((r.stderr.match(/WARN {2}keylime_agent > .*retry \d of 2/g) ?? []).length, 2, r.stderr);
    assert.match(r.stderr, /failed after 3 attempts \(connection refused\).*ERR_REGISTRAR/);
  });
});

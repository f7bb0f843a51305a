import { strict as assert } from "node:assert";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, it } from "node:test";
import {
  agentPaths,
  configReference,
  enabledApiVersions,
  loadAgentConfig,
  parseList,
  resolvePath,
} from "../../src/agent/config.ts";
import { AGENT_KEY_NAMES, AGENT_KEYS, envName } from "../../src/agent/config_keys.ts";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** A config root with the given files (paths relative to the root). */
function root(files: Record<string, string>): string {
  const r = mkdtempSync(join(tmpdir(), "agent-conf-"));
  dirs.push(r);
  for (const [p, text] of Object.entries(files)) {
    mkdirSync(join(r, p, ".."), { recursive: true });
    writeFileSync(join(r, p), text);
  }
  return r;
}

function load(files: Record<string, string>, env: Record<string, string> = {}, file?: string) {
  const warnings: string[] = [];
  const r = root(files);
  const loaded = loadAgentConfig({
    root: r,
    env,
    warn: (m) => warnings.push(m),
    ...(file ? { file: join(r, file) } : {}),
  });
  return { ...loaded, warnings, root: r };
}

describe("agent configuration", () => {
  it("defaults are rust-keylime's", () => {
    const { config, origin, files } = load({});
    assert.equal(config.uuid, "d432fbb3-d2f1-4a97-9ef7-75bd81c00000");
    assert.equal(config.registrar_port, 8890);
    assert.equal(config.registrar_tls_port, 8891);
    assert.equal(config.contact_port, 9002);
    assert.equal(config.enable_agent_mtls, true);
    assert.equal(config.tpm_encryption_alg, "rsa");
    assert.equal(config.exponential_backoff_initial_delay, 10000);
    assert.deepEqual(config.disabled_signing_algorithms, ["ecschnorr"]);
    assert.equal(origin.uuid, "default");
    assert.deepEqual(files, []);
  });

  it("reads files in order: /usr/etc, its .d (by name), /etc, its .d; later wins", () => {
    const { config, origin, files, root: r } = load({
      "usr/etc/keylime/agent.conf":
        '[agent]\nregistrar_port = 1001\ncontact_port = 1001\nuuid = "a"\nip = "10.0.0.1"\n',
      "usr/etc/keylime/agent.conf.d/20.conf": "[agent]\ncontact_port = 1020\n",
      "usr/etc/keylime/agent.conf.d/10.conf": "[agent]\ncontact_port = 1010\nregistrar_port = 1010\n",
      "etc/keylime/agent.conf": '[agent]\nregistrar_port = 2001\nuuid = "b"\n',
      "etc/keylime/agent.conf.d/x.conf": '[agent]\nuuid = "c"\n',
    });
    assert.equal(config.contact_port, 1020);
    assert.equal(config.registrar_port, 2001);
    assert.equal(config.uuid, "c");
    assert.equal(config.ip, "10.0.0.1");
    assert.equal(origin.contact_port, join(r, "usr/etc/keylime/agent.conf.d/20.conf"));
    assert.equal(origin.uuid, join(r, "etc/keylime/agent.conf.d/x.conf"));
    assert.deepEqual(files.map((f) => f.slice(r.length + 1)), [
      "usr/etc/keylime/agent.conf",
      "usr/etc/keylime/agent.conf.d/10.conf",
      "usr/etc/keylime/agent.conf.d/20.conf",
      "etc/keylime/agent.conf",
      "etc/keylime/agent.conf.d/x.conf",
    ]);
  });

  it("KEYLIME_AGENT_CONFIG replaces the files; --config replaces both; env still overrides", () => {
    const files = {
      "etc/keylime/agent.conf": "[agent]\nregistrar_port = 2001\ncontact_port = 2001\n",
      "alt.conf": "[agent]\nregistrar_port = 3001\n",
      "cli.conf": "[agent]\nregistrar_port = 4001\n",
    };
    const r = root(files);
    const viaEnv = loadAgentConfig({ root: r, env: { KEYLIME_AGENT_CONFIG: join(r, "alt.conf") } });
    assert.equal(viaEnv.config.registrar_port, 3001);
    assert.equal(viaEnv.config.contact_port, 9002, "the /etc file is not read");
    const viaCli = loadAgentConfig({
      root: r,
      file: join(r, "cli.conf"),
      env: { KEYLIME_AGENT_CONFIG: join(r, "alt.conf"), KEYLIME_AGENT_CONTACT_PORT: "5005" },
    });
    assert.equal(viaCli.config.registrar_port, 4001);
    assert.equal(viaCli.config.contact_port, 5005);
    assert.equal(viaCli.origin.contact_port, "env KEYLIME_AGENT_CONTACT_PORT");
    assert.throws(
      () => loadAgentConfig({ root: r, env: { KEYLIME_AGENT_CONFIG: join(r, "missing.conf") } }),
      (e: Error & { code?: string }) =>
        e.code === "ERR_CONFIG" && /missing\.conf/.test(e.message) && /KEYLIME_AGENT_CONFIG/.test(e.message),
    );
  });

  it("environment overrides every declared key by KEYLIME_AGENT_<KEY>, and KEYLIME_DIR wins for keylime_dir", () => {
    const { config, origin } = load(
      { "etc/keylime/agent.conf": '[agent]\nkeylime_dir = "/from/file"\nenable_agent_mtls = true\n' },
      {
        KEYLIME_AGENT_ENABLE_AGENT_MTLS: "false",
        KEYLIME_AGENT_REGISTRAR_IP: "192.0.2.7",
        KEYLIME_AGENT_KEYLIME_DIR: "/from/agent-env",
        KEYLIME_DIR: "/from/keylime-dir",
        KEYLIME_AGENT_DISABLED_SIGNING_ALGORITHMS: "[ecschnorr, rsapss]",
      },
    );
    assert.equal(config.enable_agent_mtls, false);
    assert.equal(config.registrar_ip, "192.0.2.7");
    assert.equal(config.keylime_dir, "/from/keylime-dir");
    assert.equal(origin.keylime_dir, "env KEYLIME_DIR");
    assert.deepEqual(config.disabled_signing_algorithms, ["ecschnorr", "rsapss"]);
    for (const key of AGENT_KEY_NAMES) assert.equal(envName(key), `KEYLIME_AGENT_${key.toUpperCase()}`);
  });

  it("an unknown key warns with file and key; a key not acted on is reported", () => {
    const { warnings, root: r } = load({
      "etc/keylime/agent.conf": '[agent]\nregistar_ip = "x"\nrun_as = "keylime:tss"\n',
    });
    const file = join(r, "etc/keylime/agent.conf");
    assert.ok(warnings.some((w) => w.includes(file) && w.includes('"registar_ip"')), warnings.join("\n"));
    assert.ok(warnings.some((w) => w.includes("run_as") && /not act on it yet/.test(w)), warnings.join("\n"));
  });

  it("a bad value is ERR_CONFIG naming key, file and what is allowed", () => {
    const cases: [string, RegExp][] = [
      ["registrar_port = 70000", /registrar_port = 70000 .*integer from 1 to 65535/],
      ['registrar_port = "80a"', /registrar_port = "80a" .*integer from 1 to 65535/],
      ['tpm_hash_alg = "md5"', /tpm_hash_alg = "md5" .*one of "sha1", "sha256"/],
      ['ek_handle = "0x01c00002"', /ek_handle .*persistent handle 0x81000000/],
      ['enable_agent_mtls = "maybe"', /enable_agent_mtls .*true or false/],
      ['api_versions = "2.x"', /api_versions .*"default", "latest"/],
    ];
    for (const [line, why] of cases) {
      const r = root({ "etc/keylime/agent.conf": `[agent]\n${line}\n` });
      assert.throws(
        () => loadAgentConfig({ root: r, env: {} }),
        (e: Error & { code?: string }) =>
          e.code === "ERR_CONFIG" && e.message.includes(join(r, "etc/keylime/agent.conf")) && why.test(e.message),
        line,
      );
    }
    assert.throws(
      () => load({}, { KEYLIME_AGENT_CONTACT_PORT: "-1" }),
      (e: Error) => /env KEYLIME_AGENT_CONTACT_PORT: contact_port = "-1"/.test(e.message),
    );
    assert.throws(
      () => load({ "etc/keylime/agent.conf": "[agent\nx=" }),
      (e: Error & { code?: string }) => e.code === "ERR_CONFIG" && /not valid TOML/.test(e.message),
    );
  });

  it("a secret's bad value is not echoed", () => {
    assert.throws(
      () => load({ "etc/keylime/agent.conf": '[agent]\ntpm_ownerpassword = ["hunter2x"]\n' }),
      (e: Error) => !e.message.includes("hunter2x") && /tpm_ownerpassword/.test(e.message),
    );
  });

  it("resolves path options as rust-keylime does", () => {
    assert.equal(resolvePath("default", "/k", "agent_data.json"), "/k/agent_data.json");
    assert.equal(resolvePath("", "/k", "agent_data.json"), "/k/agent_data.json");
    assert.equal(resolvePath("sub/a.json", "/k", "agent_data.json"), "/k/sub/a.json");
    assert.equal(resolvePath("/abs/a.json", "/k", "agent_data.json"), "/abs/a.json");
    const { config } = load({}, { KEYLIME_DIR: "/kd", KEYLIME_AGENT_SERVER_CERT: "c.pem" });
    const p = agentPaths(config);
    assert.equal(p.serverCert, "/kd/c.pem");
    assert.equal(p.payloadKey, "/kd/payload-private.pem");
  });

  it("api_versions: default, latest, list (unsupported skipped)", () => {
    const sup = ["2.1", "2.2", "2.3"];
    const cfg = (v: string) => ({ ...load({}).config, api_versions: v });
    assert.deepEqual(enabledApiVersions(cfg("default"), sup), sup);
    assert.deepEqual(enabledApiVersions(cfg("latest"), sup), ["2.3"]);
    const w: string[] = [];
    assert.deepEqual(enabledApiVersions(cfg("2.3, 9.9, 2.1"), sup, (m) => w.push(m)), ["2.1", "2.3"]);
    assert.ok(w.some((m) => m.includes("9.9")));
    assert.deepEqual(enabledApiVersions(cfg("9.9"), sup, () => {}), sup);
    assert.deepEqual(parseList('["a", "b"]'), ["a", "b"]);
  });

  it("the generated reference lists every key and matches docs/agent_config.md", () => {
    const ref = configReference();
    for (const key of AGENT_KEY_NAMES) {
      assert.ok(ref.includes(`| \`${key}\` |`), key);
      assert.ok(ref.includes(envName(key)), key);
    }
    assert.ok(Object.hasOwn(AGENT_KEYS, "registrar_tls_port"));
    const committed = readFileSync(new URL("../../docs/agent_config.md", import.meta.url), "utf8");
    assert.equal(committed, ref, "regenerate with: keylime-ts agent config --reference > docs/agent_config.md");
  });
});

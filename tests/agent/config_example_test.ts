/**
 * packaging/agent.conf is the generated example (so it cannot drift from config_keys.ts): every key once,
 * commented out; loaded as installed it changes nothing, and with every line uncommented it still loads to
 * the defaults (each value is valid TOML of the key's kind).
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadAgentConfig } from "../../src/agent/config.ts";
import { exampleAgentConf } from "../../src/agent/config_example.ts";
import { AGENT_KEY_NAMES, AGENT_KEYS } from "../../src/agent/config_keys.ts";

const dir = mkdtempSync(join(tmpdir(), "config-example-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const committed = readFileSync(new URL("../../packaging/agent.conf", import.meta.url), "utf8");
const defaults = Object.fromEntries(AGENT_KEY_NAMES.map((k) => [k, AGENT_KEYS[k].default]));
const load = (text: string) => {
  const file = join(dir, "agent.conf");
  writeFileSync(file, text);
  const warnings: string[] = [];
  return { ...loadAgentConfig({ file, env: {}, warn: (m) => warnings.push(m) }), warnings };
};

test("packaging/agent.conf is the generated example", () => {
  assert.equal(committed, exampleAgentConf(), "regenerate: keylime-ts agent config --example > packaging/agent.conf");
});

test("every key once, commented out; as installed it sets nothing", () => {
  for (const key of AGENT_KEY_NAMES) {
    assert.equal(committed.split("\n").filter((l) => l.startsWith(`#${key} = `)).length, 1, key);
  }
  const installed = load(committed);
  assert.deepEqual(installed.config, defaults);
  assert.deepEqual(installed.warnings, []);
});

test("uncommented, every value is valid for its key and is its default", () => {
  const keyLine = new RegExp(`^#(${AGENT_KEY_NAMES.join("|")}) = `);
  const uncommented = committed.split("\n").map((l) => (keyLine.test(l) ? l.slice(1) : l)).join("\n");
  const all = load(uncommented);
  assert.deepEqual(all.config, defaults);
  assert.ok(Object.values(all.origin).every((o) => o.endsWith("agent.conf")));
});

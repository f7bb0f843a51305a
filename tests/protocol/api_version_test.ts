/** API versions: path prefixes and the agent's negotiation as rust-keylime does it (keylime.md §1.1). */
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  AGENT_SUPPORTED_VERSIONS,
  compareVersions,
  fallbackVersions,
  negotiateVersion,
  parseVersionPrefix,
} from "../../src/protocol/api_version.ts";

test("version prefixes", () => {
  assert.deepEqual(parseVersionPrefix("/v2.6/agents/x"), { major: 2, minor: 6, rest: "/agents/x" });
  assert.deepEqual(parseVersionPrefix("/v2/agents"), { major: 2, minor: undefined, rest: "/agents" });
  assert.deepEqual(parseVersionPrefix("/v2.6"), { major: 2, minor: 6, rest: "" });
  assert.equal(parseVersionPrefix("/v2.6x/agents"), undefined);
  assert.equal(parseVersionPrefix("/version"), undefined);
  assert.ok(compareVersions("2.10", "2.9") > 0);
});

test("current_version wins when enabled", () => {
  const info = { current_version: "2.6", supported_versions: ["1.0", "2.0", "2.5", "2.6", "3.0"] };
  assert.equal(negotiateVersion(AGENT_SUPPORTED_VERSIONS, info), "2.6");
});

test("otherwise the newest enabled version the registrar lists, never 3.x", () => {
  const info = { current_version: "3.0", supported_versions: ["2.0", "2.1", "2.3", "3.0"] };
  assert.equal(negotiateVersion([...AGENT_SUPPORTED_VERSIONS, "3.0"], info), "2.3");
  assert.equal(negotiateVersion(["2.4"], info), undefined);
  assert.equal(negotiateVersion(["2.1", "2.2"], { current_version: "2.2", supported_versions: [] }), "2.2");
});

test("fallback order is newest first, 2.x only", () => {
  assert.deepEqual(fallbackVersions(["2.1", "3.0", "2.10", "2.6"]), ["2.10", "2.6", "2.1"]);
});

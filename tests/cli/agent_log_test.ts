/** The agent's log: RUST_LOG-style levels (KEYLIME_TS_LOG first) and pretty_env_logger's line layout. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { logLevelFromEnv, parseLogLevel, stderrServiceLog } from "../../src/cli/agent_log.ts";

test("levels as RUST_LOG writes them; the keylime_agent entry wins", () => {
  assert.equal(parseLogLevel("debug"), "debug");
  assert.equal(parseLogLevel("keylime_agent=trace,info"), "trace");
  assert.equal(parseLogLevel("info,keylime_agent=warn"), "warn");
  assert.equal(parseLogLevel("hyper=debug"), undefined);
  assert.equal(parseLogLevel("loud"), undefined);
  assert.equal(logLevelFromEnv({}), "info");
  assert.equal(logLevelFromEnv({ RUST_LOG: "debug", KEYLIME_TS_LOG: "error" }), "error");
});

test("lines below the level are dropped; the layout is pretty_env_logger's", () => {
  const out: string[] = [];
  const log = stderrServiceLog("info", (s) => out.push(s));
  log.debug("hidden");
  log.info("Starting server with API versions: 2.1, 2.2");
  log.warn("careful");
  assert.deepEqual(out, [
    " INFO  keylime_agent > Starting server with API versions: 2.1, 2.2\n",
    " WARN  keylime_agent > careful\n",
  ]);
});

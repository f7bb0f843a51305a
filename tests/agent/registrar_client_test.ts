/** The registrar client's retry policy, against a port where nothing listens (a registrar that is down). */
import { strict as assert } from "node:assert";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { describe, it } from "node:test";
import { backoffDelay, RegistrarClient } from "../../src/agent/registrar_client.ts";
import { recordingLog } from "../helpers/agent_log.ts";
import { freePort } from "../helpers/free_port.ts";

describe("registrar client", () => {
  it("backoff doubles from the initial delay up to the cap, with jitter in the upper half", () => {
    const p = { maxRetries: 10, initialDelayMs: 100, maxDelayMs: 1000 };
    assert.equal(backoffDelay(p, 1, () => 0), 50);
    assert.equal(backoffDelay(p, 1, () => 0.999999), 100);
    assert.equal(backoffDelay(p, 3, () => 0.999999), 400);
    assert.equal(backoffDelay(p, 5, () => 0.999999), 1000);
    assert.equal(backoffDelay(p, 60, () => 0), 500);
  });

  it("retries an unreachable registrar with a log line per attempt, then gives up with what to check", async () => {
    const log = recordingLog();
    const client = new RegistrarClient({
      ip: "127.0.0.1",
      port: await freePort(),
      enabledVersions: ["2.1", "2.6"],
      retry: { maxRetries: 3, initialDelayMs: 1, maxDelayMs: 4 },
      log,
    });
    await assert.rejects(client.negotiate(), (e: Error & { code?: string }) => {
      assert.equal(e.code, "ERR_REGISTRAR");
      assert.match(e.message, /failed after 4 attempts \(connection refused\)/);
      assert.match(e.message, /registrar_ip\/registrar_port/);
      return true;
    });
    assert.equal(log.lines.filter((l) => /retry \d of 3/.test(l)).length, 3, log.lines.join("\n"));
    assert.ok(log.lines[0]!.startsWith("INFO Requesting registrar API version to http://127.0.0.1:"));
  });

  it("a registrar that accepts but never answers: no answer in time", async () => {
    const silent = createServer(() => {}); // holds each connection open, says nothing
    await new Promise<void>((ok) => silent.listen(0, "127.0.0.1", ok));
    try {
      const client = new RegistrarClient({
        ip: "127.0.0.1",
        port: (silent.address() as AddressInfo).port,
        enabledVersions: ["2.6"],
        retry: { maxRetries: 0, initialDelayMs: 1, maxDelayMs: 1 },
        log: recordingLog(),
        timeoutMs: 200,
      });
      await assert.rejects(client.negotiate(), /failed after 1 attempt \(no answer in time\)/);
    } finally {
      silent.closeAllConnections();
      await new Promise((ok) => silent.close(ok));
    }
  });

  it("brackets an IPv6 registrar address", () => {
    const c = new RegistrarClient({
      ip: "::1",
      port: 8890,
      enabledVersions: ["2.6"],
      retry: { maxRetries: 0, initialDelayMs: 1, maxDelayMs: 1 },
      log: recordingLog(),
    });
    assert.equal(c.base, "http://[::1]:8890");
  });
});

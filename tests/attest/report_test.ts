/** attest's report: the text lines people read, and what --watch says changed between two rounds. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { type AttestReport, changedChecks, type CheckResult, CHECKS, renderReport } from "../../src/attest/report.ts";

const report = (statuses: Partial<Record<keyof typeof CHECKS, CheckResult["status"]>>): AttestReport => {
  const checks = Object.entries(statuses).map(([id, status]) => ({
    id: id as keyof typeof CHECKS,
    status: status!,
    detail: `${id} ${status}`,
    ms: 1,
  }));
  return { uuid: "u1", time: "t", ok: checks.every((c) => c.status !== "fail"), checks, agent: "https://a:1" };
};

test("the text report: one line per check with its outcome and why, then the verdict naming the failures", () => {
  const text = renderReport(report({ registrar: "pass", "pcr-policy": "fail", "uefi-log": "skip" }));
  const lines = text.split("\n");
  assert.equal(lines[0], "attestation of agent u1 at https://a:1 (t)");
  assert.match(lines[1]!, /^ {2}pass {2}registrar record \(active\) +1 ms {2}registrar pass$/);
  assert.match(lines[2]!, /^ {2}FAIL {2}PCR values allowed by the policy +1 ms {2}pcr-policy fail$/);
  assert.match(lines[3]!, /^ {2}skip {2}UEFI event log/);
  assert.equal(lines[4], "attestation FAILED: pcr-policy");
  assert.match(renderReport(report({ registrar: "pass" })), /\nattestation passed$/);
});

test("--watch names the checks whose outcome changed, and only those", () => {
  const before = report({ registrar: "pass", "pcr-policy": "pass", ima: "pass", clock: "pass" });
  const after = report({ registrar: "pass", "pcr-policy": "fail", ima: "skip", clock: "pass" });
  assert.deepEqual(changedChecks(before, after), ["pcr-policy: pass -> fail", "ima: pass -> skip"]);
  assert.deepEqual(changedChecks(after, after), []);
});

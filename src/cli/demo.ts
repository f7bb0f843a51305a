/**
 * `keylime-ts demo`: attestation end to end with nothing installed and nothing configured, in one process
 * and a temporary directory: the embedded simulator, the reference registrar trusting its EK CA, the agent
 * with mTLS registering with it, then `attest` passing, catching a PCR extended on the machine, and catching
 * a swapped NK. One line per step with its time; a step whose outcome is not the expected one ends the demo
 * with exit status 1.
 */
import type { Command } from "commander";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { currentPcrs } from "../attest/current_pcrs.ts";
import { fetchRegistrarRecord } from "../attest/peers.ts";
import type { AttestReport, CheckId } from "../attest/report.ts";
import { attestAgent } from "../attest/run.ts";
import type { AttestState } from "../attest/state.ts";
import { readTenantTls } from "../attest/tls_dir.ts";
import { attestPolicyJson, policyFromPcrs } from "../protocol/attest_policy.ts";
import type { RunningRegistrar } from "../registrar/server.ts";
import { ekTrustFrom } from "./attest.ts";
import {
  DEMO_UUID,
  type DemoAgent,
  extendPcr,
  type Machine,
  startDemoAgent,
  startMachine,
  startRegistrarIn,
  stopMachine,
} from "./demo_world.ts";
import { print, toJson, warn } from "./output.ts";

interface Step {
  readonly step: string;
  readonly ok: boolean;
  readonly ms: number;
  readonly detail: string;
}

const POLICY_PCRS = [0, 1, 2, 3, 4, 5, 6, 7, 23];
const WARNING = "INSECURE: software TPM. The demo runs on keylime-ts's embedded simulator, which proves nothing.";

class DemoFailure extends Error {}

/** The failed checks of a report, with their reasons. */
const failures = (r: AttestReport) => r.checks.filter((c) => c.status === "fail");

/** An attestation that must fail `check`: its reason is the step's detail. */
function expectFailure(r: AttestReport, check: CheckId): string {
  const failed = failures(r);
  const hit = failed.find((c) => c.id === check);
  if (!hit) {
    const got = failed.length ? failed.map((c) => c.id).join(", ") : "nothing";
    throw new DemoFailure(`expected the ${check} check to fail, ${got} failed`);
  }
  const others = failed.filter((c) => c !== hit).map((c) => c.id);
  return `${check}: ${hit.detail}${others.length ? ` (still failing: ${others.join(", ")})` : ""}`;
}

function handCommands(dir: string, registrar: RunningRegistrar): string[] {
  const peer = `--registrar 127.0.0.1:${registrar.tlsPort} --tls-dir ${dir}/tls --uuid ${DEMO_UUID}`;
  return [
    `state kept in ${dir}. To go on by hand (the machine resumes as the demo left it, PCR 23 included):`,
    `  keylime-ts registrar --db ${dir}/registrar.sqlite --tls-dir ${dir}/tls --tpm-ca-dir ${dir}/tpm-ca ` +
    `--port ${registrar.port} --tls-port ${registrar.tlsPort}`,
    `  KEYLIME_AGENT_CONFIG=${dir}/agent.conf keylime-ts agent run --tpm sim:${dir}/tpm`,
    `  keylime-ts attest ${peer} --tpm-ca-dir ${dir}/tpm-ca --policy ${dir}/policy.json --state-dir ${dir}/attest`,
    `  keylime-ts attest policy ${peer} --pcrs 0-7,23 > ${dir}/policy.json   # accept PCR 23 as it is now`,
  ];
}

export function demoCommand(program: Command): void {
  program
    .command("demo")
    .description(
      "attestation end to end on the embedded software TPM: registrar, agent with mTLS, attest passing, " +
        "then catching a changed PCR and a swapped NK (no TPM or configuration needed)",
    )
    .option("--json", "print the whole report as JSON")
    .option("--keep", "keep the directory and print the commands to go on by hand")
    .action(async (o: { json?: boolean; keep?: boolean }) => {
      const steps: Step[] = [];
      const reports: AttestReport[] = [];
      const started = performance.now();
      const dir = await mkdtemp(join(tmpdir(), "keylime-ts-demo-"));
      warn(WARNING);

      const run = async <T>(step: string, fn: () => Promise<[T, string]>): Promise<T> => {
        const t0 = performance.now();
        const line = (ok: boolean, detail: string) => {
          const entry = { step, ok, ms: performance.now() - t0, detail };
          steps.push(entry);
          if (!o.json) {
            const time = `${(entry.ms / 1000).toFixed(2)} s`.padStart(8);
            print(`${time}  ${ok ? "ok  " : "FAIL"}  ${step.padEnd(48)} ${detail}`);
          }
        };
        try {
          const [value, detail] = await fn();
          line(true, detail);
          return value;
        } catch (e) {
          line(false, (e as Error).message);
          throw new DemoFailure((e as Error).message);
        }
      };

      let machine: Machine | undefined;
      let registrar: RunningRegistrar | undefined;
      let agent: DemoAgent | undefined;
      try {
        const m = machine = await run("manufacture a software TPM, boot the machine", async () => {
          const made = await startMachine(dir);
          return [made, `EK certificates and a CA in ${made.tpmDir}; 3 files measured into PCR 10`];
        });
        const r = registrar = await run("start the reference registrar", async () => {
          const started = await startRegistrarIn(dir, m.tpmCaDir);
          return [started, `agents: http://127.0.0.1:${started.port}, tenants: https://127.0.0.1:${started.tlsPort}`];
        });
        const tls = await readTenantTls(r.tlsDir);
        const ekTrust = await ekTrustFrom([m.tpmCaDir]);
        const peer = { registrar: `127.0.0.1:${r.tlsPort}`, tls, uuid: DEMO_UUID };
        const a = agent = await run("start the agent: register, certify the NK", async () => {
          const started = await startDemoAgent(dir, m, r);
          const { record } = await fetchRegistrarRecord(peer.registrar, tls, DEMO_UUID);
          const how = record.nk_tpm
            ? `the registrar verified TPM2_Certify of the NK (the mTLS key) by the AK at ${record.nk_verified_at}`
            : "classic binding (no NK certification)";
          return [started, `${DEMO_UUID.slice(0, 8)}… registered and active; ${how}`];
        });
        const policy = await run("write a policy from the quoted PCRs 0-7,23", async () => {
          const { hashAlg, values } = await currentPcrs({ ...peer, pcrs: POLICY_PCRS });
          const p = policyFromPcrs(hashAlg, values);
          await writeFile(join(dir, "policy.json"), attestPolicyJson(p));
          return [p, `${dir}/policy.json`];
        });
        let state: AttestState = {};
        const attest = async () => {
          const out = await attestAgent({ ...peer, ekTrust, policy, state });
          state = out.state;
          reports.push(out.report);
          return out.report;
        };
        await run("attest the agent", async () => {
          const rep = await attest();
          if (!rep.ok) throw new DemoFailure(failures(rep).map((c) => `${c.id}: ${c.detail}`).join("; "));
          const n = (s: string) => rep.checks.filter((c) => c.status === s).length;
          return [rep, `all ${n("pass")} checks passed (${n("skip")} skipped), NK binding by ${rep.binding}`];
        });
        await run("a change on the machine: extend PCR 23", async () => {
          await extendPcr(m, 23, "an unexpected change");
          return [undefined, "PCR 23 extended by software on the machine"];
        });
        await run(
          "attest again: the change is caught",
          async () => [undefined, expectFailure(await attest(), "pcr-policy")],
        );
        await run("swap the agent's NK (new keys, registers again)", async () => {
          await a.swapNk();
          return [undefined, "the agent restarted with a new NK and mTLS key"];
        });
        await run(
          "attest again: the NK binding check fails",
          async () => [undefined, expectFailure(await attest(), "nk-binding")],
        );
      } catch (e) {
        if (!(e instanceof DemoFailure)) throw e;
        process.exitCode = 1;
        if (!o.json && agent?.log.length) print(`the agent's last log lines:\n${agent.log.slice(-5).join("")}`);
      } finally {
        await agent?.close().catch(() => {});
        await registrar?.close().catch(() => {});
        if (machine) await stopMachine(machine).catch(() => {});
        if (!o.keep) await rm(dir, { recursive: true, force: true });
      }
      const totalMs = performance.now() - started;
      const ok = process.exitCode !== 1;
      if (o.json) {
        print(toJson({ ok, totalMs, insecure: "software TPM", ...(o.keep ? { dir } : {}), steps, reports }));
        return;
      }
      print(`${ok ? "all steps passed" : "a step FAILED"} in ${(totalMs / 1000).toFixed(1)} s`);
      if (o.keep && registrar) handCommands(dir, registrar).forEach((l) => print(l));
    });
}

/**
 * `keylime-ts attest run`: one attestation, or one every --watch seconds keeping the state between rounds
 * and saying what changed. Exit status 0 only when the (last) round passed.
 */
import { attestAgent } from "../attest/run.ts";
import { type AttestReport, changedChecks, renderReport } from "../attest/report.ts";
import { defaultStateDir, loadState, saveState } from "../attest/state.ts";
import { readTenantTls } from "../attest/tls_dir.ts";
import { ekTrustFrom, type PeerOptions, readPolicyFile } from "./attest.ts";
import { print, progress, toJson } from "./output.ts";

export interface RunOptions extends PeerOptions {
  policy?: string;
  uefiLog?: boolean;
  tpmCaDir?: string[];
  stateDir?: string;
  json?: boolean;
  watch?: number;
  count?: number;
}

export async function runAttest(o: RunOptions): Promise<void> {
  const tls = await readTenantTls(o.tlsDir);
  const policy = o.policy === undefined ? undefined : await readPolicyFile(o.policy);
  const ekTrust = await ekTrustFrom(o.tpmCaDir);
  const stateDir = o.stateDir ?? defaultStateDir();
  let state = await loadState(stateDir, o.uuid);
  let stopping = false;
  let wake: (() => void) | undefined;
  const onSignal = () => {
    stopping = true;
    wake?.();
  };
  if (o.watch) process.once("SIGINT", onSignal).once("SIGTERM", onSignal);

  let last: AttestReport | undefined;
  try {
    for (let round = 1; !stopping; round++) {
      const out = await attestAgent({
        registrar: o.registrar,
        tls,
        uuid: o.uuid,
        ekTrust,
        ...(policy ? { policy } : {}),
        ...(o.uefiLog ? { uefiLog: true } : {}),
        state,
        progress,
      });
      state = out.state;
      await saveState(stateDir, o.uuid, state);
      if (o.json) print(o.watch ? JSON.stringify(JSON.parse(toJson(out.report))) : toJson(out.report));
      else {
        const changes = last ? changedChecks(last, out.report) : [];
        print(renderReport(out.report));
        if (last) {
          print(
            changes.length ? `changed since the last round: ${changes.join("; ")}` : "no change since the last round",
          );
        }
      }
      last = out.report;
      if (!o.watch || (o.count !== undefined && round >= o.count)) break;
      await new Promise<void>((ok) => {
        const t = setTimeout(ok, o.watch! * 1000);
        wake = () => {
          clearTimeout(t);
          ok();
        };
      });
    }
  } finally {
    process.off("SIGINT", onSignal).off("SIGTERM", onSignal);
  }
  process.exitCode = last?.ok ? 0 : 1;
}

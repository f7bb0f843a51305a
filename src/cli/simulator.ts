/**
 * `keylime-ts simulator`: serve the embedded software TPM to other programs (tpm2-tools, rust-keylime,
 * another keylime-ts) over the swtpm or mssim protocol, and export the CA that signs its EK certificates.
 */
import { type Command, InvalidArgumentError } from "commander";
import { readState } from "../../simulator/state_file.ts";
import { caCertificatePem, openSimulator, STATE_FILE } from "../../simulator/index.ts";
import { startListening } from "../../simulator/listen_uri.ts";
import { Tpm } from "../tpm/client.ts";
import { Startup } from "../tpm/commands.ts";
import { TPM_SU } from "../tpm/constants.ts";
import { simulatorTransport } from "../../simulator/index.ts";
import { join } from "node:path";
import { print, printJson, warn } from "./output.ts";
import { defaultSimulatorDir } from "./select_tpm.ts";
import { fromHex } from "../util/encoding.ts";

function parseSeed(v: string): Uint8Array {
  if (!/^(?:[0-9a-fA-F]{2}){16,64}$/.test(v)) throw new InvalidArgumentError("--seed must be 16 to 64 bytes of hex");
  return fromHex(v);
}

export function simulatorCommand(program: Command): void {
  const sim = program
    .command("simulator")
    .description("serve the embedded software TPM over the swtpm or mssim protocol (INSECURE: proves nothing)")
    .option(
      "--listen <uri...>",
      "swtpm:host=H,port=P | swtpm:path=S | mssim:host=H,port=P | mssim:path=S (port 0 = free)",
    )
    .option("--state <dir>", "state directory (created; the TPM is manufactured on first use)")
    .option("--seed <hex>", "manufacture a reproducible TPM from this seed (first use only)", parseSeed)
    .option("--slots <n>", "transient object slots", (v) => Number(v), 16)
    .option("--no-startup", "leave TPM2_Startup to the client (tpm2-tools never sends it)")
    .option("--json", "print the listening addresses as JSON")
    .action(
      async (
        o: { listen?: string[]; state?: string; seed?: Uint8Array; slots: number; startup: boolean; json?: boolean },
      ) => {
        const stateDir = o.state ?? defaultSimulatorDir();
        const opened = await openSimulator({ stateDir, objectSlots: o.slots, ...(o.seed ? { seed: o.seed } : {}) });
        warn(`INSECURE: software TPM (state ${opened.statePath}); it proves nothing about this machine`);
        if (o.startup) {
          const tpm = new Tpm(simulatorTransport(opened.engine));
          await tpm.execute(Startup, { startupType: TPM_SU.CLEAR });
        }
        const servers = await Promise.all(
          (o.listen ?? ["swtpm:host=127.0.0.1,port=0"]).map((l) => startListening(opened.engine, l)),
        );
        if (o.json) {
          printJson({
            state: opened.statePath,
            manufactured: opened.manufactured,
            listen: servers.map((s) => s.uri),
          });
        } else for (const s of servers) print(`listening: ${s.uri}   (TPM2TOOLS_TCTI=${s.uri})`);
        const stop = async () => {
          await Promise.all(servers.map((s) => s.close()));
          await opened.engine.close();
          process.exit(0);
        };
        process.once("SIGINT", stop);
        process.once("SIGTERM", stop);
        // A client's CMD_SHUTDOWN or mssim STOP ends that server; when all are gone, so is the simulator.
        await Promise.all(servers.map((s) => s.closed));
        await opened.engine.close();
      },
    );

  sim
    .command("ca")
    .description("print the CA certificate (PEM) that signed this simulator's EK certificates")
    .option("--state <dir>", "state directory")
    .option("--json", "print as JSON")
    .action(async (o: { state?: string; json?: boolean }) => {
      const dir = o.state ?? defaultSimulatorDir();
      const p = await readState(join(dir, STATE_FILE));
      if (!p) throw new Error(`no simulator state in ${dir}; run keylime-ts simulator (or any command) first`);
      const pem = caCertificatePem(p);
      if (o.json) return printJson({ state: dir, caCertificatePem: pem });
      process.stdout.write(pem);
    });
}

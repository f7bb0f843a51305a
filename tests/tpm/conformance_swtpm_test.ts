/** The conformance suite against swtpm over each wire path: TCP, unix socket, mssim framing. */
import { Tpm } from "../../src/tpm/client.ts";
import { openTransport } from "../../src/tpm/transport/uri.ts";
import { MssimTransport } from "../../src/tpm/transport/mssim.ts";
import { startSwtpm, swtpmSkipReason } from "../helpers/swtpm.ts";
import { type Backend, conformanceSuite } from "./conformance.ts";
import { test } from "node:test";

const skip = swtpmSkipReason();

async function swtpmBackend(kind: "tcp" | "unix" | "mssim"): Promise<Backend> {
  const s = await startSwtpm({ transport: kind === "unix" ? "unix" : "tcp" });
  // swtpm's data port also accepts the mssim command header; its port + 1 is swtpm's control
  // channel, not an mssim platform port, so no platform signals are sent.
  const transport = kind === "mssim"
    ? new MssimTransport({ host: "127.0.0.1", port: s.port! }, { platform: false })
    : openTransport(s.uri);
  const tpm = new Tpm(transport);
  return {
    tpm,
    hasRsaEkCert: true,
    async stop() {
      await tpm.close();
      await s.stop();
    },
  };
}

if (skip) {
  test("TPM conformance against swtpm", { skip }, () => {});
} else {
  conformanceSuite("swtpm over TCP", () => swtpmBackend("tcp"));
  conformanceSuite("swtpm over a unix socket", () => swtpmBackend("unix"));
  conformanceSuite("swtpm with mssim framing", () => swtpmBackend("mssim"));
}

/**
 * `keylime-ts agent mtls-cert`: the agent's self-signed mTLS certificate for the PEM private key on standard
 * input (CN = uuid, 365 days, the SANs of the contact address), as the agent makes it on its first start. The
 * agent runs this in a process of its own (mtls_cert_process.ts).
 */
import type { Command } from "commander";
import { createPrivateKey, createPublicKey } from "node:crypto";
import { selfSignedCertificate } from "../agent/state.ts";
import { print, printJson } from "./output.ts";

/** A PEM private key is a few KiB. */
const MAX_KEY_BYTES = 64 * 1024;

async function readStdin(limit: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of process.stdin) {
    size += (chunk as Buffer).length;
    if (size > limit) throw new Error(`standard input has more than ${limit} bytes: not a PEM private key`);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString("utf8");
}

export function agentMtlsCertCommand(agent: Command): void {
  agent.command("mtls-cert")
    .description("print the agent's self-signed mTLS certificate for the PEM private key read from stdin")
    .requiredOption("--uuid <uuid>", "the agent's UUID (the certificate's CN)")
    .option("--contact-ip <address>", "the agent's contact address, added to the SANs", "")
    .option("--json", "print { certificate } as JSON")
    .action(async (o: { uuid: string; contactIp: string; json?: boolean }) => {
      const text = await readStdin(MAX_KEY_BYTES);
      let privateKey;
      try {
        privateKey = createPrivateKey(text);
      } catch (e) {
        throw new Error(`standard input is not a PEM private key (${e instanceof Error ? e.message : String(e)})`);
      }
      const key = { privateKey, publicKey: createPublicKey(privateKey), created: false };
      const certificate = await selfSignedCertificate(key, o.uuid, o.contactIp);
      if (o.json) return printJson({ certificate });
      print(certificate.trimEnd());
    });
}

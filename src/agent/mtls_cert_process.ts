/**
 * The agent's self-signed mTLS certificate made by a short-lived process of this same program
 * (`keylime-ts agent mtls-cert`), so that @peculiar/x509 and all it loads (about 3 MiB that an idle agent
 * would keep to the end) never enter the long-running agent; it runs while the TPM makes the AK. The key
 * goes over the child's standard input, never its command line or environment; what comes back must be a
 * certificate for that key.
 */
import { spawn } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { selfCommand } from "../util/self_command.ts";
import type { KeyFile } from "./state.ts";

/** A certificate is a few KiB; anything past this is not one. */
const MAX_OUTPUT = 64 * 1024;
const TIMEOUT_MS = 60_000;

export class MtlsCertProcessError extends Error {
  readonly code = "ERR_AGENT_MTLS_CERT";
  constructor(message: string) {
    super(`making the mTLS certificate: ${message}`);
    this.name = "MtlsCertProcessError";
  }
}

/** `run`: the process to start; by default this program again (selfCommand), tests give another. */
export function certificateInChildProcess(
  key: KeyFile,
  uuid: string,
  contactIp: string,
  run: { command: string; args: string[] } = selfCommand([
    "agent",
    "mtls-cert",
    "--uuid",
    uuid,
    "--contact-ip",
    contactIp,
  ]),
): Promise<string> {
  const { command, args } = run;
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ["pipe", "pipe", "pipe"] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let size = 0;
    const fail = (m: string) => {
      child.kill("SIGKILL");
      reject(new MtlsCertProcessError(m));
    };
    const timer = setTimeout(() => fail(`${command} gave no certificate in ${TIMEOUT_MS / 1000} s`), TIMEOUT_MS);
    child.stdout.on("data", (d: Buffer) => {
      size += d.length;
      if (size > MAX_OUTPUT) fail(`${command} wrote more than ${MAX_OUTPUT} bytes`);
      else out.push(d);
    });
    child.stderr.on("data", (d: Buffer) => err.length < 64 && err.push(d));
    child.on("error", (e) => {
      clearTimeout(timer);
      reject(new MtlsCertProcessError(`cannot run ${command}: ${e.message}`));
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      if (code !== 0) {
        const why = Buffer.concat(err).toString("utf8").trim() || `exit ${code ?? signal}`;
        return reject(new MtlsCertProcessError(why));
      }
      const pem = Buffer.concat(out).toString("utf8");
      try {
        const spki = new X509Certificate(pem).publicKey.export({ type: "spki", format: "der" });
        if (!spki.equals(key.publicKey.export({ type: "spki", format: "der" }))) {
          return reject(new MtlsCertProcessError("the certificate made is not for the agent's key"));
        }
      } catch (e) {
        return reject(new MtlsCertProcessError(`not a certificate (${e instanceof Error ? e.message : String(e)})`));
      }
      resolve(pem);
    });
    child.stdin.on("error", () => {}); // a child that died early: its exit says why
    child.stdin.end(key.privateKey.export({ type: "pkcs8", format: "pem" }));
  });
}

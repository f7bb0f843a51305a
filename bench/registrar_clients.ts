/**
 * The registrar bench's agents as a process of their own, run by Node (bundled by bench/registrar.ts):
 * `node registrar_clients.cjs <job.json>` registers and activates every agent of the job over plain HTTP,
 * `concurrency` at a time, each client on its own keep-alive connection, and prints one JSON line (Result).
 * Why Node and not the bench's Deno: recovering the credential is an RSA-2048 OAEP private decrypt per
 * registration, 0.6 ms in Node (OpenSSL) against 3.9 ms in Deno's node:crypto, and the clients would
 * otherwise take most of the 2 cores the registrar is measured on. Their CPU time is reported beside the
 * registrar's.
 */
import { createPrivateKey } from "node:crypto";
import { readFileSync } from "node:fs";
import { Agent, request } from "node:http";
import process from "node:process";
import { REGISTRAR_ERROR_HEADER, registrarRoutes, routePath } from "../src/protocol/registrar_api.ts";
import { decode } from "../src/tpm/marshal.ts";
import { TPM2B_PUBLIC } from "../src/tpm/structures.ts";
import { fromBase64 } from "../src/util/encoding.ts";
import { softAuthTag } from "../tests/helpers/registrar_agents.ts";

export interface ClientsJob {
  port: number;
  concurrency: number;
  /** PKCS#8 PEM of the EKs' private keys. */
  ekKeys: string[];
  agents: {
    id: string;
    /** The registration's JSON body. */
    body: string;
    /** Index into ekKeys. */
    ek: number;
    /** base64 TPM2B_PUBLIC of the EK and the AK's Name. */
    ekTpm: string;
    akName: string;
  }[];
}

export interface ClientsResult {
  seconds: number;
  /** CPU time of this process while the clients ran. */
  cpuMs: number;
  /** The first failed registration, if any. */
  failure?: string;
}

interface Reply {
  status: number;
  text: string;
  error: string | undefined;
}

function send(agent: Agent, port: number, method: string, path: string, body: string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({
      host: "127.0.0.1",
      port,
      method,
      path,
      agent,
      headers: { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(body) },
    }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => (text += d));
      res.on("end", () => {
        const error = res.headers[REGISTRAR_ERROR_HEADER.toLowerCase()];
        resolve({ status: res.statusCode!, text, error: typeof error === "string" ? error : undefined });
      });
    });
    req.on("error", reject);
    req.end(body);
  });
}

async function run(job: ClientsJob): Promise<ClientsResult> {
  const keys = job.ekKeys.map((pem) => createPrivateKey(pem));
  const agents = job.agents.map((a) => ({
    ...a,
    ekPublic: decode(TPM2B_PUBLIC, fromBase64(a.ekTpm)),
    akName: fromBase64(a.akName),
    register: routePath(registrarRoutes.register, "2.6", { agent_id: a.id }),
    activate: routePath(registrarRoutes.activate, "2.6", { agent_id: a.id }),
  }));
  let failure: string | undefined;
  let cursor = 0;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await Promise.all(Array.from({ length: job.concurrency }, async () => {
    const http = new Agent({ keepAlive: true, maxSockets: 1 });
    while (cursor < agents.length && !failure) {
      const a = agents[cursor++]!;
      const reg = await send(http, job.port, "POST", a.register, a.body);
      if (reg.status !== 200) {
        failure = `registration ${a.id}: ${reg.status} ${reg.error ?? reg.text}`;
        break;
      }
      const blob = fromBase64(JSON.parse(reg.text).results.blob);
      const tag = softAuthTag(keys[a.ek]!, a.ekPublic, a.akName, blob, a.id);
      const act = await send(http, job.port, "PUT", a.activate, JSON.stringify({ auth_tag: tag }));
      if (act.status !== 200) failure = `activation ${a.id}: ${act.status} ${act.error ?? act.text}`;
    }
    http.destroy();
  }));
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  return { seconds, cpuMs: (cpu.user + cpu.system) / 1000, ...(failure ? { failure } : {}) };
}

if (import.meta.main) {
  const job = JSON.parse(readFileSync(process.argv[2]!, "utf8")) as ClientsJob;
  process.stdout.write(JSON.stringify(await run(job)) + "\n");
}

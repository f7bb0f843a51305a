/**
 * The registrar bench's agents as a process of their own, run by Node (bundled by bench/registrar.ts):
 * `node registrar_clients.mjs <job.json>` registers and activates every agent of the job over plain HTTP,
 * `concurrency` at a time, each client on its own keep-alive connection, and prints one JSON line (Result).
 * Why Node and not the bench's Deno: recovering the credential is an RSA-2048 OAEP private decrypt per
 * registration, 0.6 ms in Node (OpenSSL) against 3.9 ms in Deno's node:crypto. The clients share the cores
 * the registrar is measured on, so they are a load generator in the manner of wrk: requests are bytes made
 * before the clock starts (the activation's up to its auth_tag), sent on raw `net` sockets, and answers read
 * by a strict minimal HTTP/1.1 parser (bench/http_wire.ts) instead of node:http. Every answer is still checked:
 * a registration's blob must give the credential, an activation must answer 200 with code 200. Their CPU
 * time is reported beside the registrar's.
 */
import { createPrivateKey, type KeyObject } from "node:crypto";
import { readFileSync } from "node:fs";
import process from "node:process";
import { authTag, decodeKeylimeBlob } from "../src/protocol/credential.ts";
import { REGISTRAR_ERROR_HEADER, registrarRoutes, routePath } from "../src/protocol/registrar_api.ts";
import { unwrapCredential } from "../src/tpm/credential.ts";
import { decode } from "../src/tpm/marshal.ts";
import { secretDecrypt } from "../src/tpm/secret.ts";
import { TPM2B_PUBLIC, type TPMT_PUBLIC } from "../src/tpm/structures.ts";
import { fromBase64 } from "../src/util/encoding.ts";
import { connectWire, requestHead, type WireReply, wireRequest } from "./http_wire.ts";

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

/** What a client needs for one agent, made before the clock starts. */
interface Prepared {
  id: string;
  register: Buffer;
  /** The activation's head: its body's length is known before the auth_tag is. */
  activateHead: Buffer;
  ekPrivate: KeyObject;
  ekPublic: TPMT_PUBLIC;
  akName: Uint8Array;
}

/** HMAC-SHA384 in lowercase hex (credential.ts authTagForKey): the auth_tag's length is fixed. */
const AUTH_TAG_CHARS = 96;
const LABEL_IDENTITY = "IDENTITY";
/** The activation's body; ASCII, so its length in characters is its length in bytes. */
const activationBody = (tag: string) => `{"auth_tag":"${tag}"}`;

function prepare(job: ClientsJob): Prepared[] {
  const keys = job.ekKeys.map((pem) => createPrivateKey(pem));
  const json = { "Content-Type": "application/json" };
  return job.agents.map((a) => {
    const register = routePath(registrarRoutes.register, "2.6", { agent_id: a.id });
    const activate = routePath(registrarRoutes.activate, "2.6", { agent_id: a.id });
    return {
      id: a.id,
      register: wireRequest("POST", register, job.port, json, a.body),
      activateHead: requestHead("PUT", activate, job.port, json, activationBody("0".repeat(AUTH_TAG_CHARS)).length),
      ekPrivate: keys[a.ek]!,
      ekPublic: decode(TPM2B_PUBLIC, fromBase64(a.ekTpm)),
      akName: fromBase64(a.akName),
    };
  });
}

/** The agent's side of the exchange (TPM2_ActivateCredential in software), as tests' softAuthTag. */
function answer(a: Prepared, blobBase64: string): string {
  const { credentialBlob, secret } = decodeKeylimeBlob(fromBase64(blobBase64));
  const seed = secretDecrypt(a.ekPrivate, a.ekPublic, LABEL_IDENTITY, secret);
  const tag = authTag(unwrapCredential(a.ekPublic, seed, a.akName, credentialBlob), a.id);
  if (tag.length !== AUTH_TAG_CHARS) throw new Error(`an auth_tag of ${tag.length} characters, not ${AUTH_TAG_CHARS}`);
  return tag;
}

/** null when the reply is a 200 with envelope code 200; else what went wrong. */
function refusal(what: string, r: WireReply): string | null {
  if (r.status === 200) {
    const code = (JSON.parse(r.body.toString("utf8")) as { code?: unknown }).code;
    if (code === 200) return null;
    return `${what}: HTTP 200 with envelope code ${String(code)}`;
  }
  return `${what}: ${r.status} ${r.headers.get(REGISTRAR_ERROR_HEADER.toLowerCase()) ?? r.body.toString("utf8")}`;
}

async function run(job: ClientsJob): Promise<ClientsResult> {
  const agents = prepare(job);
  const connections = await Promise.all(Array.from({ length: job.concurrency }, () => connectWire(job.port)));
  let failure: string | undefined;
  let cursor = 0;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await Promise.all(connections.map(async (conn) => {
    try {
      while (cursor < agents.length && !failure) {
        const a = agents[cursor++]!;
        const reg = await conn.exchange(a.register);
        const refused = refusal(`registration ${a.id}`, reg);
        if (refused) {
          failure ??= refused;
          break;
        }
        const blob = (JSON.parse(reg.body.toString("utf8")) as { results: { blob: string } }).results.blob;
        const body = activationBody(answer(a, blob));
        const act = await conn.exchange(Buffer.concat([a.activateHead, Buffer.from(body, "latin1")]));
        const failed = refusal(`activation ${a.id}`, act);
        if (failed) failure ??= failed;
      }
    } catch (e) {
      failure ??= (e as Error).message;
    } finally {
      conn.close();
    }
  }));
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  return { seconds, cpuMs: (cpu.user + cpu.system) / 1000, ...(failure ? { failure } : {}) };
}

if (import.meta.main) {
  const job = JSON.parse(readFileSync(process.argv[2]!, "utf8")) as ClientsJob;
  process.stdout.write(JSON.stringify(await run(job)) + "\n");
}

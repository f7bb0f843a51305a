/** Talking to a running registrar over real sockets: an agent's register + activate, a tenant's TLS request. */
import { readFileSync } from "node:fs";
import { request as httpsRequest } from "node:https";
import { join } from "node:path";
import { REGISTRAR_ERROR_HEADER, registrarRoutes, routePath } from "../../src/protocol/registrar_api.ts";
import { TLS_FILES } from "../../src/registrar/tls.ts";
import type { TestAgent } from "./registrar_agents.ts";
import { fromBase64 } from "../../src/util/encoding.ts";

/** A parsed response body, read by tests field by field. */
// deno-lint-ignore no-explicit-any
type Json = any;

export interface Enrolled {
  status: number;
  json: Json;
  /** The X-Keylime-Error header of a refused registration. */
  error: string | null;
}

/** Register and activate over plain HTTP as an agent does; stops at a refused registration. */
export async function enroll(port: number, agent: TestAgent, uuid: string): Promise<Enrolled> {
  const base = `http://127.0.0.1:${port}`;
  const res = await fetch(base + routePath(registrarRoutes.register, "2.6", { agent_id: uuid }), {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(agent.body()),
  });
  const json = await res.json();
  if (res.status !== 200) return { status: res.status, json, error: res.headers.get(REGISTRAR_ERROR_HEADER) };
  const blob = fromBase64(json.results.blob);
  const act = await fetch(base + routePath(registrarRoutes.activate, "2.6", { agent_id: uuid }), {
    method: "PUT",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ auth_tag: await agent.answer(blob, uuid) }),
  });
  return { status: act.status, json: await act.json(), error: null };
}

export interface ClientCert {
  key?: string;
  cert?: string;
}

/** The tenant's certificate the registrar generated in its TLS directory. */
export function tenantCert(tlsDir: string): ClientCert {
  return {
    key: readFileSync(join(tlsDir, TLS_FILES.clientKey), "utf8"),
    cert: readFileSync(join(tlsDir, TLS_FILES.clientCert), "utf8"),
  };
}

/** A tenant request over TLS, trusting the TLS directory's CA; rejects when the handshake is refused. */
export function tenantRequest(
  tlsPort: number,
  tlsDir: string,
  path: string,
  client: ClientCert,
  method = "GET",
): Promise<{ status: number; json: Json }> {
  const ca = readFileSync(join(tlsDir, TLS_FILES.ca), "utf8");
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      { host: "127.0.0.1", port: tlsPort, path, method, ca, servername: "localhost", ...client, agent: false },
      (res) => {
        let text = "";
        res.on("data", (d) => (text += d));
        res.on("end", () => resolve({ status: res.statusCode!, json: text ? JSON.parse(text) : undefined }));
      },
    );
    req.on("error", reject);
    req.end();
  });
}

/**
 * Test helper: a client of the agent's API as the verifier and tenant are (keylime.md §7): a client
 * certificate, the agent's registered mTLS certificate as the only trusted CA, no hostname check.
 */
import { request as httpRequest } from "node:http";
import { Agent, request as httpsRequest } from "node:https";

export interface AgentClientTls {
  /** The agent's certificate (PEM), pinned as the CA. */
  agentCert: string;
  clientCert?: string;
  clientKey?: string;
  maxVersion?: "TLSv1.1" | "TLSv1.2" | "TLSv1.3";
}

export interface AgentAnswer {
  status: number;
  json: { code: number; status: string; results: Record<string, unknown> };
}

export interface AgentClient {
  request(path: string, o?: { method?: string; body?: unknown }): Promise<AgentAnswer>;
  close(): void;
}

/** A client for `url` (http or https); keep-alive connections are reused until close(). */
export function agentClient(url: string, tls?: AgentClientTls): AgentClient {
  const u = new URL(url);
  const agent = tls
    ? new Agent({
      keepAlive: true,
      ca: tls.agentCert,
      ...(tls.clientCert ? { cert: tls.clientCert, key: tls.clientKey } : {}),
      ...(tls.maxVersion ? { maxVersion: tls.maxVersion } : {}),
      checkServerIdentity: () => undefined,
    })
    : undefined;
  return {
    request(path, o = {}) {
      const body = o.body === undefined ? undefined : JSON.stringify(o.body);
      return new Promise((resolve, reject) => {
        const options = {
          host: u.hostname,
          port: Number(u.port),
          path,
          method: o.method ?? (body ? "POST" : "GET"),
          headers: body ? { "Content-Type": "application/json" } : {},
          ...(agent ? { agent } : {}),
        };
        const req = (tls ? httpsRequest : httpRequest)(options, (res) => {
          let text = "";
          res.setEncoding("utf8");
          res.on("data", (d) => (text += d));
          res.on("end", () => {
            try {
              resolve({ status: res.statusCode!, json: JSON.parse(text) });
            } catch (e) {
              reject(e);
            }
          });
          res.on("error", reject);
        });
        req.on("error", reject);
        req.end(body);
      });
    },
    close: () => agent?.destroy(),
  };
}

/**
 * The agent's only socket: the app served over node:https (mTLS, tls.ts) or, with enable_agent_mtls off, plain
 * node:http, through fetch_listener.ts (not @hono/node-server, which loads node:http2 and Node's fetch classes:
 * memory the agent does not need, docs/binary.md). close() stops accepting, lets requests in flight finish
 * within a grace period, then drops what is left.
 */
import { createServer as createHttpServer, type Server } from "node:http";
import { createServer as createHttpsServer, type ServerOptions } from "node:https";
import type { AddressInfo, Socket } from "node:net";
import { type FetchHandler, fetchListener } from "../util/fetch_listener.ts";
import { MAX_BODY_BYTES } from "./app.ts";

export interface AgentServerOptions {
  ip: string;
  /** 0 picks a free port. */
  port: number;
  /** node:https options (agentTlsOptions); absent serves plain HTTP. */
  tls?: ServerOptions;
  /** Connections that send nothing for this long are closed. */
  idleTimeoutMs?: number;
  /** The largest request body read (the app refuses larger ones); default the app's MAX_BODY_BYTES. */
  maxBodyBytes?: number;
  /** A failure the app did not answer (default: written to stderr). */
  onError?(line: string): void;
}

export interface RunningAgentServer {
  readonly port: number;
  readonly url: string;
  /** Stop accepting, wait for requests in flight up to graceMs, then close every connection. */
  close(graceMs?: number): Promise<void>;
}

export async function startAgentServer(fetch: FetchHandler, o: AgentServerOptions): Promise<RunningAgentServer> {
  const listener = fetchListener(fetch, {
    maxBodyBytes: o.maxBodyBytes ?? MAX_BODY_BYTES,
    onError: o.onError ?? ((line) => process.stderr.write(`agent server: ${line}\n`)),
  });
  const server: Server = o.tls ? createHttpsServer(o.tls, listener) : createHttpServer(listener);
  // Raw sockets, including TLS handshakes that never became HTTP connections (closeAllConnections misses those).
  const sockets = new Set<Socket>();
  server.on("connection", (s: Socket) => {
    sockets.add(s);
    s.once("close", () => sockets.delete(s));
  });
  server.keepAliveTimeout = o.idleTimeoutMs ?? 5_000;
  server.headersTimeout = 30_000;
  server.requestTimeout = 5 * 60_000;
  const port = await new Promise<number>((ok, fail) => {
    server.once("error", fail);
    server.listen(o.port, o.ip, () => {
      server.off("error", fail);
      ok((server.address() as AddressInfo).port);
    });
  });
  const host = o.ip.includes(":") ? `[${o.ip}]` : o.ip;
  let closing: Promise<void> | undefined;
  return {
    port,
    url: `${o.tls ? "https" : "http"}://${host}:${port}`,
    close(graceMs = 8_000) {
      closing ??= new Promise<void>((ok) => {
        const timer = setTimeout(() => {
          server.closeAllConnections();
          for (const s of sockets) s.destroy();
        }, graceMs);
        server.close(() => {
          clearTimeout(timer);
          ok();
        });
        server.closeIdleConnections();
      });
      return closing;
    },
  };
}

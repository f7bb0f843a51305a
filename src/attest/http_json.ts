/**
 * One JSON GET over HTTPS (or HTTP), as the tenant makes it: a client certificate, the given CAs, and for
 * the agent its registered certificate pinned with no hostname check (keylime.md §7). Every failure is a
 * PeerError naming the peer and what went wrong; the body is bounded.
 */
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import type { TenantTls } from "./tls_dir.ts";

/** Largest answer read (an integrity quote with a long IMA list or a UEFI log). */
const MAX_BODY_BYTES = 64 * 1024 * 1024;
const TIMEOUT_MS = 30_000;

export class PeerError extends Error {
  readonly code = "ERR_PEER";
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "PeerError";
  }
}

export interface PeerTls {
  readonly tls: TenantTls;
  /** The CA(s) the server's certificate must chain to. */
  readonly ca: string | string[];
  /** Check the host name against the certificate (the registrar) or not (a pinned agent certificate). */
  readonly checkHost: boolean;
}

export interface JsonAnswer {
  readonly status: number;
  readonly json: unknown;
}

/** GET `url`; `who` names the peer in errors ("the registrar", "the agent"). */
export function getJson(who: string, url: string, tls: PeerTls | undefined): Promise<JsonAnswer> {
  const u = new URL(url);
  const options = {
    host: u.hostname,
    port: Number(u.port),
    path: u.pathname + u.search,
    method: "GET",
    agent: false as const,
    timeout: TIMEOUT_MS,
    ...(tls
      ? {
        ca: tls.ca,
        cert: tls.tls.cert,
        key: tls.tls.key,
        ...(tls.checkHost ? {} : { checkServerIdentity: () => undefined }),
      }
      : {}),
  };
  return new Promise((resolve, reject) => {
    const fail = (why: string, cause?: unknown) =>
      reject(new PeerError(`${who} at ${u.origin}: ${why}`, cause === undefined ? undefined : { cause }));
    const req = (u.protocol === "https:" ? httpsRequest : httpRequest)(options, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on("data", (d: Buffer) => {
        size += d.length;
        if (size > MAX_BODY_BYTES) {
          req.destroy();
          fail(`the answer is larger than ${MAX_BODY_BYTES} bytes`);
          return;
        }
        chunks.push(d);
      });
      res.on("error", (e) => fail((e as Error).message, e));
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        if (text === "") {
          resolve({ status: res.statusCode ?? 0, json: undefined });
          return;
        }
        try {
          resolve({ status: res.statusCode ?? 0, json: JSON.parse(text) });
        } catch {
          fail(`HTTP ${res.statusCode}: the answer is not JSON: ${JSON.stringify(text.slice(0, 80))}`);
        }
      });
    });
    req.on("timeout", () => req.destroy(new Error(`no answer within ${TIMEOUT_MS / 1000} s`)));
    req.on("error", (e) => fail((e as Error).message, e));
    req.end();
  });
}

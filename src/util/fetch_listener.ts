/**
 * A node:http(s) request listener that serves a fetch handler (a Hono app's fetch): the request becomes a
 * Request of whatever class the runtime has (fetch_subset.ts's in the agent on Node), the Response is written
 * back, streamed when its body is a stream. Bodies are read up to maxBodyBytes; past that the handler gets
 * what was read with a Content-Length over the limit, so the app's own body limit answers, and the
 * connection is closed after the answer since the rest of the body was never read.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { TLSSocket } from "node:tls";
import { Buffer } from "node:buffer";
import { bodyInitOf, type SubsetBody } from "./fetch_subset.ts";

/** Beside the request (Hono's c.env): the Node request and response, named as @hono/node-server names them. */
export interface NodeBindings {
  incoming: IncomingMessage;
  outgoing: ServerResponse;
}

export type FetchHandler = (request: Request, env: NodeBindings) => Response | Promise<Response>;

export interface FetchListenerOptions {
  /** The largest body read; see above for what happens past it. */
  maxBodyBytes: number;
  /** A handler that throws (the app's own funnel should not let it) is answered 500 and logged here, one line. */
  onError(line: string): void;
}

/** What a Host header may hold; anything else (a path, userinfo, spaces) is not used to build the URL. */
const HOST = /^[A-Za-z0-9.\-]+(:[0-9]{1,5})?$|^\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?$/;
const NO_BODY = new Set(["GET", "HEAD"]);

export function fetchListener(handler: FetchHandler, o: FetchListenerOptions) {
  return (req: IncomingMessage, res: ServerResponse): void => {
    void serve(handler, o, req, res).catch((e) => {
      o.onError(`unanswered request: ${e instanceof Error ? e.stack ?? e.message : String(e)}`);
      if (!res.headersSent) res.writeHead(500, { "content-type": "text/plain" }).end("Internal Server Error");
      else res.destroy();
    });
  };
}

async function serve(handler: FetchHandler, o: FetchListenerOptions, req: IncomingMessage, res: ServerResponse) {
  const target = req.url ?? "";
  if (!target.startsWith("/")) {
    res.writeHead(400, { "content-type": "text/plain", connection: "close" }).end("Bad Request");
    return;
  }
  const tls = (req.socket as TLSSocket).encrypted === true;
  const host = req.headers.host && HOST.test(req.headers.host) ? req.headers.host : "localhost";
  const method = req.method ?? "GET";
  const headers = new Headers();
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) headers.append(req.rawHeaders[i]!, req.rawHeaders[i + 1]!);

  let body: Uint8Array<ArrayBuffer> | null = null;
  let unread = false;
  if (!NO_BODY.has(method)) {
    const read = await readBody(req, o.maxBodyBytes);
    body = read.bytes as Uint8Array<ArrayBuffer>;
    unread = read.unread;
    // The handler sees exactly the bytes it gets; past the limit, a length that says so.
    headers.delete("transfer-encoding");
    headers.set("content-length", String(unread ? Math.max(read.declared ?? 0, o.maxBodyBytes + 1) : body.length));
  }
  const request = new Request(`${tls ? "https" : "http"}://${host}${target}`, { method, headers, body });
  const response = await handler(request, { incoming: req, outgoing: res });
  if (unread) res.setHeader("connection", "close");
  await writeResponse(response, method === "HEAD", res);
}

/** Up to limit + 1 bytes: enough to know the body is over the limit, never more in memory. */
function readBody(
  req: IncomingMessage,
  limit: number,
): Promise<{ bytes: Uint8Array; unread: boolean; declared?: number }> {
  const length = req.headers["content-length"];
  const declared = length !== undefined && /^[0-9]+$/.test(length) ? Number(length) : undefined;
  if (declared !== undefined && declared > limit) {
    req.pause();
    return Promise.resolve({ bytes: new Uint8Array(0), unread: true, declared });
  }
  // Events, not for-await: leaving a for-await early would destroy the request, and the socket with it.
  return new Promise((ok, fail) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const done = (result: { bytes: Uint8Array; unread: boolean }) => {
      req.off("data", onData).off("end", onEnd).off("error", fail);
      ok(result);
    };
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      size += chunk.length;
      if (size > limit) {
        req.pause();
        done({ bytes: new Uint8Array(0), unread: true });
      }
    };
    const onEnd = () => done({ bytes: chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks), unread: false });
    req.on("data", onData).once("end", onEnd).once("error", fail);
  });
}

async function writeResponse(response: Response, head: boolean, res: ServerResponse): Promise<void> {
  const cookies = response.headers.getSetCookie();
  response.headers.forEach((value, name) => {
    if (name !== "set-cookie") res.setHeader(name, value);
  });
  if (cookies.length) res.setHeader("set-cookie", cookies);
  res.statusCode = response.status;
  const init = bodyInitOf(response);
  const body: SubsetBody | null = init !== undefined ? init : response.body;
  if (head || body === null) {
    await cancel(body);
    res.end();
    return;
  }
  if (typeof body === "string" || body instanceof Uint8Array) return void res.end(body);
  if (body instanceof ArrayBuffer) return void res.end(new Uint8Array(body));
  await pump(body, res);
}

/** Stream a body chunk by chunk, waiting for the socket to drain; a client that goes away cancels it. */
async function pump(body: ReadableStream<Uint8Array>, res: ServerResponse): Promise<void> {
  const reader = body.getReader();
  let gone = false;
  const onClose = () => {
    gone = true;
    void reader.cancel().catch(() => {});
  };
  res.once("close", onClose);
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done || gone) break;
      if (!res.write(value)) await new Promise<void>((ok) => res.once("drain", ok).once("close", ok));
    }
    if (!gone) res.end();
  } catch (e) {
    res.destroy(e as Error);
  } finally {
    res.off("close", onClose);
    reader.releaseLock();
  }
}

async function cancel(body: SubsetBody | null): Promise<void> {
  if (body !== null && typeof body === "object" && "cancel" in body) await body.cancel().catch(() => {});
}

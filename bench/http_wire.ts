/**
 * Just enough HTTP/1.1 for a load generator (bench/registrar_clients.ts, bench/agent.ts): requests made as
 * bytes ahead of time, one at a time on a keep-alive TCP or TLS connection, and a strict reader of the answer:
 * a status line, header lines, a Content-Length body, nothing else. Anything else (chunked bodies, a closed
 * connection, bytes nobody asked for) is an error naming it, never a guess: the figures would otherwise measure something else.
 */
import { connect, type Socket } from "node:net";

export interface WireReply {
  status: number;
  /** Lowercase names; a repeated header keeps its last value. */
  headers: Map<string, string>;
  body: Buffer;
}

/** The head of a request with a body of `bodyLength` bytes; the body follows it on the wire. */
export function requestHead(
  method: string,
  path: string,
  port: number,
  headers: Record<string, string>,
  bodyLength: number,
): Buffer {
  const lines = [`${method} ${path} HTTP/1.1`, `Host: 127.0.0.1:${port}`];
  for (const [name, value] of Object.entries(headers)) lines.push(`${name}: ${value}`);
  lines.push(`Content-Length: ${bodyLength}`, "", "");
  return Buffer.from(lines.join("\r\n"), "latin1");
}

/** A whole request: its head and a UTF-8 body. */
export function wireRequest(
  method: string,
  path: string,
  port: number,
  headers: Record<string, string>,
  body: string,
): Buffer {
  const bytes = Buffer.from(body, "utf8");
  return Buffer.concat([requestHead(method, path, port, headers, bytes.length), bytes]);
}

const HEAD_END = Buffer.from("\r\n\r\n", "latin1");
const STATUS_LINE = /^HTTP\/1\.1 ([1-5][0-9]{2}) [^\r\n]*$/;
const HEADER_LINE = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+):[ \t]*(.*?)[ \t]*$/;
/** A head larger than this is not a registrar's answer. */
const MAX_HEAD = 16 * 1024;

/** The reply's head, parsed; throws naming what is not as expected. */
function parseHead(text: string): { status: number; headers: Map<string, string>; length: number } {
  const [statusLine, ...lines] = text.split("\r\n");
  const m = STATUS_LINE.exec(statusLine!);
  if (!m) throw new Error(`not an HTTP/1.1 status line: ${JSON.stringify(statusLine)}`);
  const headers = new Map<string, string>();
  for (const line of lines) {
    const h = HEADER_LINE.exec(line);
    if (!h) throw new Error(`not a header line: ${JSON.stringify(line)}`);
    headers.set(h[1]!.toLowerCase(), h[2]!);
  }
  if (headers.has("transfer-encoding")) throw new Error(`Transfer-Encoding ${headers.get("transfer-encoding")}`);
  if (headers.get("connection")?.toLowerCase() === "close") throw new Error("the server closes the connection");
  const length = headers.get("content-length");
  if (length === undefined || !/^[0-9]{1,9}$/.test(length)) {
    throw new Error(`no usable Content-Length (${JSON.stringify(length)})`);
  }
  return { status: Number(m[1]), headers, length: Number(length) };
}

/**
 * One reply read from the bytes as they arrive: push() answers the whole reply once it is in, undefined
 * until then, and throws naming anything else (a head too long or malformed, bytes past the body).
 */
class ReplyReader {
  private received: Buffer = Buffer.alloc(0);
  private head: ReturnType<typeof parseHead> | undefined;
  private bodyAt = 0;

  push(chunk: Uint8Array): WireReply | undefined {
    this.received = Buffer.concat([this.received, chunk]);
    if (!this.head) {
      const end = this.received.indexOf(HEAD_END);
      if (end < 0) {
        if (this.received.length > MAX_HEAD) throw new Error(`no end of the head in ${this.received.length} bytes`);
        return undefined;
      }
      this.head = parseHead(this.received.toString("latin1", 0, end));
      this.bodyAt = end + HEAD_END.length;
    }
    const { status, headers, length } = this.head;
    const have = this.received.length - this.bodyAt;
    if (have < length) return undefined;
    if (have > length) throw new Error(`${have - length} bytes after a ${length}-byte body`);
    return { status, headers, body: this.received.subarray(this.bodyAt) };
  }
}

export interface WireConnection {
  /** The server's port (a request's Host header names it). */
  readonly port: number;
  /** Send a request and read its whole reply; one at a time. */
  exchange(request: Buffer): Promise<WireReply>;
  close(): void;
}

/** A keep-alive TCP connection to the loopback `port`. */
export function connectWire(port: number): Promise<WireConnection> {
  return new Promise((ready, fail) => {
    const socket: Socket = connect({ host: "127.0.0.1", port, noDelay: true });
    let waiting: { ok: (r: WireReply) => void; fail: (e: Error) => void; reader: ReplyReader } | undefined;

    const settle = (e: Error | null, reply?: WireReply) => {
      const w = waiting;
      waiting = undefined;
      if (!w) return;
      if (e) w.fail(e);
      else w.ok(reply!);
    };
    const onData = (chunk: Buffer): void => {
      if (!waiting) {
        socket.destroy(new Error(`${chunk.length} bytes arrived with no request outstanding`));
        return;
      }
      try {
        const reply = waiting.reader.push(chunk);
        if (reply) settle(null, reply);
      } catch (e) {
        settle(e as Error);
        socket.destroy();
      }
    };
    socket.on("data", onData);
    socket.on("close", () => settle(new Error("the connection closed before the whole reply")));
    socket.once("connect", () => {
      socket.off("error", fail);
      socket.on("error", (e) => settle(e));
      ready({
        port,
        exchange: (request) =>
          new Promise((ok, failExchange) => {
            if (waiting) return failExchange(new Error("one request at a time on a connection"));
            if (socket.destroyed) return failExchange(new Error("the connection is closed"));
            waiting = { ok, fail: failExchange, reader: new ReplyReader() };
            socket.write(request);
          }),
        close: () => socket.destroy(),
      });
    });
    socket.once("error", fail);
  });
}

/** A client certificate and key, and the CA the server's certificate (naming 127.0.0.1) must chain to. */
export interface WireTls {
  ca: string;
  cert: string;
  key: string;
}

/**
 * A keep-alive mTLS connection to the loopback `port` on the runtime's own TLS (Deno.connectTls): the
 * load generator's cost per request is then about half of node:tls's under Deno.
 */
export async function connectWireTls(port: number, tls: WireTls): Promise<WireConnection> {
  const conn = await Deno.connectTls({ hostname: "127.0.0.1", port, caCerts: [tls.ca], cert: tls.cert, key: tls.key });
  await conn.handshake();
  const buffer = new Uint8Array(64 * 1024);
  let busy = false;
  return {
    port,
    async exchange(request) {
      if (busy) throw new Error("one request at a time on a connection");
      busy = true;
      try {
        await conn.write(request);
        const reader = new ReplyReader();
        for (;;) {
          const n = await conn.read(buffer);
          if (n === null) throw new Error("the connection closed before the whole reply");
          const reply = reader.push(buffer.subarray(0, n));
          if (reply) return reply;
        }
      } catch (e) {
        conn.close();
        throw e;
      } finally {
        busy = false;
      }
    },
    close: () => {
      try {
        conn.close();
      } catch {
        // already closed
      }
    },
  };
}

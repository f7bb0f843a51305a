/**
 * Stream plumbing shared by the socket transports (swtpm.ts, mssim.ts): addresses, exact-length
 * reads, reconnects, deadlines, and reading one TPM response off a stream.
 */
import * as net from "node:net";
import { Buffer } from "node:buffer";
import { TransportError, TransportTimeoutError } from "../errors.ts";
import { MAX_RESPONSE_BYTES, RESPONSE_HEADER_BYTES } from "./transport.ts";
import { monotonicMs } from "../../util/clock.ts";

export type SocketAddress = { host: string; port: number } | { path: string };

/** Canonical TCTI string for a socket TPM, e.g. `swtpm:host=127.0.0.1,port=2321`, `mssim:path=/run/t.sock`. */
export function socketUri(kind: "swtpm" | "mssim", address: SocketAddress): string {
  return "path" in address ? `${kind}:path=${address.path}` : `${kind}:host=${address.host},port=${address.port}`;
}

/** The companion socket of a TPM address: control channel (swtpm) or platform port (mssim). */
export function companionAddress(address: SocketAddress, port?: number, path?: string): SocketAddress {
  if ("path" in address) return { path: path ?? `${address.path}.ctrl` };
  return { host: address.host, port: port ?? address.port + 1 };
}

export function describeAddress(address: SocketAddress): string {
  return "path" in address ? address.path : `${address.host}:${address.port}`;
}

/** Why a read on a StreamConnection failed: the peer closed, reset, or we destroyed it. */
export class ConnectionLost extends Error {
  constructor(readonly reason: string, readonly received: number) {
    super(reason);
  }
}

/** Connect errors as a sentence with a hint. */
function connectError(what: string, address: SocketAddress, e: unknown): TransportError {
  const err = e as NodeJS.ErrnoException;
  const hint = err?.code === "ECONNREFUSED" || err?.code === "ENOENT"
    ? " (is the TPM server running and listening there?)"
    : err?.code === "EACCES"
    ? " (permission denied on the socket)"
    : "";
  return new TransportError(
    `Cannot connect to ${what} at ${describeAddress(address)}: ${err?.message ?? String(e)}${hint}`,
    { cause: e },
  );
}

/**
 * One stream socket with exact-length reads. Data that arrives is queued; `read(n)` resolves once n
 * bytes are there. Any close or error fails the pending and every later read.
 */
export class StreamConnection {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private waiter: { n: number; resolve: (b: Buffer) => void; reject: (e: Error) => void } | undefined;
  private failure: ConnectionLost | undefined;
  /** Bytes received since the last `write`, to say how much of a response arrived before a loss. */
  private receivedSinceWrite = 0;
  /** Set once an exchange completed, so a later close is "found closed before writing". */
  reused = false;

  private constructor(private readonly socket: net.Socket) {
    socket.on("data", (d: Buffer) => {
      this.chunks.push(d);
      this.buffered += d.length;
      this.receivedSinceWrite += d.length;
      this.pump();
    });
    socket.on("end", () => this.fail("the server closed the connection"));
    socket.on("error", (e: Error) => this.fail(e.message));
    socket.on("close", () => this.fail("the connection closed"));
  }

  /**
   * Connect; `onSocket` receives the socket at once so a deadline can destroy a connect that hangs
   * (swtpm accepts one client at a time, so a busy swtpm leaves connect() pending).
   */
  static open(
    address: SocketAddress,
    what: string,
    onSocket: (s: net.Socket) => void,
  ): Promise<StreamConnection> {
    const attempt = (addr: SocketAddress): Promise<StreamConnection> =>
      new Promise((resolve, reject) => {
        const socket = "path" in addr
          ? net.createConnection({ path: addr.path })
          : net.createConnection({ host: addr.host, port: addr.port });
        onSocket(socket);
        const onError = (e: Error) => {
          socket.destroy();
          reject(e);
        };
        socket.once("error", onError);
        socket.once("close", () => reject(new Error("connection closed while connecting")));
        socket.once("connect", () => {
          socket.off("error", onError);
          // Commands go out in one write; without NODELAY, Nagle + delayed ACK can stall ~40 ms (§1.4).
          if (!("path" in addr)) socket.setNoDelay(true);
          resolve(new StreamConnection(socket));
        });
      });
    // "localhost" may resolve to ::1 first while servers bind 127.0.0.1: try both, IPv4 first.
    const candidates: SocketAddress[] = "host" in address && address.host === "localhost"
      ? [{ host: "127.0.0.1", port: address.port }, { host: "::1", port: address.port }]
      : [address];
    return (async () => {
      let last: unknown;
      for (const c of candidates) {
        try {
          return await attempt(c);
        } catch (e) {
          last = e;
          const code = (e as NodeJS.ErrnoException).code;
          if (code !== "ECONNREFUSED" && code !== "EADDRNOTAVAIL" && code !== "EAFNOSUPPORT") break;
        }
      }
      throw connectError(what, address, last);
    })();
  }

  /** False once the peer closed or the socket failed. */
  get alive(): boolean {
    return this.failure === undefined;
  }

  /** Received bytes nobody has read yet. */
  get pendingBytes(): number {
    return this.buffered;
  }

  /** One write of the whole buffer (swtpm executes whatever it holds after 10 bytes, §1.1). */
  write(data: Uint8Array): void {
    this.receivedSinceWrite = 0;
    this.socket.write(data);
  }

  read(n: number): Promise<Buffer> {
    if (this.waiter) return Promise.reject(new Error("StreamConnection: concurrent read"));
    if (this.buffered >= n) return Promise.resolve(this.take(n));
    if (this.failure) return Promise.reject(new ConnectionLost(this.failure.reason, this.receivedSinceWrite));
    return new Promise((resolve, reject) => {
      this.waiter = { n, resolve, reject };
    });
  }

  destroy(reason = "the connection was closed locally"): void {
    this.fail(reason);
    this.socket.destroy();
  }

  private take(n: number): Buffer {
    const all = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.buffered);
    const out = all.subarray(0, n);
    const rest = all.subarray(n);
    this.chunks = rest.length ? [rest] : [];
    this.buffered = rest.length;
    return out;
  }

  private pump(): void {
    const w = this.waiter;
    if (w && this.buffered >= w.n) {
      this.waiter = undefined;
      w.resolve(this.take(w.n));
    }
  }

  private fail(reason: string): void {
    if (this.failure) return;
    this.failure = new ConnectionLost(reason, this.receivedSinceWrite);
    const w = this.waiter;
    if (w) {
      this.waiter = undefined;
      w.reject(new ConnectionLost(reason, this.receivedSinceWrite));
    }
  }
}

/** Reads exactly n bytes from the connection the exchange runs on. */
export type ReadExactly = (n: number) => Promise<Buffer>;

/** Tells work that outlived its deadline to stop before it does anything irrevocable (a write). */
export interface Deadline {
  readonly expired: boolean;
}

/**
 * Deadlines for one exchange at a time, from a single lazily re-armed timer: a link that runs a
 * command every few microseconds would otherwise create and clear a timer per command, which costs
 * more than the rest of the client (bench/). The timer is unref'd, so an idle link keeps no process alive.
 */
export class Watchdog {
  private timer: ReturnType<typeof setTimeout> | undefined;
  /** When the running exchange expires (monotonicMs() ms); 0 while idle. */
  private due = 0;
  private onExpire: (() => void) | undefined;

  constructor(private readonly ms: number) {}

  /**
   * Run `work` under the deadline; on expiry call `onExpire` (which must make `work` settle) and
   * reject with its error. One guarded run at a time.
   */
  guard<T>(onExpire: () => Error, work: (d: Deadline) => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const deadline = { expired: false };
      this.due = monotonicMs() + this.ms;
      this.onExpire = () => {
        deadline.expired = true;
        reject(onExpire());
      };
      if (!this.timer) this.arm(this.ms);
      work(deadline).then(
        (v) => {
          if (deadline.expired) return;
          this.idle();
          resolve(v);
        },
        (e) => {
          if (deadline.expired) return;
          this.idle();
          reject(e);
        },
      );
    });
  }

  /** Stop the timer altogether (on close). */
  cancel(): void {
    this.idle();
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private idle(): void {
    this.due = 0;
    this.onExpire = undefined;
  }

  private arm(ms: number): void {
    this.timer = setTimeout(() => this.check(), ms);
    (this.timer as { unref?: () => void }).unref?.();
  }

  private check(): void {
    this.timer = undefined;
    if (this.due === 0) return; // idle: the next guard() arms a new timer
    const left = this.due - monotonicMs();
    if (left > 1) return this.arm(left);
    const fire = this.onExpire;
    this.idle();
    fire?.();
  }
}

/** Run `work` under a one-off deadline (for rare requests such as control-channel commands). */
export function withDeadline<T>(ms: number, onExpire: () => Error, work: (d: Deadline) => Promise<T>): Promise<T> {
  const w = new Watchdog(ms);
  return w.guard(onExpire, work).finally(() => w.cancel());
}

/** Thrown inside work whose deadline passed; never seen by callers (they got the timeout). */
export class Expired extends Error {}

/** Let socket events due within `ms` (a server's FIN after its last response) be processed. */
function settle(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** How long the first reuse of a connection waits to learn whether the server closes after responding. */
const LEARN_CLOSE_MS = 10;

export interface SocketLinkOptions {
  /** Name used in messages: the TPM's canonical uri. */
  uri: string;
  timeoutMs: number;
  /** Keep the connection between commands (default) or open one per command as tcti-swtpm does. */
  persistent: boolean;
}

/**
 * A request/response link over one stream socket with the rules both swtpm and mssim need:
 * lazy connect, one exchange in flight, transparent reconnect when the connection was found closed
 * before writing, no resend once the command was written, and a deadline that drops the socket.
 */
export class SocketLink {
  private conn: StreamConnection | undefined;
  private connecting: net.Socket | undefined;
  private busy = false;
  /**
   * Whether the server keeps a connection after responding: undefined until a first reuse shows it.
   * Servers that close after each response (swtpm `,disconnect`) then get a connection per command,
   * so no command is ever written into a connection the server is about to close.
   */
  private serverKeepsConnection: boolean | undefined;
  private readonly watchdog: Watchdog;

  constructor(readonly address: SocketAddress, private readonly options: SocketLinkOptions) {
    this.watchdog = new Watchdog(options.timeoutMs);
  }

  /**
   * Send `request` (already framed) in one write and let `readReply` read the reply off the stream.
   * `prepare` runs first, under the same deadline (locality changes, platform power signals).
   */
  async exchange(
    request: Uint8Array,
    readReply: (read: ReadExactly) => Promise<Uint8Array>,
    prepare?: () => Promise<void>,
  ): Promise<Uint8Array> {
    if (this.busy) {
      throw new TransportError(`A command is already in flight on TPM ${this.options.uri}; send one at a time`);
    }
    this.busy = true;
    try {
      return await this.watchdog.guard(
        () => {
          this.drop("timed out");
          return new TransportTimeoutError(
            `TPM ${this.options.uri} did not answer within ${this.options.timeoutMs} ms ` +
              `(is the server hung, or is another client holding its only connection?)`,
          );
        },
        async (deadline) => {
          if (prepare) await prepare();
          return await this.run(request, readReply, deadline);
        },
      );
    } finally {
      this.busy = false;
    }
  }

  /** Drop the connection and stop the watchdog; the next exchange reconnects. Idempotent. */
  close(): void {
    this.drop();
    this.watchdog.cancel();
  }

  /** Drop the connection; the next exchange reconnects. Idempotent. */
  drop(reason = "the connection was closed locally"): void {
    this.connecting?.destroy();
    this.connecting = undefined;
    this.conn?.destroy(reason);
    this.conn = undefined;
  }

  private async run(
    request: Uint8Array,
    readReply: (read: ReadExactly) => Promise<Uint8Array>,
    deadline: Deadline,
  ): Promise<Uint8Array> {
    if (deadline.expired) throw new Expired();
    let conn = this.conn;
    if (conn?.reused && this.serverKeepsConnection === undefined) {
      // First reuse: a server that closes after each response has sent its FIN by now; learn which
      // kind this is. (A close noticed later, while idle, has already marked the connection dead.)
      await settle(LEARN_CLOSE_MS);
      if (deadline.expired) throw new Expired();
      this.serverKeepsConnection = conn.alive;
    }
    if (conn && (!conn.alive || conn.pendingBytes > 0)) {
      // Closed, or unsolicited bytes: nothing was written on it yet, so a fresh connection is safe.
      conn.destroy();
      conn = undefined;
    }
    if (!conn) {
      conn = await StreamConnection.open(this.address, `TPM ${this.options.uri}`, (s) => (this.connecting = s));
      this.connecting = undefined;
      if (deadline.expired) {
        conn.destroy();
        throw new Expired();
      }
      this.conn = conn;
    }
    const c = conn;
    // The caller was told "timeout": the command must not go out after that.
    if (deadline.expired) throw new Expired();
    c.write(request);
    let reply: Uint8Array;
    try {
      reply = await readReply((n) => c.read(n));
    } catch (e) {
      if (this.conn === c) this.drop();
      if (e instanceof ConnectionLost) {
        throw new TransportError(
          `Connection to TPM ${this.options.uri} was lost after the command was sent ` +
            `(${e.received} response bytes received; ${e.reason}). The command was not resent ` +
            `because it may have executed.`,
          { cause: e },
        );
      }
      throw e;
    }
    if (c.pendingBytes > 0) {
      if (this.conn === c) this.drop();
      throw new TransportError(
        `TPM ${this.options.uri} sent ${c.pendingBytes} bytes beyond the end of its response; ` +
          `the stream is out of step, so the connection was dropped`,
      );
    }
    c.reused = true;
    if ((!this.options.persistent || this.serverKeepsConnection === false) && this.conn === c) this.drop();
    return reply;
  }
}

/** Read one raw TPM response: 10-byte header, then exactly responseSize - 10 bytes. */
export async function readTpmResponse(read: ReadExactly, uri: string): Promise<Uint8Array> {
  const header = await read(RESPONSE_HEADER_BYTES);
  const size = header.readUInt32BE(2);
  checkResponseSize(size, uri);
  // One allocation the caller owns: the reads return views into the socket's chunks.
  const out = new Uint8Array(size);
  out.set(header);
  if (size > RESPONSE_HEADER_BYTES) out.set(await read(size - RESPONSE_HEADER_BYTES), RESPONSE_HEADER_BYTES);
  return out;
}

/** responseSize must cover the header and stay within MAX_RESPONSE_BYTES. */
export function checkResponseSize(size: number, uri: string): void {
  if (size < RESPONSE_HEADER_BYTES || size > MAX_RESPONSE_BYTES) {
    throw new TransportError(
      `Invalid response from TPM ${uri}: responseSize ${size} is outside ${RESPONSE_HEADER_BYTES}..${MAX_RESPONSE_BYTES}; ` +
        `this is not a TPM 2.0 response (wrong port or protocol?)`,
    );
  }
}

// ---------------------------------------------------------------------------------------------
// Control channel

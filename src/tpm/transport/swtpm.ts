/**
 * swtpm's socket interface: the raw data channel (`--server`) and the control channel (`--ctrl`).
 * Also home of the stream plumbing shared with mssim.ts (exact-length reads, reconnects, deadlines).
 *
 * Mirrors `stefanberger/swtpm: src/swtpm/mainloop.c, src/swtpm/ctrlchannel.c, include/swtpm/tpm_ioctl.h`
 * and `tpm2-software/tpm2-tss: src/tss2-tcti/tcti-swtpm.c` (see spec/tpm.md §1.1–1.3).
 */
import * as net from "node:net";
import { Buffer } from "node:buffer";
import { TransportError, TransportTimeoutError } from "../errors.ts";
import {
  DEFAULT_TIMEOUT_MS,
  MAX_RESPONSE_BYTES,
  RESPONSE_HEADER_BYTES,
  type Transport,
  type TransportOptions,
} from "./transport.ts";

/** Where a socket TPM listens: TCP host and port, or a unix socket path. */
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

function describeAddress(address: SocketAddress): string {
  return "path" in address ? address.path : `${address.host}:${address.port}`;
}

/** Why a read on a StreamConnection failed: the peer closed, reset, or we destroyed it. */
class ConnectionLost extends Error {
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

/** Run `work` under a deadline; on expiry call `onExpire` (which must make `work` settle) and reject. */
export function withDeadline<T>(ms: number, onExpire: () => Error, work: (d: Deadline) => Promise<T>): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const deadline = { expired: false };
    const timer = setTimeout(() => {
      deadline.expired = true;
      reject(onExpire());
    }, ms);
    work(deadline).then(
      (v) => {
        clearTimeout(timer);
        if (!deadline.expired) resolve(v);
      },
      (e) => {
        clearTimeout(timer);
        if (!deadline.expired) reject(e);
      },
    );
  });
}

/** Thrown inside work whose deadline passed; never seen by callers (they got the timeout). */
class Expired extends Error {}

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

  constructor(readonly address: SocketAddress, private readonly options: SocketLinkOptions) {}

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
      return await withDeadline(
        this.options.timeoutMs,
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
  const body = size > RESPONSE_HEADER_BYTES ? await read(size - RESPONSE_HEADER_BYTES) : Buffer.alloc(0);
  return new Uint8Array(Buffer.concat([header, body]));
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

/** Control channel commands (`include/swtpm/tpm_ioctl.h`, CMD_*). */
export const PTM_CMD = {
  GET_CAPABILITY: 0x01,
  INIT: 0x02,
  SHUTDOWN: 0x03,
  GET_TPMESTABLISHED: 0x04,
  SET_LOCALITY: 0x05,
  HASH_START: 0x06,
  HASH_DATA: 0x07,
  HASH_END: 0x08,
  CANCEL_TPM_CMD: 0x09,
  STORE_VOLATILE: 0x0a,
  RESET_TPMESTABLISHED: 0x0b,
  GET_STATEBLOB: 0x0c,
  SET_STATEBLOB: 0x0d,
  STOP: 0x0e,
  GET_CONFIG: 0x0f,
  SET_DATAFD: 0x10,
  SET_BUFFERSIZE: 0x11,
  GET_INFO: 0x12,
  LOCK_STORAGE: 0x13,
} as const;

/** PTM_CAP_* bit positions of CMD_GET_CAPABILITY's answer. */
export const PTM_CAP_BIT = {
  INIT: 0,
  SHUTDOWN: 1,
  GET_TPMESTABLISHED: 2,
  SET_LOCALITY: 3,
  HASHING: 4,
  CANCEL_TPM_CMD: 5,
  STORE_VOLATILE: 6,
  RESET_TPMESTABLISHED: 7,
  GET_STATEBLOB: 8,
  SET_STATEBLOB: 9,
  STOP: 10,
  GET_CONFIG: 11,
  SET_DATAFD: 12,
  SET_BUFFERSIZE: 13,
  GET_INFO: 14,
  SEND_COMMAND_HEADER: 15,
  LOCK_STORAGE: 16,
} as const;

/** CMD_INIT flag: delete the volatile state file after reading it. */
export const PTM_INIT_FLAG_DELETE_VOLATILE = 1;

/** ptm_res values (TPM 1.2 codes) the control channel answers with. */
export const PTM_RES_NAMES: Readonly<Record<number, string>> = {
  0x03: "TPM_BAD_PARAMETER",
  0x09: "TPM_FAIL",
  0x0a: "TPM_BAD_ORDINAL",
  0x3d: "TPM_BAD_LOCALITY",
};

function ptmCmdName(cmd: number): string {
  for (const [k, v] of Object.entries(PTM_CMD)) if (v === cmd) return `CMD_${k}`;
  return `control command 0x${cmd.toString(16)}`;
}

/** The control channel answered with ptm_res != 0. */
export class SwtpmControlError extends TransportError {
  override readonly code = "ERR_TRANSPORT_SWTPM_CONTROL";
  constructor(readonly command: string, readonly result: number, where: string) {
    const name = PTM_RES_NAMES[result];
    super(
      `swtpm ${command} failed on ${where}: ptm_res 0x${result.toString(16)}${name ? ` (${name})` : ""}` +
        (result === 0x0a ? "; the TPM is not running (send CMD_INIT first)" : ""),
    );
    this.name = "SwtpmControlError";
  }
}

/** Shape of a control reply after ptm_res: `fixed` bytes, then optionally u32-length-prefixed data. */
export interface ControlReplyShape {
  /** Bytes that always follow ptm_res on success. */
  fixed: number;
  /** Offset within the fixed part of a u32 giving the number of data bytes that follow it. */
  lengthAt?: number;
}

export interface SwtpmControlOptions {
  /** Name of the TPM for messages (its data uri). */
  uri?: string;
  /** Per-request deadline; default 30 s (CMD_INIT may load a large state). */
  timeoutMs?: number;
}

/**
 * swtpm's control channel (spec §1.2). Like tcti-swtpm, every request uses a fresh connection and
 * a single write: swtpm closes a request that has not fully arrived within 500 ms.
 */
export class SwtpmControl {
  private readonly where: string;
  private readonly timeoutMs: number;

  constructor(readonly address: SocketAddress, options: SwtpmControlOptions = {}) {
    this.where = `${options.uri ?? "swtpm"} (control ${describeAddress(address)})`;
    this.timeoutMs = options.timeoutMs ?? 30_000;
  }

  /**
   * Send `u32 cmd ‖ payload`; return what follows ptm_res. `reply` is the number of fixed bytes
   * after ptm_res, or a shape with a length-prefixed tail. Rejects with SwtpmControlError when
   * ptm_res != 0.
   */
  request(
    cmd: number,
    payload: Uint8Array = new Uint8Array(0),
    reply: number | ControlReplyShape = 0,
  ): Promise<Uint8Array> {
    const shape = typeof reply === "number" ? { fixed: reply } : reply;
    const name = ptmCmdName(cmd);
    let socket: net.Socket | undefined;
    let conn: StreamConnection | undefined;
    return withDeadline(
      this.timeoutMs,
      () => {
        socket?.destroy();
        conn?.destroy();
        return new TransportTimeoutError(`swtpm ${name} on ${this.where} got no answer within ${this.timeoutMs} ms`);
      },
      async (deadline) => {
        conn = await StreamConnection.open(this.address, `swtpm control channel of ${this.where}`, (s) => (socket = s));
        const c = conn;
        if (deadline.expired) {
          c.destroy();
          throw new Expired();
        }
        try {
          const req = Buffer.alloc(4 + payload.length);
          req.writeUInt32BE(cmd >>> 0, 0);
          req.set(payload, 4);
          c.write(req);
          const res = (await c.read(4)).readUInt32BE(0);
          if (res !== 0) throw new SwtpmControlError(name, res, this.where);
          const fixed = shape.fixed ? await c.read(shape.fixed) : Buffer.alloc(0);
          if (shape.lengthAt === undefined) return new Uint8Array(fixed);
          const len = fixed.readUInt32BE(shape.lengthAt);
          if (len > MAX_RESPONSE_BYTES) {
            throw new TransportError(`swtpm ${name} on ${this.where}: reply length ${len} is implausible`);
          }
          const data = len ? await c.read(len) : Buffer.alloc(0);
          return new Uint8Array(Buffer.concat([fixed, data]));
        } catch (e) {
          if (e instanceof ConnectionLost) {
            throw new TransportError(
              `swtpm ${name} on ${this.where}: the connection closed before a full reply ` +
                `(${e.received} bytes; ${e.reason}). swtpm drops malformed or slow (>500 ms) requests.`,
              { cause: e },
            );
          }
          throw e;
        } finally {
          c.destroy();
        }
      },
    );
  }

  /** CMD_GET_CAPABILITY: the PTM_CAP_* bit mask (see PTM_CAP_BIT). */
  async getCapability(): Promise<number> {
    const r = await this.request(PTM_CMD.GET_CAPABILITY, undefined, 4);
    return Buffer.from(r).readUInt32BE(0);
  }

  /** CMD_INIT: (re)initialise the TPM; afterwards it needs TPM2_Startup. flags: PTM_INIT_FLAG_*. */
  async init(flags = 0): Promise<void> {
    await this.request(PTM_CMD.INIT, u32(flags));
  }

  /** CMD_SHUTDOWN: swtpm stores its state and exits. */
  async shutdown(): Promise<void> {
    await this.request(PTM_CMD.SHUTDOWN);
  }

  /** CMD_STOP: stop the TPM (the process stays; CMD_INIT restarts it). */
  async stop(): Promise<void> {
    await this.request(PTM_CMD.STOP);
  }

  /** CMD_SET_LOCALITY: locality of the following commands (swtpm accepts 0–4). */
  async setLocality(locality: number): Promise<void> {
    await this.request(PTM_CMD.SET_LOCALITY, Uint8Array.of(checkLocality(locality)));
  }

  /** CMD_GET_TPMESTABLISHED: the TPM-established bit. */
  async getTpmEstablished(): Promise<boolean> {
    const r = await this.request(PTM_CMD.GET_TPMESTABLISHED, undefined, 4);
    return (r[0]! & 1) === 1;
  }

  /** CMD_RESET_TPMESTABLISHED at the given locality. */
  async resetTpmEstablished(locality: number): Promise<void> {
    await this.request(PTM_CMD.RESET_TPMESTABLISHED, Uint8Array.of(checkLocality(locality)));
  }

  /** CMD_CANCEL_TPM_CMD. */
  async cancel(): Promise<void> {
    await this.request(PTM_CMD.CANCEL_TPM_CMD);
  }

  /** CMD_STORE_VOLATILE: write the volatile state to the state directory. */
  async storeVolatile(): Promise<void> {
    await this.request(PTM_CMD.STORE_VOLATILE);
  }

  /** CMD_GET_CONFIG: PTM_CONFIG_FLAG_* (1 file key, 2 migration key). */
  async getConfig(): Promise<number> {
    const r = await this.request(PTM_CMD.GET_CONFIG, undefined, 4);
    return Buffer.from(r).readUInt32BE(0);
  }

  /** CMD_SET_BUFFERSIZE: 0 queries. Returns the size in use and the supported range. */
  async setBufferSize(size = 0): Promise<{ bufferSize: number; minSize: number; maxSize: number }> {
    const r = Buffer.from(await this.request(PTM_CMD.SET_BUFFERSIZE, u32(size), 12));
    return { bufferSize: r.readUInt32BE(0), minSize: r.readUInt32BE(4), maxSize: r.readUInt32BE(8) };
  }

  /** CMD_GET_INFO: libtpms information as JSON text (flags: SWTPM_INFO_*, e.g. 1 = TPM specification). */
  async getInfo(flags: number): Promise<string> {
    const req = Buffer.alloc(16);
    req.writeBigUInt64BE(BigInt(flags), 0);
    const r = await this.request(PTM_CMD.GET_INFO, req, { fixed: 8, lengthAt: 4 });
    return Buffer.from(r.subarray(8)).toString("utf8").replace(/\0+$/, "");
  }
}

function u32(v: number): Uint8Array {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v >>> 0, 0);
  return b;
}

function checkLocality(locality: number): number {
  if (!Number.isInteger(locality) || locality < 0 || locality > 255) {
    throw new TransportError(`Invalid locality ${locality}: expected an integer 0..255 (swtpm accepts 0..4)`);
  }
  return locality;
}

// ---------------------------------------------------------------------------------------------
// Data channel

export interface SwtpmTransportOptions extends TransportOptions {
  /**
   * Keep one connection open between commands (default true). swtpm serves one client at a time,
   * so a held connection blocks tpm2-tools; pass false to connect per command as tcti-swtpm does.
   */
  persistent?: boolean;
  /** Control channel TCP port (default: data port + 1). */
  ctrlPort?: number;
  /** Control channel unix socket (default: data path + ".ctrl"). */
  ctrlPath?: string;
}

/**
 * swtpm's raw data channel: a TPM command in, the response out, no framing. One command in
 * flight; each command is written in one piece (§1.1 10-byte read pitfall).
 */
export class SwtpmTransport implements Transport {
  readonly uri: string;
  readonly resourceManaged = false;
  /** The control channel (CMD_INIT, CMD_SET_LOCALITY, ...). */
  readonly control: SwtpmControl;
  private readonly link: SocketLink;
  private currentLocality = 0;
  private pendingLocality: number | undefined;

  constructor(readonly address: SocketAddress, options: SwtpmTransportOptions = {}) {
    this.uri = socketUri("swtpm", address);
    this.link = new SocketLink(address, {
      uri: this.uri,
      timeoutMs: options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
      persistent: options.persistent ?? true,
    });
    this.control = new SwtpmControl(companionAddress(address, options.ctrlPort, options.ctrlPath), {
      uri: this.uri,
      ...(options.timeoutMs !== undefined ? { timeoutMs: Math.min(options.timeoutMs, 30_000) } : {}),
    });
  }

  /** Locality of the following commands. */
  get locality(): number {
    return this.pendingLocality ?? this.currentLocality;
  }

  /** Takes effect through CMD_SET_LOCALITY before the next command; a refusal rejects that send. */
  set locality(locality: number) {
    this.pendingLocality = checkLocality(locality);
  }

  /** Change locality now (CMD_SET_LOCALITY). */
  async setLocality(locality: number): Promise<void> {
    await this.control.setLocality(locality);
    this.currentLocality = locality;
    this.pendingLocality = undefined;
  }

  send(command: Uint8Array): Promise<Uint8Array> {
    const prepare = this.pendingLocality === undefined ? undefined : async () => {
      const loc = this.pendingLocality!;
      this.pendingLocality = undefined;
      await this.control.setLocality(loc);
      this.currentLocality = loc;
    };
    return this.link.exchange(command, (read) => readTpmResponse(read, this.uri), prepare);
  }

  close(): Promise<void> {
    this.link.drop();
    return Promise.resolve();
  }
}

/**
 * Socket plumbing shared by the simulator's protocol servers (swtpm_server.ts, mssim_server.ts):
 * exact reads, one engine queue for every connection, paired listeners on free ports, and unix
 * socket housekeeping.
 */
import * as net from "node:net";
import * as fs from "node:fs";
import { setImmediate } from "node:timers";
import { Buffer } from "node:buffer";
import { TPM_RC } from "../src/tpm/constants.ts";
import { TpmLibraryError } from "../src/tpm/errors.ts";
import type { TpmEngine } from "./engine.ts";
import type { RateLimitedLog } from "./rate_limited_log.ts";

/** A running protocol server. */
export interface TpmServer {
  /** The TCTI-style string clients connect with, e.g. `swtpm:host=127.0.0.1,port=2321`. */
  readonly uri: string;
  /** The data / TPM TCP port, when serving TCP. */
  readonly port?: number;
  /** The data / TPM unix socket, when serving unix sockets. */
  readonly path?: string;
  /** Settles once the server stopped: close(), or a client's CMD_SHUTDOWN / mssim STOP. */
  readonly closed: Promise<void>;
  /** Stop listening and drop every connection. Idempotent; the engine is left open. */
  close(): Promise<void>;
}

/** A server socket could not be bound. */
export class SimulatorListenError extends TpmLibraryError {
  readonly code = "ERR_SIM_LISTEN";
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "SimulatorListenError";
  }
}

/** How long a command may take to arrive once its first byte is in (truncated requests must not hang a connection). */
export const DEFAULT_REQUEST_TIMEOUT_MS = 5000;

/** Limits on the connections of each channel (the defaults are CONNECTION_DEFAULTS). */
export interface ConnectionOptions {
  /** A new connection must send its first byte within this time, or it is closed. */
  firstByteTimeoutMs?: number;
  /**
   * A connection silent this long between requests is closed. Default: never, since tcti-mssim
   * holds one connection for its whole life and does not reconnect; a full channel closes the
   * connection idle longest instead.
   */
  idleTimeoutMs?: number;
  /** Connections served at once per channel; one more closes the longest-idle one, or is refused. */
  maxConnections?: number;
  /**
   * How often a channel that accepted nothing lately checks that it still can (a connection to
   * itself), and listens anew if not: some runtimes stop accepting for good once file descriptors
   * ran out. 0 turns the check off.
   */
  acceptCheckMs?: number;
}

export const CONNECTION_DEFAULTS = {
  firstByteTimeoutMs: 10_000,
  idleTimeoutMs: undefined,
  maxConnections: 64,
  acceptCheckMs: 2000,
} as const satisfies ConnectionOptions;

/** Just the ConnectionOptions of a server's options. */
export function connectionOptions(o: ConnectionOptions): ConnectionOptions {
  const { firstByteTimeoutMs, idleTimeoutMs, maxConnections, acceptCheckMs } = o;
  return { firstByteTimeoutMs, idleTimeoutMs, maxConnections, acceptCheckMs };
}

/** How long an accept check waits for its own connection to be accepted. */
const ACCEPT_CHECK_WAIT_MS = 1000;
/** Largest command accepted: libtpms' and swtpm's buffer size. */
export const DEFAULT_MAX_COMMAND_BYTES = 4096;

/** A 10-byte TPM error response: TPM_ST_NO_SESSIONS, responseSize 10, `rc`. */
export function errorResponse(rc: number): Uint8Array {
  const b = Buffer.alloc(10);
  b.writeUInt16BE(0x8001, 0);
  b.writeUInt32BE(10, 2);
  b.writeUInt32BE(rc >>> 0, 6);
  return b;
}

/** The mssim reply to TPM_SEND_COMMAND: `u32 size ‖ rsp ‖ u32 0`, as one buffer for one write. */
export function frameMssimResponse(rsp: Uint8Array): Uint8Array {
  const b = Buffer.alloc(rsp.length + 8);
  b.writeUInt32BE(rsp.length, 0);
  b.set(rsp, 4);
  return b;
}

/** The rest of a TPM_SEND_COMMAND after its u32 code: `u8 locality ‖ u32 size ‖ cmd`. */
export async function readMssimCommand(
  r: SocketReader,
  until: number,
  max: number,
): Promise<{ locality: number; command: Uint8Array } | { why: string }> {
  const h = await r.read(5, until);
  if (!h) {
    return {
      why: r.ended
        ? "the client ended the connection inside an mssim header"
        : "an mssim header did not arrive in time",
    };
  }
  const size = h.readUInt32BE(1);
  if (size > max) return { why: `mssim command size ${size} exceeds ${max}` };
  // A frame that is not a well-formed command still goes to the engine, which answers it (as ms-tpm-20-ref).
  const body = await r.read(size, until);
  if (!body) {
    return {
      why: r.ended
        ? `the client ended the connection inside a ${size}-byte command`
        : `a ${size}-byte command did not arrive in time`,
    };
  }
  return { locality: h[0]!, command: new Uint8Array(body) };
}

/** engine.execute, with a TPM_RC_FAILURE response should the engine break its promise of a well-formed response. */
export async function executeSafely(
  engine: TpmEngine,
  command: Uint8Array,
  locality: number,
  warn: (message: string) => void,
): Promise<Uint8Array> {
  try {
    const rsp = await engine.execute(command, locality);
    const size = rsp.length >= 10 ? new DataView(rsp.buffer, rsp.byteOffset, rsp.byteLength).getUint32(2) : -1;
    if (size === rsp.length) return rsp;
    warn(`TPM engine returned a malformed ${rsp.length}-byte response (responseSize ${size}); sent TPM_RC_FAILURE`);
  } catch (e) {
    warn(`TPM engine failed to execute a command: ${e instanceof Error ? e.message : String(e)}; sent TPM_RC_FAILURE`);
  }
  return errorResponse(TPM_RC.FAILURE);
}

/**
 * engine.prepare before a command joins the queue: an RSA key search then runs while the queue
 * serves the other connections' commands, instead of holding all of them up.
 */
export async function prepareOutsideQueue(engine: TpmEngine, command: Uint8Array): Promise<void> {
  try {
    await engine.prepare?.(command);
  } catch {
    // execute() answers for the command in turn
  }
}

/** End our side of a connection unless it is already gone. */
export function endSocket(socket: net.Socket): void {
  if (!socket.destroyed) socket.end();
}

/** Write unless the peer is gone (a client that left mid-command must not break the server). */
export function send(socket: net.Socket, bytes: Uint8Array): void {
  if (!socket.destroyed && socket.writable) socket.write(bytes);
}

/**
 * End a connection whose stream is out of step, after its last reply: stop reading requests but
 * keep draining what arrives, since closing with unread bytes would send a RST that can destroy the
 * reply before the client reads it.
 */
export function finishConversation(socket: net.Socket, reader: SocketReader, lingerMs = 1000): void {
  reader.discard();
  endSocket(socket);
  const t = setTimeout(() => socket.destroy(), lingerMs);
  (t as { unref?: () => void }).unref?.();
  socket.once("close", () => clearTimeout(t));
}

/**
 * Runs engine work from every connection of a server one item at a time, in arrival order, so
 * commands and control/platform signals never interleave and a locality change applies exactly to
 * the commands queued after it.
 */
export class EngineQueue {
  private tail: Promise<unknown> = Promise.resolve();
  /** Set when the server stopped: queued work is dropped. */
  stopped = false;

  run<T>(work: () => Promise<T> | T): Promise<T | undefined> {
    const next = this.tail.then(() => (this.stopped ? undefined : work()));
    this.tail = next.catch(() => {});
    return next;
  }

  /** Resolves once everything queued so far has run. */
  async idle(): Promise<void> {
    await this.tail;
  }
}

/** Above this many unread bytes a connection is paused, so a flooding client cannot grow our memory. */
const HIGH_WATER_BYTES = 64 * 1024;

/** Exact-length reads off a server-side socket, with deadlines. Also absorbs the socket's errors. */
export class SocketReader {
  /** performance.now() since when the connection waits for a request; undefined while one is in progress. */
  idleSince: number | undefined = performance.now();
  private requests = 0;
  private chunks: Buffer[] = [];
  private size = 0;
  private eof = false;
  private discarding = false;
  private waiter: { n: number; resolve: (ok: boolean) => void; timer?: ReturnType<typeof setTimeout> } | undefined;

  constructor(
    private readonly socket: net.Socket,
    private readonly timeouts: Pick<ConnectionOptions, "firstByteTimeoutMs" | "idleTimeoutMs"> = {},
  ) {
    socket.on("data", (d: Buffer) => {
      if (this.discarding) return;
      this.chunks.push(d);
      this.size += d.length;
      if (this.size > HIGH_WATER_BYTES) socket.pause();
      this.pump();
    });
    const gone = () => {
      this.eof = true;
      this.pump();
    };
    socket.on("end", gone);
    socket.on("close", gone);
    // ECONNRESET, EPIPE ...: the connection is over; nothing else to do.
    socket.on("error", gone);
  }

  /** The peer ended its side or the connection failed: no more bytes will come. */
  get ended(): boolean {
    return this.eof;
  }

  /**
   * Resolve true once `n` bytes are buffered; false when no more bytes can come or `until`
   * (a performance.now() time) passes. Without `until` it waits as long as the client idles.
   */
  wait(n: number, until?: number): Promise<boolean> {
    if (this.size >= n) return Promise.resolve(true);
    if (this.eof || this.discarding) return Promise.resolve(false);
    return new Promise((resolve) => {
      const w: NonNullable<SocketReader["waiter"]> = { n, resolve };
      if (until !== undefined) {
        w.timer = setTimeout(() => {
          if (this.waiter === w) this.waiter = undefined;
          resolve(false);
        }, Math.max(0, until - performance.now()));
      }
      this.waiter = w;
    });
  }

  /**
   * Wait for the first byte of the next request: true when it came; false when the client left or
   * stayed silent past the first-byte (first request) or idle deadline, and the caller should end.
   */
  async nextRequest(): Promise<boolean> {
    const ms = this.requests === 0 ? this.timeouts.firstByteTimeoutMs : this.timeouts.idleTimeoutMs;
    this.idleSince = performance.now();
    const ok = await this.wait(1, ms === undefined ? undefined : performance.now() + ms);
    this.idleSince = undefined;
    if (ok) this.requests++;
    return ok;
  }

  /** Exactly `n` bytes, or null (see wait). */
  async read(n: number, until?: number): Promise<Buffer | null> {
    return (await this.wait(n, until)) ? this.take(n) : null;
  }

  /** Drop what is buffered and everything that still arrives. */
  discard(): void {
    this.discarding = true;
    this.chunks = [];
    this.size = 0;
    this.socket.resume();
    this.pump();
  }

  private take(n: number): Buffer {
    const all = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.size);
    const rest = all.subarray(n);
    this.chunks = rest.length ? [rest] : [];
    this.size = rest.length;
    if (this.size <= HIGH_WATER_BYTES && this.socket.isPaused()) this.socket.resume();
    return all.subarray(0, n);
  }

  private pump(): void {
    const w = this.waiter;
    if (!w) return;
    const ok = this.size >= w.n;
    if (!ok && !this.eof && !this.discarding) return;
    this.waiter = undefined;
    if (w.timer) clearTimeout(w.timer);
    w.resolve(ok);
  }
}

/** Where a ChannelPair listens: a TCP port pair or a unix socket pair. */
export type BoundAddress =
  | { host: string; port: number; companionPort: number }
  | { path: string; companionPath: string };

export interface ChannelPairOptions extends ConnectionOptions {
  host?: string;
  /** 0 picks a free port P; the companion then gets P + 1, retrying until both are free. */
  port?: number;
  /** Default: port + 1. */
  companionPort?: number | undefined;
  path?: string;
  companionPath?: string;
  /** For messages: the main and the companion channel. */
  names: [string, string];
  /** The server's engine queue: stopped on close, and waited for. */
  queue: EngineQueue;
  /** Serve one connection; a rejection (a bug, or an engine getter that throws) drops just that connection. */
  handlers: [ConnectionHandler, ConnectionHandler];
  /** Messages clients can provoke at will go through log; the rest through warn. */
  log: RateLimitedLog;
  warn: (message: string) => void;
}

/** Serves one connection, reading it through `reader` (which applies the connection's deadlines). */
export type ConnectionHandler = (socket: net.Socket, reader: SocketReader) => Promise<void>;

/** How often a free port pair is looked for before giving up. */
const PORT_PAIR_ATTEMPTS = 20;

/** One listening channel: its server (replaced when it listens anew) and its connections. */
class Channel {
  server!: net.Server;
  target!: ListenTarget;
  readonly live = new Map<net.Socket, SocketReader>();
  /** Connections accepted so far, and when the last one was. */
  accepted = 0;
  lastAccept = performance.now();
  checking = false;
  constructor(readonly name: string, readonly index: 0 | 1) {}

  /** The connection waiting longest for a request, if any waits. */
  longestIdle(): [net.Socket, number] | undefined {
    let found: [net.Socket, number] | undefined;
    for (const [socket, reader] of this.live) {
      const since = reader.idleSince;
      if (since !== undefined && (!found || since < found[1])) found = [socket, since];
    }
    return found;
  }
}

/**
 * Two listening sockets, the main channel (swtpm data / mssim TPM) and its companion (swtpm control
 * / mssim platform), closed together. Each keeps its connections within maxConnections and checks
 * that it still accepts (acceptCheckMs), listening anew when it stopped.
 */
export class ChannelPair {
  readonly closed: Promise<void>;
  private closing: Promise<void> | undefined;
  private markClosed!: () => void;
  private readonly watchdog: ReturnType<typeof setInterval> | undefined;
  private readonly limits: Required<Omit<ConnectionOptions, "idleTimeoutMs">> & { idleTimeoutMs?: number };

  private constructor(
    private readonly o: ChannelPairOptions,
    private readonly channels: [Channel, Channel],
    readonly address: BoundAddress,
    /** Set when closing: connections still arriving are dropped. */
    private readonly stop: { now: boolean },
  ) {
    this.closed = new Promise((resolve) => (this.markClosed = resolve));
    this.limits = limitsOf(o);
    if (this.limits.acceptCheckMs > 0) {
      this.watchdog = setInterval(() => {
        for (const ch of this.channels) void this.checkAccepting(ch);
      }, this.limits.acceptCheckMs);
      (this.watchdog as { unref?: () => void }).unref?.();
    }
  }

  static async listen(o: ChannelPairOptions): Promise<ChannelPair> {
    const channels: [Channel, Channel] = [new Channel(o.names[0], 0), new Channel(o.names[1], 1)];
    const stop = { now: false };
    const limits = limitsOf(o);
    const make = (i: 0 | 1) =>
      net.createServer({ allowHalfOpen: true }, (socket) => ChannelPair.accept(o, limits, channels[i], socket, stop));
    const bound = o.path !== undefined
      ? await listenUnixPair(make, o.path, o.companionPath ?? `${o.path}.ctrl`, o.names)
      : await listenTcpPair(make, o.host ?? "127.0.0.1", o.port ?? 0, o.companionPort, o.names);
    const a = bound.address;
    const targets: [ListenTarget, ListenTarget] = "path" in a
      ? [{ path: a.path }, { path: a.companionPath }]
      : [{ host: a.host, port: a.port }, { host: a.host, port: a.companionPort }];
    channels.forEach((ch, i) => {
      ch.server = bound.servers[i]!;
      ch.target = targets[i]!;
    });
    const pair = new ChannelPair(o, channels, a, stop);
    for (const ch of channels) pair.watchErrors(ch);
    return pair;
  }

  /** A new connection: within the limit (closing the longest-idle one if need be), then served. */
  private static accept(
    o: ChannelPairOptions,
    limits: ChannelPair["limits"],
    ch: Channel,
    socket: net.Socket,
    stop: { now: boolean },
  ): void {
    ch.accepted++;
    ch.lastAccept = performance.now();
    if (stop.now) return void socket.destroy();
    if (ch.live.size >= limits.maxConnections) {
      const idle = ch.longestIdle();
      const kind = `${ch.name}: connection limit`;
      if (!idle) {
        o.log.warn(kind, `${ch.name}: ${limits.maxConnections} connections open and all busy; refused a new one`);
        return void socket.destroy();
      }
      o.log.warn(
        kind,
        `${ch.name}: ${limits.maxConnections} connections open; closed the one idle longest ` +
          `(${Math.round((performance.now() - idle[1]) / 1000)} s) for a new one`,
      );
      ch.live.delete(idle[0]);
      idle[0].destroy();
    }
    const reader = new SocketReader(socket, limits);
    ch.live.set(socket, reader);
    socket.once("close", () => ch.live.delete(socket));
    // Replies go out in one write; never let Nagle hold them back (spec §1.4).
    if (o.path === undefined) socket.setNoDelay(true);
    o.handlers[ch.index](socket, reader).catch((e) => {
      o.warn(`${ch.name}: dropped a connection: ${e instanceof Error ? e.message : String(e)}`);
      socket.destroy();
    });
  }

  /** A server error after listening is an accept that failed (EMFILE ...): log it and check at once. */
  private watchErrors(ch: Channel): void {
    ch.server.on("error", (e) => {
      this.o.log.warn(`${ch.name}: accept errors`, `${ch.name}: accepting a connection failed: ${errText(e)}`);
      void this.checkAccepting(ch, true);
    });
  }

  /**
   * Whether the channel still accepts: when nothing was accepted for acceptCheckMs (or `now`),
   * connect to it and see the connection arrive; listen anew when it does not.
   */
  private async checkAccepting(ch: Channel, now = false): Promise<void> {
    if (this.stop.now || ch.checking) return;
    if (!now && performance.now() - ch.lastAccept < this.limits.acceptCheckMs) return;
    ch.checking = true;
    try {
      const before = ch.accepted;
      const probe = await connectWithin(ch.target, ACCEPT_CHECK_WAIT_MS);
      if (probe === "EMFILE" || probe === "ENFILE") {
        this.o.log.warn(
          `${ch.name}: out of file descriptors`,
          `${ch.name}: this process is out of file descriptors (${probe}); new connections may fail until some close`,
        );
        return;
      }
      if (typeof probe !== "string") {
        const until = performance.now() + ACCEPT_CHECK_WAIT_MS;
        while (ch.accepted === before && performance.now() < until && !this.stop.now) await sleep(10);
        // A loop that was busy past the deadline may not have polled for the accept yet: one more turn.
        if (ch.accepted === before) await new Promise((resolve) => setImmediate(resolve));
        probe.destroy();
      }
      if (ch.accepted === before && !this.stop.now) await this.listenAnew(ch);
    } finally {
      ch.checking = false;
    }
  }

  /** Replace a channel's server that stopped accepting with a new one on the same address. */
  private async listenAnew(ch: Channel): Promise<void> {
    const where = "path" in ch.target ? ch.target.path : `${ch.target.host}:${ch.target.port}`;
    this.o.warn(`${ch.name}: stopped accepting connections (file descriptors ran out?); listening on ${where} anew`);
    // The old server's connections go on; only its listening socket goes (closed on the next turn).
    ch.server.close();
    await sleep(20);
    if ("path" in ch.target) removeSocketFile(ch.target.path);
    const server = net.createServer(
      { allowHalfOpen: true },
      (socket) => ChannelPair.accept(this.o, this.limits, ch, socket, this.stop),
    );
    try {
      await bind(server, ch.target);
    } catch (e) {
      this.o.log.warn(
        `${ch.name}: listening anew`,
        `${ch.name}: listening anew failed: ${errText(e)}; trying again in ${this.limits.acceptCheckMs} ms`,
      );
      return;
    }
    if (this.stop.now) return void server.close();
    ch.server = server;
    ch.lastAccept = performance.now();
    this.watchErrors(ch);
    this.o.warn(`${ch.name}: accepting connections again`);
  }

  /**
   * Stop listening, drop every connection and every queued command. Resolves once the command in
   * progress (if any) is done, so the caller may close the engine then.
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.stop.now = true;
      if (this.watchdog) clearInterval(this.watchdog);
      this.o.queue.stopped = true;
      for (const ch of this.channels) for (const s of ch.live.keys()) s.destroy();
      await Promise.all(this.channels.map((ch) => closeServer(ch.server)));
      if ("path" in this.address) {
        for (const p of [this.address.path, this.address.companionPath]) removeSocketFile(p);
      }
      this.o.log.flush();
      await this.o.queue.idle();
      this.markClosed();
    })();
    return this.closing;
  }
}

function limitsOf(o: ConnectionOptions): ChannelPair["limits"] {
  return {
    firstByteTimeoutMs: o.firstByteTimeoutMs ?? CONNECTION_DEFAULTS.firstByteTimeoutMs,
    ...(o.idleTimeoutMs !== undefined ? { idleTimeoutMs: o.idleTimeoutMs } : {}),
    maxConnections: o.maxConnections ?? CONNECTION_DEFAULTS.maxConnections,
    acceptCheckMs: o.acceptCheckMs ?? CONNECTION_DEFAULTS.acceptCheckMs,
  };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function errText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** A client connection to `target`, or the error code that prevented it (a timeout is "ETIMEDOUT"). */
function connectWithin(target: ListenTarget, ms: number): Promise<net.Socket | string> {
  return new Promise((resolve) => {
    let socket: net.Socket;
    try {
      socket = "path" in target ? net.createConnection({ path: target.path }) : net.createConnection(target);
    } catch (e) {
      return resolve(errnoOf(e) ?? "EUNKNOWN");
    }
    const timer = setTimeout(() => {
      socket.destroy();
      resolve("ETIMEDOUT");
    }, ms);
    socket.once("connect", () => {
      clearTimeout(timer);
      resolve(socket);
    });
    socket.once("error", (e) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(errnoOf(e) ?? "EUNKNOWN");
    });
  });
}

/** The host a client should connect to: a wildcard bind is reachable on loopback. */
export function clientHost(host: string): string {
  return host === "0.0.0.0" ? "127.0.0.1" : host === "::" ? "::1" : host;
}

type ServerFactory = (i: 0 | 1) => net.Server;
type ListenTarget = { host: string; port: number } | { path: string };

function bind(server: net.Server, target: ListenTarget): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (e: Error) => {
      server.off("listening", onListening);
      reject(e);
    };
    const onListening = () => {
      server.off("error", onError);
      resolve();
    };
    server.once("error", onError);
    server.once("listening", onListening);
    server.listen(target);
  });
}

function closeServer(server: net.Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

function errnoOf(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException | undefined)?.code;
}

function listenError(name: string, where: string, e: unknown): SimulatorListenError {
  const code = errnoOf(e);
  const hint = code === "EADDRINUSE"
    ? " (the address is in use: is another TPM server running there? pick another port or path)"
    : code === "EACCES"
    ? " (permission denied)"
    : "";
  return new SimulatorListenError(
    `Cannot listen for the ${name} on ${where}: ${e instanceof Error ? e.message : String(e)}${hint}`,
    { cause: e },
  );
}

async function listenTcpPair(
  make: ServerFactory,
  host: string,
  port: number,
  companionPort: number | undefined,
  names: [string, string],
): Promise<{ servers: net.Server[]; address: BoundAddress }> {
  const picking = port === 0 && companionPort === undefined;
  for (let attempt = 1;; attempt++) {
    const main = make(0);
    try {
      await bind(main, { host, port });
    } catch (e) {
      throw listenError(names[0], `${host}:${port}`, e);
    }
    const p = (main.address() as net.AddressInfo).port;
    const cp = companionPort ?? p + 1;
    const companion = make(1);
    try {
      if (cp > 65535) throw Object.assign(new Error(`port ${cp} does not exist`), { code: "EADDRINUSE" });
      await bind(companion, { host, port: cp });
      return {
        servers: [main, companion],
        address: { host, port: p, companionPort: (companion.address() as net.AddressInfo).port },
      };
    } catch (e) {
      await closeServer(main);
      // A free P whose P + 1 is taken: try another P.
      if (picking && attempt < PORT_PAIR_ATTEMPTS && errnoOf(e) === "EADDRINUSE") continue;
      throw listenError(names[1], `${host}:${cp}`, e);
    }
  }
}

async function listenUnixPair(
  make: ServerFactory,
  path: string,
  companionPath: string,
  names: [string, string],
): Promise<{ servers: net.Server[]; address: BoundAddress }> {
  const main = await bindUnix(() => make(0), path, names[0]);
  try {
    const companion = await bindUnix(() => make(1), companionPath, names[1]);
    return { servers: [main, companion], address: { path, companionPath } };
  } catch (e) {
    await closeServer(main);
    removeSocketFile(path);
    throw e;
  }
}

/** Bind a unix socket, replacing a stale socket file that a dead server left (nobody accepts on it). */
async function bindUnix(make: () => net.Server, path: string, name: string): Promise<net.Server> {
  let server = make();
  try {
    await bind(server, { path });
    return server;
  } catch (e) {
    if (errnoOf(e) !== "EADDRINUSE" || !(await isStaleSocket(path))) throw listenError(name, path, e);
  }
  try {
    fs.unlinkSync(path);
    server = make();
    await bind(server, { path });
    return server;
  } catch (e) {
    throw listenError(name, path, e);
  }
}

function isStaleSocket(path: string): Promise<boolean> {
  try {
    if (!fs.statSync(path).isSocket()) return Promise.resolve(false);
  } catch {
    return Promise.resolve(false);
  }
  return new Promise((resolve) => {
    const c = net.createConnection({ path });
    c.once("connect", () => {
      c.destroy();
      resolve(false);
    });
    c.once("error", (e) => resolve(errnoOf(e) === "ECONNREFUSED"));
  });
}

/** Remove a socket file we served on (Node removes it on close; other runtimes may not). */
function removeSocketFile(path: string): void {
  try {
    if (fs.statSync(path).isSocket()) fs.unlinkSync(path);
  } catch {
    // already gone
  }
}

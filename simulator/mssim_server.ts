/**
 * Serves a TpmEngine with the Microsoft simulator protocol (spec/tpm.md §1.4; mirrors
 * `microsoft/ms-tpm-20-ref: TPMCmd/Simulator/src/TcpServer.c`, `TPMCmdp.c`): the TPM port carries
 * commands, the platform port (TPM port + 1, or path + ".ctrl" for unix sockets, §1.6) power signals.
 *
 * Unlike the reference, which serves one client at a time, every client is accepted and their
 * commands run one at a time in arrival order. Prefer a unix socket for tcti-mssim clients: they
 * write each command in two pieces without TCP_NODELAY, which costs ~40 ms per command over TCP (§1.4).
 */
import type * as net from "node:net";
import { Buffer } from "node:buffer";
import { TPM_RC } from "../src/tpm/constants.ts";
import { socketUri } from "../src/tpm/transport/socket_link.ts";
import {
  MSSIM_REMOTE_HANDSHAKE,
  MSSIM_SESSION_END,
  MSSIM_SIGNAL,
  MSSIM_TPM_SEND_COMMAND,
} from "../src/tpm/transport/mssim.ts";
import type { TpmEngine } from "./engine.ts";
import { RateLimitedLog } from "./rate_limited_log.ts";
import {
  ChannelPair,
  clientHost,
  type ConnectionOptions,
  connectionOptions,
  DEFAULT_MAX_COMMAND_BYTES,
  DEFAULT_REQUEST_TIMEOUT_MS,
  endSocket,
  EngineQueue,
  errorResponse,
  executeSafely,
  finishConversation,
  frameMssimResponse,
  prepareOutsideQueue,
  readMssimCommand,
  send,
  type SocketReader,
  type TpmServer,
} from "./socket_server.ts";

export interface MssimServerOptions extends ConnectionOptions {
  /** TCP address to bind (default 127.0.0.1). */
  host?: string;
  /** TPM TCP port; 0 (the default) picks a free port P whose P + 1 is free too. */
  port?: number;
  /** Platform TCP port (default: TPM port + 1). */
  platformPort?: number;
  /** Serve on this unix socket instead of TCP. */
  path?: string;
  /** Platform unix socket (default: path + ".ctrl", as tcti-mssim looks for it). */
  platformPath?: string;
  /** A request must arrive whole within this time of its first byte (default 5000 ms). */
  requestTimeoutMs?: number;
  /** Largest command accepted (default 4096). */
  maxCommandBytes?: number;
  /** Protocol errors of clients and failures of the engine (default console.warn). */
  warn?: (message: string) => void;
}

export interface MssimServer extends TpmServer {
  /** Platform TCP port, when serving TCP. */
  readonly platformPort?: number;
  /** Platform unix socket, when serving unix sockets. */
  readonly platformPath?: string;
}

/** TpmTcpProtocol.h: the rest of the TPM port's commands. */
export const MSSIM_SET_ALTERNATIVE_RESULT = 16;
export const MSSIM_STOP = 21;
/** REMOTE_HANDSHAKE's answer: ServerVersion 1, and tpmPlatformAvailable | tpmInRawMode | tpmSupportsPP. */
export const MSSIM_SERVER_VERSION = 1;
export const MSSIM_SERVER_FLAGS = 0x01 | 0x04 | 0x08;

interface MssimState {
  readonly engine: TpmEngine;
  readonly queue: EngineQueue;
  readonly warn: (message: string) => void;
  /** For what clients can provoke at will: malformed requests. */
  readonly log: RateLimitedLog;
  readonly requestTimeoutMs: number;
  readonly maxCommandBytes: number;
  /** STOP: stop serving. */
  stop: () => void;
}

/** Start serving `engine`; resolves once both ports listen. The engine stays the caller's to close. */
export async function startMssimServer(engine: TpmEngine, options: MssimServerOptions = {}): Promise<MssimServer> {
  const warn = options.warn ?? ((m: string) => console.warn(m));
  const state: MssimState = {
    engine,
    queue: new EngineQueue(),
    warn,
    log: new RateLimitedLog(warn),
    requestTimeoutMs: options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS,
    maxCommandBytes: options.maxCommandBytes ?? DEFAULT_MAX_COMMAND_BYTES,
    stop: () => {},
  };
  const p = await ChannelPair.listen({
    queue: state.queue,
    ...(options.path !== undefined
      ? { path: options.path, companionPath: options.platformPath ?? `${options.path}.ctrl` }
      : { host: options.host ?? "127.0.0.1", port: options.port ?? 0, companionPort: options.platformPort }),
    names: ["mssim TPM port", "mssim platform port"],
    handlers: [(s, r) => serveTpm(s, r, state), (s, r) => servePlatform(s, r, state)],
    log: state.log,
    warn: state.warn,
    ...connectionOptions(options),
  });
  state.stop = () => void p.close();
  const common = { closed: p.closed, close: () => p.close() };
  const a = p.address;
  if ("path" in a) {
    return { uri: socketUri("mssim", { path: a.path }), path: a.path, platformPath: a.companionPath, ...common };
  }
  return {
    uri: socketUri("mssim", { host: clientHost(a.host), port: a.port }),
    port: a.port,
    platformPort: a.companionPort,
    ...common,
  };
}

function u32s(...words: number[]): Uint8Array {
  const b = Buffer.alloc(4 * words.length);
  words.forEach((w, i) => b.writeUInt32BE(w >>> 0, 4 * i));
  return b;
}

/** Save before stopping, as the reference's NV file is always current when it exits. */
async function saveAndStop(st: MssimState, socket: net.Socket): Promise<void> {
  await st.queue.run(async () => {
    try {
      await st.engine.save();
    } catch (e) {
      st.warn(`mssim STOP: saving the TPM state failed: ${e instanceof Error ? e.message : String(e)}`);
    }
  });
  endSocket(socket);
  st.stop();
}

// ---------------------------------------------------------------------------------------------
// TPM port

async function serveTpm(socket: net.Socket, reader: SocketReader, st: MssimState): Promise<void> {
  while (await reader.nextRequest()) {
    const until = performance.now() + st.requestTimeoutMs;
    const head = await reader.read(4, until);
    if (!head) return void socket.destroy();
    const code = head.readUInt32BE(0);
    switch (code) {
      case MSSIM_TPM_SEND_COMMAND: {
        const req = await readMssimCommand(reader, until, st.maxCommandBytes);
        if ("why" in req) {
          st.log.warn(
            "mssim TPM port: malformed requests",
            `mssim TPM port: ${req.why}; answered TPM_RC_COMMAND_SIZE and closed the connection`,
          );
          send(socket, frameMssimResponse(errorResponse(TPM_RC.COMMAND_SIZE)));
          return finishConversation(socket, reader);
        }
        await prepareOutsideQueue(st.engine, req.command);
        const rsp = await st.queue.run(() => executeSafely(st.engine, req.command, req.locality, st.warn));
        if (rsp === undefined) return;
        send(socket, frameMssimResponse(rsp));
        break;
      }
      case MSSIM_REMOTE_HANDSHAKE: {
        const v = await reader.read(4, until);
        if (!v) return void socket.destroy();
        // The reference refuses client version 0 by closing.
        if (v.readUInt32BE(0) === 0) return finishConversation(socket, reader);
        send(socket, u32s(MSSIM_SERVER_VERSION, MSSIM_SERVER_FLAGS, 0));
        break;
      }
      case MSSIM_SET_ALTERNATIVE_RESULT: {
        // Not applicable to a simulator (the reference reads and ignores it).
        if (!(await reader.read(4, until))) return void socket.destroy();
        send(socket, u32s(0));
        break;
      }
      case MSSIM_SESSION_END:
        return endSocket(socket);
      case MSSIM_STOP:
        return saveAndStop(st, socket);
      default:
        // Includes HASH_START/DATA/END (5/6/7): there is no DRTM locality-4 hash sequence here.
        st.log.warn(
          "mssim TPM port: unsupported commands",
          `mssim TPM port: command ${code} is not supported; closed the connection`,
        );
        return finishConversation(socket, reader);
    }
  }
  endSocket(socket);
}

// ---------------------------------------------------------------------------------------------
// Platform port

/** The engine side of each platform signal; undefined means acknowledged with nothing to do. */
function platformAction(st: MssimState, signal: number): (() => Promise<void>) | undefined | "unknown" {
  const e = st.engine;
  switch (signal) {
    case MSSIM_SIGNAL.POWER_ON:
      // Idempotent (_rpc__Signal_PowerOn(FALSE) returns when already on): tcti-mssim sends it for every
      // tool, and a _TPM_Init each time would wipe the loaded objects and sessions between tools (§7.7).
      return () => (e.powered ? Promise.resolve() : e.init());
    case MSSIM_SIGNAL.POWER_OFF:
      return () => (e.powered ? e.powerOff() : Promise.resolve());
    case MSSIM_SIGNAL.RESET:
      // _rpc__Signal_PowerOn(TRUE): _TPM_Init while powered; nothing while off.
      return () => (e.powered ? e.init() : Promise.resolve());
    case MSSIM_SIGNAL.RESTART: // a clock restart in the reference: no _TPM_Init
    case MSSIM_SIGNAL.PHYS_PRES_ON:
    case MSSIM_SIGNAL.PHYS_PRES_OFF:
    case MSSIM_SIGNAL.CANCEL_ON:
    case MSSIM_SIGNAL.CANCEL_OFF:
    case MSSIM_SIGNAL.NV_ON: // NV is always available here
    case MSSIM_SIGNAL.NV_OFF:
    case MSSIM_SIGNAL.KEY_CACHE_ON:
    case MSSIM_SIGNAL.KEY_CACHE_OFF:
      return undefined;
    default:
      return "unknown";
  }
}

async function servePlatform(socket: net.Socket, reader: SocketReader, st: MssimState): Promise<void> {
  while (await reader.nextRequest()) {
    const head = await reader.read(4, performance.now() + st.requestTimeoutMs);
    if (!head) return void socket.destroy();
    const signal = head.readUInt32BE(0);
    if (signal === MSSIM_SIGNAL.SESSION_END) return endSocket(socket);
    if (signal === MSSIM_SIGNAL.STOP) return saveAndStop(st, socket);
    const action = platformAction(st, signal);
    if (action === "unknown") {
      // As the reference: u32 1, then the connection closes.
      st.log.warn(
        "mssim platform port: unsupported signals",
        `mssim platform port: signal ${signal} is not supported; answered 1 and closed the connection`,
      );
      send(socket, u32s(1));
      return finishConversation(socket, reader);
    }
    let ack = 0;
    if (action) {
      const done = await st.queue.run(async () => {
        try {
          await action();
          return true;
        } catch (e) {
          st.warn(`mssim platform signal ${signal} failed: ${e instanceof Error ? e.message : String(e)}`);
          return false;
        }
      });
      if (done === undefined) return;
      ack = done ? 0 : 1;
    }
    send(socket, u32s(ack));
    if (ack !== 0) return finishConversation(socket, reader);
  }
  endSocket(socket);
}

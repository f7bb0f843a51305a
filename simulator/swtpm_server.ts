/**
 * Serves a TpmEngine with swtpm's socket protocol (spec/tpm.md §1.1–§1.3): the raw data channel and
 * the control channel, over TCP (control = data port + 1) or unix sockets (control = path + ".ctrl").
 *
 * Where swtpm 0.7.1 trips clients up, this server does not (§1.1, §7.8):
 * - it reads a command's full commandSize before executing it, so split and pipelined writes work;
 * - it accepts every client and runs their commands one at a time in arrival order, instead of
 *   leaving a second client hanging in connect() while a first one holds its connection;
 * - a connection may carry one command (tcti-swtpm) or many (our SwtpmTransport).
 * Like swtpm it also accepts the mssim header on the data port (`u32 8 ‖ u8 locality ‖ u32 size ‖ cmd`,
 * answered `u32 size ‖ rsp ‖ u32 0`), and drops control requests that are not complete within 500 ms.
 *
 * The socket plumbing at the end of this file (SocketReader, EngineQueue, ChannelPair, framing) is
 * shared with mssim_server.ts.
 */
import * as net from "node:net";
import { Buffer } from "node:buffer";
import { TPM_RC } from "../src/tpm/constants.ts";
import { socketUri } from "../src/tpm/transport/socket_link.ts";
import { PTM_CAP_BIT, PTM_CMD, PTM_INIT_FLAG_DELETE_VOLATILE } from "../src/tpm/transport/swtpm_control.ts";
import { MSSIM_TPM_SEND_COMMAND } from "../src/tpm/transport/mssim.ts";
import type { TpmEngine } from "./engine.ts";
import { RateLimitedLog } from "./rate_limited_log.ts";
import {
  type BoundAddress,
  ChannelPair,
  clientHost,
  type ConnectionOptions,
  connectionOptions,
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
import { toHex } from "../src/util/encoding.ts";

export interface SwtpmServerOptions extends ConnectionOptions {
  /** TCP address to bind (default 127.0.0.1). */
  host?: string;
  /** Data channel TCP port; 0 (the default) picks a free port P whose P + 1 is free too. */
  port?: number;
  /** Control channel TCP port (default: data port + 1). */
  ctrlPort?: number;
  /** Serve on this unix socket instead of TCP. */
  path?: string;
  /** Control channel unix socket (default: path + ".ctrl"). */
  ctrlPath?: string;
  /** A command must arrive whole within this time of its first byte (default 5000 ms). */
  requestTimeoutMs?: number;
  /** A control request must arrive whole within this time of its first byte (default 500 ms, as swtpm). */
  controlTimeoutMs?: number;
  /** Protocol errors of clients and failures of the engine (default console.warn). */
  warn?: (message: string) => void;
}

export interface SwtpmServer extends TpmServer {
  /** Control channel TCP port, when serving TCP. */
  readonly ctrlPort?: number;
  /** Control channel unix socket, when serving unix sockets. */
  readonly ctrlPath?: string;
}

/** What CMD_GET_CAPABILITY advertises: exactly the commands handled below. */
export const SWTPM_SERVER_CAPS = [
  PTM_CAP_BIT.INIT,
  PTM_CAP_BIT.SHUTDOWN,
  PTM_CAP_BIT.GET_TPMESTABLISHED,
  PTM_CAP_BIT.SET_LOCALITY,
  PTM_CAP_BIT.STORE_VOLATILE,
  PTM_CAP_BIT.RESET_TPMESTABLISHED,
  PTM_CAP_BIT.STOP,
  PTM_CAP_BIT.GET_CONFIG,
  PTM_CAP_BIT.SET_BUFFERSIZE,
  PTM_CAP_BIT.SEND_COMMAND_HEADER,
].reduce<number>((caps, bit) => caps | (1 << bit), 0);

/** ptm_res values (TPM 1.2 codes, `include/swtpm/tpm_ioctl.h`). */
export const PTM_RES = { SUCCESS: 0, BAD_PARAMETER: 0x03, FAIL: 0x09, BAD_ORDINAL: 0x0a, BAD_LOCALITY: 0x3d } as const;

/** CMD_SET_BUFFERSIZE's answer, as swtpm 0.7.1 gives it (testdata/tpm-vectors/raw/ctrl.txt). */
export const SWTPM_BUFFER_SIZE = { min: 2808, max: 4096 } as const;

/** Start serving `engine`; resolves once both channels listen. The engine stays the caller's to close. */
export async function startSwtpmServer(engine: TpmEngine, options: SwtpmServerOptions = {}): Promise<SwtpmServer> {
  const warn = options.warn ?? ((m: string) => console.warn(m));
  const state: SwtpmState = {
    engine,
    queue: new EngineQueue(),
    warn,
    log: new RateLimitedLog(warn),
    locality: 0,
    bufferSize: SWTPM_BUFFER_SIZE.max,
    requestTimeoutMs: options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS,
    controlTimeoutMs: options.controlTimeoutMs ?? 500,
    stop: () => {},
  };
  const p = await ChannelPair.listen({
    queue: state.queue,
    ...(options.path !== undefined
      ? { path: options.path, companionPath: options.ctrlPath ?? `${options.path}.ctrl` }
      : { host: options.host ?? "127.0.0.1", port: options.port ?? 0, companionPort: options.ctrlPort }),
    names: ["swtpm data channel", "swtpm control channel"],
    handlers: [(s, r) => serveData(s, r, state), (s, r) => serveControl(s, r, state)],
    log: state.log,
    warn: state.warn,
    ...connectionOptions(options),
  });
  state.stop = () => void p.close();
  return describe(p.address, { closed: p.closed, close: () => p.close() });
}

function describe(a: BoundAddress, common: Pick<SwtpmServer, "closed" | "close">): SwtpmServer {
  if ("path" in a) {
    return { uri: socketUri("swtpm", { path: a.path }), path: a.path, ctrlPath: a.companionPath, ...common };
  }
  return {
    uri: socketUri("swtpm", { host: clientHost(a.host), port: a.port }),
    port: a.port,
    ctrlPort: a.companionPort,
    ...common,
  };
}

interface SwtpmState {
  readonly engine: TpmEngine;
  readonly queue: EngineQueue;
  readonly warn: (message: string) => void;
  /** For what clients can provoke at will: malformed requests. */
  readonly log: RateLimitedLog;
  /** Set by CMD_SET_LOCALITY and by the mssim header; used by every later command (as swtpm's mainloop). */
  locality: number;
  /** CMD_SET_BUFFERSIZE: the largest command accepted. */
  bufferSize: number;
  readonly requestTimeoutMs: number;
  readonly controlTimeoutMs: number;
  /** CMD_SHUTDOWN: stop serving. */
  stop: () => void;
}

// ---------------------------------------------------------------------------------------------
// Data channel

type DataRequest =
  | { command: Uint8Array; mssim: boolean; locality?: number }
  | { rc: number; mssim: boolean; why: string };

async function serveData(socket: net.Socket, reader: SocketReader, st: SwtpmState): Promise<void> {
  while (await reader.nextRequest()) {
    const request = await readDataRequest(reader, performance.now() + st.requestTimeoutMs, st.bufferSize);
    if ("rc" in request) {
      // The stream cannot be trusted to be in step any more: answer, then end the connection.
      st.log.warn(
        "swtpm data channel: malformed requests",
        `swtpm data channel: ${request.why}; answered rc 0x${request.rc.toString(16)} and closed the connection`,
      );
      const rsp = errorResponse(request.rc);
      send(socket, request.mssim ? frameMssimResponse(rsp) : rsp);
      finishConversation(socket, reader);
      return;
    }
    await prepareOutsideQueue(st.engine, request.command);
    const rsp = await st.queue.run(() => {
      if (request.locality !== undefined) st.locality = request.locality;
      return executeSafely(st.engine, request.command, st.locality, st.warn);
    });
    if (rsp === undefined) return; // the server stopped meanwhile
    send(socket, request.mssim ? frameMssimResponse(rsp) : rsp);
  }
  endSocket(socket);
}

/** One command off the data channel: raw (`tag ‖ commandSize ‖ ...`) or behind the mssim header. */
async function readDataRequest(r: SocketReader, until: number, max: number): Promise<DataRequest> {
  const start = await r.read(4, until);
  if (!start) return { rc: TPM_RC.COMMAND_SIZE, mssim: false, why: shortWhy(r, "a command header") };
  const tag = start.readUInt16BE(0);
  if (tag !== 0x8001 && tag !== 0x8002) {
    // swtpm's tpmlib_handle_tcg_tpm2_cmd_header: not a TPM tag, but u32 8 = TPM_SEND_COMMAND.
    if (start.readUInt32BE(0) === MSSIM_TPM_SEND_COMMAND) {
      const m = await readMssimCommand(r, until, max);
      if ("why" in m) return { rc: TPM_RC.COMMAND_SIZE, mssim: true, why: m.why };
      return { command: m.command, mssim: true, locality: m.locality };
    }
    return {
      rc: TPM_RC.BAD_TAG,
      mssim: false,
      why: `bytes ${toHex(start)} start neither a TPM command nor an mssim header`,
    };
  }
  const rest = await r.read(6, until);
  if (!rest) return { rc: TPM_RC.COMMAND_SIZE, mssim: false, why: shortWhy(r, "a command header") };
  const size = (start.readUInt16BE(2) * 0x10000) + rest.readUInt16BE(0);
  if (size < 10 || size > max) {
    return { rc: TPM_RC.COMMAND_SIZE, mssim: false, why: `commandSize ${size} is outside 10..${max}` };
  }
  const command = new Uint8Array(size);
  command.set(start, 0);
  command.set(rest, 4);
  if (size > 10) {
    const body = await r.read(size - 10, until);
    if (!body) return { rc: TPM_RC.COMMAND_SIZE, mssim: false, why: shortWhy(r, `the ${size}-byte command`) };
    command.set(body, 10);
  }
  return { command, mssim: false };
}

function shortWhy(r: SocketReader, what: string): string {
  return r.ended ? `the client ended the connection in the middle of ${what}` : `${what} did not arrive in time`;
}

// ---------------------------------------------------------------------------------------------
// Control channel

interface ControlOp {
  /** Bytes of payload after the u32 command code. */
  payload: number;
  run(st: SwtpmState, payload: Buffer): Promise<Uint8Array> | Uint8Array;
}

/** `u32 ptm_res ‖ u32 ...`: every reply below is whole u32s, except GET_TPMESTABLISHED's u8 + 3 pad (also 4 bytes). */
function ptm(res: number, ...words: number[]): Uint8Array {
  const b = Buffer.alloc(4 * (1 + words.length));
  b.writeUInt32BE(res, 0);
  words.forEach((w, i) => b.writeUInt32BE(w >>> 0, 4 * (i + 1)));
  return b;
}

/** Run an engine operation; a failure is ptm_res TPM_FAIL, as swtpm answers when libtpms fails. */
async function engineOp(st: SwtpmState, what: string, op: () => Promise<void>): Promise<Uint8Array> {
  try {
    await op();
    return ptm(PTM_RES.SUCCESS);
  } catch (e) {
    st.warn(`swtpm control channel: ${what} failed: ${e instanceof Error ? e.message : String(e)}`);
    return ptm(PTM_RES.FAIL);
  }
}

const CONTROL_OPS: Readonly<Record<number, ControlOp>> = {
  [PTM_CMD.GET_CAPABILITY]: { payload: 0, run: () => ptm(PTM_RES.SUCCESS, SWTPM_SERVER_CAPS) },
  [PTM_CMD.INIT]: {
    payload: 4,
    run: (st, p) => {
      const deleteVolatile = (p.readUInt32BE(0) & PTM_INIT_FLAG_DELETE_VOLATILE) !== 0;
      return engineOp(st, "CMD_INIT", () => st.engine.init({ deleteVolatile }));
    },
  },
  // Saves and stops serving (swtpm exits); the caller learns it through `closed`.
  [PTM_CMD.SHUTDOWN]: { payload: 0, run: (st) => engineOp(st, "CMD_SHUTDOWN", () => st.engine.save()) },
  [PTM_CMD.STOP]: { payload: 0, run: (st) => engineOp(st, "CMD_STOP", () => st.engine.powerOff()) },
  // Nothing here ever sets the TPM-established bit (no DRTM hash sequence), so it reads 0.
  [PTM_CMD.GET_TPMESTABLISHED]: {
    payload: 0,
    run: (st) => st.engine.powered ? ptm(PTM_RES.SUCCESS, 0) : ptm(PTM_RES.BAD_ORDINAL),
  },
  [PTM_CMD.RESET_TPMESTABLISHED]: {
    payload: 1,
    run: (st, p) =>
      !st.engine.powered ? ptm(PTM_RES.BAD_ORDINAL) : p[0]! > 4 ? ptm(PTM_RES.BAD_LOCALITY) : ptm(PTM_RES.SUCCESS),
  },
  [PTM_CMD.SET_LOCALITY]: {
    payload: 1,
    run: (st, p) => {
      if (p[0]! > 4) return ptm(PTM_RES.BAD_LOCALITY);
      st.locality = p[0]!;
      return ptm(PTM_RES.SUCCESS);
    },
  },
  [PTM_CMD.STORE_VOLATILE]: {
    payload: 0,
    run: (st) =>
      st.engine.powered ? engineOp(st, "CMD_STORE_VOLATILE", () => st.engine.save()) : ptm(PTM_RES.BAD_ORDINAL),
  },
  [PTM_CMD.GET_CONFIG]: { payload: 0, run: () => ptm(PTM_RES.SUCCESS, 0) },
  [PTM_CMD.SET_BUFFERSIZE]: {
    payload: 4,
    run: (st, p) => {
      const wanted = p.readUInt32BE(0);
      if (wanted !== 0) {
        // swtpm only lets the size change while the TPM is not running.
        if (st.engine.powered) return ptm(PTM_RES.BAD_ORDINAL);
        st.bufferSize = Math.min(Math.max(wanted, SWTPM_BUFFER_SIZE.min), SWTPM_BUFFER_SIZE.max);
      }
      return ptm(PTM_RES.SUCCESS, st.bufferSize, SWTPM_BUFFER_SIZE.min, SWTPM_BUFFER_SIZE.max);
    },
  },
};

async function serveControl(socket: net.Socket, reader: SocketReader, st: SwtpmState): Promise<void> {
  while (await reader.nextRequest()) {
    // swtpm's 500 ms rule: a request that is not complete in time is dropped without a reply.
    const until = performance.now() + st.controlTimeoutMs;
    const head = await reader.read(4, until);
    if (!head) return void socket.destroy();
    const cmd = head.readUInt32BE(0);
    const op = CONTROL_OPS[cmd];
    if (!op) {
      // Unknown or not implemented (hashing, state blobs, SET_DATAFD, GET_INFO ...): swtpm answers
      // TPM_BAD_ORDINAL. The payload's length is unknown, so the conversation ends here.
      st.log.warn(
        "swtpm control channel: unsupported commands",
        `swtpm control channel: command 0x${cmd.toString(16)} is not supported; answered TPM_BAD_ORDINAL`,
      );
      send(socket, ptm(PTM_RES.BAD_ORDINAL));
      finishConversation(socket, reader);
      return;
    }
    const payload = op.payload ? await reader.read(op.payload, until) : Buffer.alloc(0);
    if (!payload) return void socket.destroy();
    const reply = await st.queue.run(() => op.run(st, payload));
    if (reply === undefined) return;
    if (cmd === PTM_CMD.SHUTDOWN) {
      // Stop once the reply is on its way (or the client left), so the client still reads its ptm_res.
      socket.once("close", st.stop);
      socket.end(reply, st.stop);
      return;
    }
    send(socket, reply);
  }
  endSocket(socket);
}

/**
 * Per-command latency through our client against swtpm, beside the same exchange on a bare
 * `node:net` socket to the same swtpm. swtpm serves one connection at a time, so the contestants
 * take turns in batches (rotating order), each on its own persistent connection for the batch;
 * load drift then hits all of them alike. The first exchanges of each batch (reconnect) are discarded.
 */
import { Buffer } from "node:buffer";
import * as net from "node:net";
import { Tpm } from "../src/tpm/client.ts";
import type { AnyCommand, CommandArgs } from "../src/tpm/command.ts";
import type { SocketAddress } from "../src/tpm/transport/socket_link.ts";
import type { Transport } from "../src/tpm/transport/transport.ts";
import { openTransport } from "../src/tpm/transport/uri.ts";
import { plainCommand, responseCode, rotateBlocks } from "./common.ts";
import { type LatencySummary, summarize } from "./stats.ts";

/** Median overhead the client may add over the raw exchange. */
export const TARGET_OVERHEAD = 0.2;

export interface LatencyOptions {
  iterations: number;
  warmup: number;
  batchSize: number;
  /** Exchanges discarded at the start of every batch (they include the reconnect). */
  batchWarmup: number;
}

export interface LatencyResult {
  readonly socket: "tcp" | "unix";
  readonly command: string;
  readonly commandBytes: number;
  readonly responseBytes: number;
  readonly iterations: number;
  readonly warmup: number;
  readonly batchSize: number;
  readonly batchWarmup: number;
  /** Microseconds. */
  readonly raw: LatencySummary;
  readonly transport: LatencySummary;
  readonly client: LatencySummary;
  /** The client's own CPU path: Tpm.execute over a transport that answers at once with canned bytes. */
  readonly clientNoIo: LatencySummary;
  readonly clientOverRaw: number;
  readonly transportOverRaw: number;
  readonly overheadUs: number;
  readonly target: number;
  readonly met: boolean;
}

/** One stream socket, TCP_NODELAY on TCP: write the command once, read header then responseSize. */
export class RawSocket {
  private chunks: Buffer[] = [];
  private have = 0;
  private want = 0;
  private pending: { resolve: (b: Buffer) => void; reject: (e: Error) => void } | undefined;
  private failure: Error | undefined;

  private constructor(private readonly socket: net.Socket) {
    socket.on("data", (d: Buffer) => {
      this.chunks.push(d);
      this.have += d.length;
      this.check();
    });
    const fail = (e: Error) => {
      this.failure ??= e;
      const p = this.pending;
      this.pending = undefined;
      p?.reject(e);
    };
    socket.on("error", fail);
    socket.on("close", () => fail(new Error("raw socket closed")));
  }

  static connect(address: SocketAddress): Promise<RawSocket> {
    return new Promise((resolve, reject) => {
      const s = "path" in address
        ? net.createConnection({ path: address.path })
        : net.createConnection({ host: address.host, port: address.port, noDelay: true });
      s.once("error", reject);
      s.once("connect", () => {
        s.off("error", reject);
        if (!("path" in address)) s.setNoDelay(true);
        resolve(new RawSocket(s));
      });
    });
  }

  exchange(command: Uint8Array): Promise<Buffer> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.pending = { resolve, reject };
      this.want = 0;
      this.socket.write(command);
    });
  }

  private check(): void {
    const p = this.pending;
    if (!p) {
      this.socket.destroy(new Error(`${this.have} unsolicited bytes`));
      return;
    }
    if (this.have < 10) return;
    const buf = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.have);
    this.chunks = [buf];
    if (this.want === 0) this.want = buf.readUInt32BE(2);
    if (this.have < this.want) return;
    this.pending = undefined;
    this.chunks = [];
    this.have = 0;
    if (buf.length !== this.want) p.reject(new Error(`${buf.length - this.want} bytes beyond the response`));
    else p.resolve(buf);
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      if (this.socket.destroyed) return resolve();
      this.socket.once("close", () => resolve());
      this.socket.destroy();
    });
  }
}

/** Answers every command at once with the same bytes: the client's cost without I/O. */
class CannedTransport implements Transport {
  readonly uri = "canned:";
  readonly resourceManaged = false;
  constructor(private readonly response: Uint8Array) {}
  send(): Promise<Uint8Array> {
    return Promise.resolve(this.response);
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

interface Contestant {
  readonly name: "raw" | "transport" | "client" | "clientNoIo";
  open(): Promise<void>;
  op(): Promise<unknown>;
  close(): Promise<void>;
}

export interface LatencyCase<C extends AnyCommand> {
  socket: "tcp" | "unix";
  uri: string;
  address: SocketAddress;
  label: string;
  def: C;
  args: CommandArgs<C>;
  /** Throws when a client result is not what the command should return. */
  check: (result: Record<string, unknown>) => void;
}

export async function runLatency<C extends AnyCommand>(
  c: LatencyCase<C>,
  o: LatencyOptions,
  progress: (msg: string) => void,
): Promise<LatencyResult> {
  // The exact bytes the client sends for this command (no sessions on these commands).
  const command = plainCommand(c.def, c.args);
  /** The response, unless its response code says the command failed. */
  const succeeded = (path: string, r: Uint8Array): Uint8Array => {
    const rc = responseCode(r);
    if (rc !== 0) throw new Error(`${path} ${c.label}: rc 0x${rc.toString(16)}`);
    return r;
  };

  let raw: RawSocket | undefined;
  const rawOp = async () => succeeded("raw", await raw!.exchange(command));
  const rawC: Contestant = {
    name: "raw",
    open: async () => {
      raw = await RawSocket.connect(c.address);
    },
    op: () => rawOp(),
    close: async () => {
      await raw?.close();
      raw = undefined;
    },
  };

  const transport = openTransport(c.uri);
  const transportOp = async () => succeeded("transport", await transport.send(command));
  const transportC: Contestant = {
    name: "transport",
    open: () => Promise.resolve(), // connects lazily on the first send
    op: () => transportOp(),
    close: () => transport.close(),
  };

  const tpm = new Tpm(openTransport(c.uri));
  const clientC: Contestant = {
    name: "client",
    open: () => Promise.resolve(),
    op: () => tpm.execute(c.def, c.args),
    close: () => tpm.close(),
  };

  // Sanity: all three paths work and agree on the response size; the canned response is a real one.
  await rawC.open();
  const sample = await rawOp();
  await rawC.close();
  const viaTransport = await transportOp();
  await transportC.close();
  c.check(await tpm.execute(c.def, c.args) as Record<string, unknown>);
  await tpm.close();
  if (sample.length !== viaTransport.length) {
    throw new Error(`${c.label}: raw response ${sample.length} B, transport response ${viaTransport.length} B`);
  }
  const canned = new Tpm(new CannedTransport(new Uint8Array(sample)));
  c.check(await canned.execute(c.def, c.args) as Record<string, unknown>);
  const noIoC: Contestant = {
    name: "clientNoIo",
    open: () => Promise.resolve(),
    op: () => canned.execute(c.def, c.args),
    close: () => Promise.resolve(),
  };

  const contestants = [rawC, transportC, clientC, noIoC];
  const samples = new Map(contestants.map((k) => [k.name, new Float64Array(o.iterations)]));

  const session = async (k: Contestant, discard: number, record?: { into: Float64Array; at: number; n: number }) => {
    await k.open();
    try {
      for (let i = 0; i < discard; i++) await k.op();
      if (record) {
        for (let i = 0; i < record.n; i++) {
          const t0 = performance.now();
          await k.op();
          record.into[record.at + i] = (performance.now() - t0) * 1000;
        }
      }
    } finally {
      await k.close();
    }
  };

  progress(`${c.socket} ${c.label}: warm-up (${o.warmup} per path)`);
  for (const k of contestants) await session(k, o.warmup);

  const batches = Math.ceil(o.iterations / o.batchSize);
  // Rotate the order so no path always runs first (or right after another one's connection closed).
  await rotateBlocks(
    contestants,
    o.iterations,
    o.batchSize,
    (k, n, at) => session(k, o.batchWarmup, { into: samples.get(k.name)!, at, n }),
    (b) => progress(`${c.socket} ${c.label}: batch ${b + 1}/${batches}`),
  );

  const s = (name: Contestant["name"]) => summarize(samples.get(name)!);
  const rawS = s("raw");
  const transportS = s("transport");
  const clientS = s("client");
  const ratio = clientS.median / rawS.median;
  return {
    socket: c.socket,
    command: c.label,
    commandBytes: command.length,
    responseBytes: sample.length,
    iterations: o.iterations,
    warmup: o.warmup,
    batchSize: o.batchSize,
    batchWarmup: o.batchWarmup,
    raw: rawS,
    transport: transportS,
    client: clientS,
    clientNoIo: s("clientNoIo"),
    clientOverRaw: ratio,
    transportOverRaw: transportS.median / rawS.median,
    overheadUs: clientS.median - rawS.median,
    target: TARGET_OVERHEAD,
    met: ratio < 1 + TARGET_OVERHEAD,
  };
}

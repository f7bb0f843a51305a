/**
 * The byte carriers around a TpmEngine: the in-process transport, the swtpm protocol server (data and
 * control channels, TCP and unix) and the mssim protocol server, driven by our own transports, by raw
 * sockets where the protocol's corners matter, and by tpm2-tools. The engine is a small fake that only
 * knows GetRandom (and the GetCapability tpm2_getrandom asks first): these are protocol tests; the real
 * engine's conformance is tested elsewhere.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { execFile } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import process from "node:process";
import { promisify } from "node:util";
import { TransportError } from "../../src/tpm/errors.ts";
import { Tpm } from "../../src/tpm/client.ts";
import { GetRandom } from "../../src/tpm/commands.ts";
import { SwtpmTransport } from "../../src/tpm/transport/swtpm.ts";
import { PTM_CAP_BIT, PTM_CMD, SwtpmControlError } from "../../src/tpm/transport/swtpm_control.ts";
import { MSSIM_SIGNAL, MssimTransport } from "../../src/tpm/transport/mssim.ts";
import type { SocketAddress } from "../../src/tpm/transport/socket_link.ts";
import type { TpmEngine } from "../../simulator/engine.ts";
import { InProcessTransport } from "../../simulator/in_process.ts";
import { startSwtpmServer, SWTPM_SERVER_CAPS, type SwtpmServer } from "../../simulator/swtpm_server.ts";
import { SimulatorListenError } from "../../simulator/socket_server.ts";
import { startMssimServer } from "../../simulator/mssim_server.ts";
import { parseListenUri, startListening } from "../../simulator/listen_uri.ts";
import { requireTool } from "../helpers/swtpm.ts";
import { toHex } from "../../src/util/encoding.ts";

const run = promisify(execFile);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ""), "hex");

const CC_GET_RANDOM = 0x17b;
const CC_GET_CAPABILITY = 0x17a;
const GET_RANDOM_8 = hex("80010000000c0000017b0008");

/** A stand-in TPM: GetRandom answers bytes from a counter; everything else TPM_RC_COMMAND_CODE. */
class FakeEngine implements TpmEngine {
  powered: boolean;
  /** Lifecycle calls in order: "init", "init(deleteVolatile)", "powerOff", "save", "close". */
  readonly calls: string[] = [];
  /** Every command executed: its code and the locality it came with. */
  readonly seen: Array<{ code: number; locality: number }> = [];
  maxInFlight = 0;
  private inFlight = 0;
  private counter = 0;

  constructor(options: { powered?: boolean; delayMs?: number } = {}) {
    this.powered = options.powered ?? true;
    this.delayMs = options.delayMs ?? 0;
  }

  delayMs: number;

  async execute(command: Uint8Array, locality = 0): Promise<Uint8Array> {
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      await sleep(this.delayMs);
      return this.answer(Buffer.from(command), locality);
    } finally {
      this.inFlight--;
    }
  }

  private answer(cmd: Buffer, locality: number): Uint8Array {
    if (cmd.length < 10 || cmd.readUInt32BE(2) !== cmd.length) return rc(0x142);
    const code = cmd.readUInt32BE(6);
    this.seen.push({ code, locality });
    if (!this.powered) return rc(0x101);
    if (code === CC_GET_RANDOM && cmd.length === 12) {
      const n = Math.min(cmd.readUInt16BE(10), 32);
      const rsp = Buffer.alloc(12 + n);
      rsp.writeUInt16BE(0x8001, 0);
      rsp.writeUInt32BE(rsp.length, 2);
      rsp.writeUInt16BE(n, 10);
      for (let i = 0; i < n; i++) rsp[12 + i] = this.counter++ & 0xff;
      return rsp;
    }
    if (code === CC_GET_CAPABILITY && cmd.length === 22 && cmd.readUInt32BE(10) === 6) {
      // TPM_CAP_TPM_PROPERTIES: one property, TPM_PT_MAX_DIGEST = 32 (what tpm2_getrandom looks for).
      return hex("8001 0000001b 00000000 00 00000006 00000001 00000120 00000020");
    }
    return rc(0x143);
  }

  init(options: { deleteVolatile?: boolean } = {}): Promise<void> {
    this.calls.push(options.deleteVolatile ? "init(deleteVolatile)" : "init");
    this.powered = true;
    return Promise.resolve();
  }

  powerOff(): Promise<void> {
    this.calls.push("powerOff");
    this.powered = false;
    return Promise.resolve();
  }

  save(): Promise<void> {
    this.calls.push("save");
    return Promise.resolve();
  }

  close(): Promise<void> {
    this.calls.push("close");
    return Promise.resolve();
  }
}

function rc(code: number): Uint8Array {
  const b = Buffer.alloc(10);
  b.writeUInt16BE(0x8001, 0);
  b.writeUInt32BE(10, 2);
  b.writeUInt32BE(code, 6);
  return b;
}

function rcOf(rsp: Uint8Array): number {
  return Buffer.from(rsp).readUInt32BE(6);
}

/** GetRandom(8) answered with the fake's counter bytes starting at `first`. */
function assertRandom8(rsp: Uint8Array, first: number): void {
  const expected = Buffer.alloc(20);
  expected.writeUInt16BE(0x8001, 0);
  expected.writeUInt32BE(20, 2);
  expected.writeUInt16BE(8, 10);
  for (let i = 0; i < 8; i++) expected[12 + i] = (first + i) & 0xff;
  assert.equal(toHex(rsp), expected.toString("hex"));
}

/**
 * A raw client: write `steps` (buffers, with numbers as pauses in ms), optionally half-close, then
 * collect what comes back until `expect` bytes arrived, the server closed, or `timeoutMs` passed.
 */
async function rawExchange(
  address: SocketAddress,
  steps: Array<Uint8Array | string | number>,
  options: { expect?: number; end?: boolean; timeoutMs?: number } = {},
): Promise<{ data: Buffer; closed: boolean; ms: number }> {
  const started = performance.now();
  const socket = "path" in address ? net.createConnection(address.path) : net.createConnection(address);
  const chunks: Buffer[] = [];
  let closed = false;
  const done = new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, options.timeoutMs ?? 2000);
    const check = () => {
      if (options.expect !== undefined && Buffer.concat(chunks).length >= options.expect) {
        clearTimeout(timer);
        resolve();
      }
    };
    socket.on("data", (d: Buffer) => {
      chunks.push(d);
      check();
    });
    socket.on("error", () => {});
    socket.on("close", () => {
      closed = true;
      clearTimeout(timer);
      resolve();
    });
  });
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("error", reject);
  });
  for (const s of steps) {
    if (typeof s === "number") await sleep(s);
    else socket.write(typeof s === "string" ? hex(s) : s);
  }
  if (options.end) socket.end();
  await done;
  // Give a close that follows the last byte a moment to show (longer than 5 ms on a busy machine).
  for (let i = 0; !closed && options.expect !== undefined && i < 20; i++) await sleep(10);
  socket.destroy();
  return { data: Buffer.concat(chunks), closed, ms: performance.now() - started };
}

function tcp(server: { port?: number }, offset = 0): SocketAddress {
  return { host: "127.0.0.1", port: server.port! + offset };
}

let tmp: string;
before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "sim-servers-"));
});
after(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------

describe("InProcessTransport", () => {
  test("carries commands to the engine and copies the bytes both ways", async () => {
    const engine = new FakeEngine();
    const t = new InProcessTransport(engine, { locality: 2 });
    assert.equal(t.uri, "sim:in-process");
    assert.equal(t.resourceManaged, false);
    const cmd = Buffer.from(GET_RANDOM_8);
    const rsp = await t.send(cmd);
    assertRandom8(rsp, 0);
    assert.deepEqual(engine.seen, [{ code: CC_GET_RANDOM, locality: 2 }]);
    const { randomBytes } = await new Tpm(t).execute(GetRandom, { bytesRequested: 4 });
    assert.deepEqual([...randomBytes], [8, 9, 10, 11]);
    assert.equal(new InProcessTransport(engine, { uri: "sim:test" }).uri, "sim:test");
    await t.close();
    await t.close();
    // As the socket and device transports reconnect: the agent releases an idle TPM and sends again.
    assert.equal((await t.send(cmd)).length, rsp.length, "it sends again after close()");
    assert.deepEqual(engine.calls, [], "closing the transport leaves the engine alone");
  });
});

describe("swtpm server", () => {
  let engine: FakeEngine;
  let server: SwtpmServer;
  const warnings: string[] = [];
  before(async () => {
    engine = new FakeEngine();
    server = await startSwtpmServer(engine, {
      requestTimeoutMs: 150,
      controlTimeoutMs: 100,
      warn: (m) => warnings.push(m),
    });
  });
  after(() => server.close());

  test("reports its address: data port P, control port P + 1", () => {
    assert.equal(server.uri, `swtpm:host=127.0.0.1,port=${server.port}`);
    assert.equal(server.ctrlPort, server.port! + 1);
  });

  for (const persistent of [true, false]) {
    test(`SwtpmTransport over TCP, ${persistent ? "persistent connection" : "a connection per command"}`, async () => {
      const t = new SwtpmTransport(tcp(server), { persistent });
      const tpm = new Tpm(t);
      try {
        for (let i = 0; i < 3; i++) {
          const { randomBytes } = await tpm.execute(GetRandom, { bytesRequested: 8 });
          assert.equal(randomBytes.length, 8);
        }
      } finally {
        await t.close();
      }
    });
  }

  test("control channel: the capabilities served, as swtpm's bit mask", async () => {
    const t = new SwtpmTransport(tcp(server));
    const caps = await t.control.getCapability();
    assert.equal(caps, SWTPM_SERVER_CAPS);
    for (const bit of ["INIT", "SHUTDOWN", "SET_LOCALITY", "STOP", "SEND_COMMAND_HEADER"] as const) {
      assert.ok(caps & (1 << PTM_CAP_BIT[bit]), bit);
    }
    assert.equal(caps & (1 << PTM_CAP_BIT.HASHING), 0);
    assert.equal(await t.control.getConfig(), 0);
    assert.equal(await t.control.getTpmEstablished(), false);
    assert.deepEqual(await t.control.setBufferSize(), { bufferSize: 4096, minSize: 2808, maxSize: 4096 });
    await t.close();
  });

  test("control channel: the bytes of swtpm 0.7.1 (testdata/tpm-vectors/raw/ctrl.txt)", async () => {
    const vectors: Array<[string, string]> = [
      ["0000000500", "00000000"], // SET_LOCALITY(0)
      ["0000001100000000", "000000000000100000000af800001000"], // SET_BUFFERSIZE query
      ["00000004", "0000000000000000"], // GET_TPMESTABLISHED
      ["0000000505", "0000003d"], // SET_LOCALITY(5): TPM_BAD_LOCALITY
    ];
    for (const [req, rsp] of vectors) {
      const r = await rawExchange(tcp(server, 1), [req], { expect: rsp.length / 2 });
      assert.equal(r.data.toString("hex"), rsp, req);
    }
    // Several requests on one connection, as swtpm allows.
    const r = await rawExchange(tcp(server, 1), ["00000001", "0000000f"], { expect: 16 });
    assert.equal(r.data.toString("hex"), `00000000${SWTPM_SERVER_CAPS.toString(16).padStart(8, "0")}0000000000000000`);
  });

  test("SET_LOCALITY sets the locality of later commands; 5 is TPM_BAD_LOCALITY", async () => {
    const t = new SwtpmTransport(tcp(server), { persistent: false });
    try {
      await t.setLocality(3);
      await t.send(GET_RANDOM_8);
      t.locality = 1; // sent through CMD_SET_LOCALITY before the next command
      await t.send(GET_RANDOM_8);
      await assert.rejects(t.setLocality(5), (e: unknown) => e instanceof SwtpmControlError && e.result === 0x3d);
      await t.setLocality(0);
      await t.send(GET_RANDOM_8);
      assert.deepEqual(engine.seen.slice(-3).map((s) => s.locality), [3, 1, 0]);
    } finally {
      await t.close();
    }
  });

  test("STOP: commands answer TPM_RC_FAILURE until INIT; INIT(1) deletes volatile state", async () => {
    const t = new SwtpmTransport(tcp(server));
    try {
      engine.calls.length = 0;
      await t.control.stop();
      assert.equal(rcOf(await t.send(GET_RANDOM_8)), 0x101);
      await assert.rejects(t.control.getTpmEstablished(), (e: unknown) => (e as SwtpmControlError).result === 0x0a);
      // The buffer size may change only while the TPM is stopped.
      assert.equal((await t.control.setBufferSize(3000)).bufferSize, 3000);
      assert.equal((await t.control.setBufferSize(4096)).bufferSize, 4096);
      await t.control.init(1);
      assert.equal(rcOf(await t.send(GET_RANDOM_8)), 0);
      await assert.rejects(t.control.setBufferSize(3000), (e: unknown) => (e as SwtpmControlError).result === 0x0a);
      await t.control.init(0);
      await t.control.storeVolatile();
      assert.deepEqual(engine.calls, ["powerOff", "init(deleteVolatile)", "init", "save"]);
    } finally {
      await t.close();
    }
  });

  test("unsupported and unknown control commands: TPM_BAD_ORDINAL, then the connection closes", async () => {
    const t = new SwtpmTransport(tcp(server));
    await assert.rejects(
      t.control.request(PTM_CMD.HASH_START),
      (e: unknown) => (e as SwtpmControlError).result === 0x0a,
    );
    await assert.rejects(t.control.request(0x99), (e: unknown) => (e as SwtpmControlError).result === 0x0a);
    const r = await rawExchange(tcp(server, 1), ["00000099"], { expect: 4 });
    assert.equal(r.data.toString("hex"), "0000000a");
    assert.ok(r.closed);
    await t.close();
  });

  test("a control request that is not complete in time is dropped without a reply (swtpm's 500 ms rule)", async () => {
    const r = await rawExchange(tcp(server, 1), ["00000002"], { timeoutMs: 1000 }); // INIT without its flags
    assert.equal(r.data.length, 0);
    assert.ok(r.closed);
    assert.ok(r.ms >= 90, `closed after ${r.ms} ms`);
  });

  test("the mssim header on the data port: framed reply, and its locality becomes current", async () => {
    const before = engine.seen.length;
    // testdata/tpm-vectors/raw/swtpm_mssim_framing_GetRandom8.txt, at locality 2.
    const r = await rawExchange(tcp(server), ["00000008 02 0000000c 80010000000c0000017b0008"], { expect: 28 });
    assert.equal(r.data.readUInt32BE(0), 20);
    assert.equal(r.data.subarray(4, 14).toString("hex"), "80010000001400000000");
    assert.equal(r.data.readUInt32BE(24), 0);
    const t = new MssimTransport(tcp(server), { platform: false, locality: 0 });
    assert.equal(rcOf(await t.send(GET_RANDOM_8)), 0);
    await t.close();
    const raw = new SwtpmTransport(tcp(server));
    await raw.send(GET_RANDOM_8);
    await raw.close();
    assert.deepEqual(engine.seen.slice(before).map((s) => s.locality), [2, 0, 0]);
  });

  test("a command split over two writes 50 ms apart still executes (unlike swtpm)", async () => {
    const r = await rawExchange(tcp(server), [GET_RANDOM_8.subarray(0, 10), 50, GET_RANDOM_8.subarray(10)], {
      expect: 20,
    });
    assert.equal(r.data.length, 20);
    assert.equal(rcOf(r.data), 0);
    assert.ok(!r.closed);
  });

  test("two commands in one write get two responses (unlike swtpm)", async () => {
    const r = await rawExchange(tcp(server), [Buffer.concat([GET_RANDOM_8, GET_RANDOM_8])], { expect: 40 });
    assert.equal(r.data.length, 40);
    assert.equal(rcOf(r.data.subarray(0, 20)), 0);
    assert.equal(rcOf(r.data.subarray(20)), 0);
  });

  test("garbage and short commands get a well-formed error response, then the connection closes", async () => {
    const cases: Array<{ steps: string[]; end?: boolean; rc: string; what: string }> = [
      { steps: [toHex(new TextEncoder().encode("hello, TPM!\n"))], rc: "0000001e", what: "not a TPM tag" },
      { steps: ["80010000000c0000017b00"], end: true, rc: "00000142", what: "client ended one byte short" },
      { steps: ["80010000000c0000017b00"], rc: "00000142", what: "one byte short, client waits" },
      { steps: ["800100"], end: true, rc: "00000142", what: "half a header" },
      { steps: ["800100000008000001 7b"], rc: "00000142", what: "commandSize below the header" },
      { steps: ["800100010000000001 7b"], rc: "00000142", what: "commandSize above 4096" },
    ];
    for (const c of cases) {
      const r = await rawExchange(tcp(server), c.steps, { end: c.end, expect: 10, timeoutMs: 1000 });
      assert.equal(r.data.toString("hex"), `80010000000a${c.rc}`, c.what);
      assert.ok(r.closed, `${c.what}: closed`);
    }
    assert.ok(warnings.some((w) => w.includes("neither a TPM command")), warnings.join("\n"));
  });

  test("a client that disconnects mid-command does not break the server", async () => {
    const s = net.createConnection(tcp(server) as { host: string; port: number });
    s.on("error", () => {});
    await new Promise((resolve) => s.once("connect", resolve));
    s.write(GET_RANDOM_8.subarray(0, 7));
    await sleep(10);
    s.destroy();
    const r = await rawExchange(tcp(server), [GET_RANDOM_8], { expect: 20 });
    assert.equal(rcOf(r.data), 0);
  });

  test("clients are queued, not refused: a held connection does not block others; one command at a time", async () => {
    const slow = new FakeEngine({ delayMs: 5 });
    const s = await startSwtpmServer(slow, { warn: () => {} });
    const holder = new SwtpmTransport(tcp(s)); // persistent: holds its connection throughout
    const others = Array.from({ length: 3 }, () => new SwtpmTransport(tcp(s), { persistent: false }));
    try {
      assert.equal(rcOf(await holder.send(GET_RANDOM_8)), 0);
      const all = await Promise.all([holder, ...others].map((t) => t.send(GET_RANDOM_8)));
      assert.deepEqual(all.map(rcOf), [0, 0, 0, 0]);
      assert.equal(slow.maxInFlight, 1);
      // Every response carries distinct counter bytes: no two commands shared a turn.
      const firsts = new Set(all.map((r) => r[12]));
      assert.equal(firsts.size, 4);
      assert.equal(rcOf(await holder.send(GET_RANDOM_8)), 0);
    } finally {
      await holder.close();
      for (const t of others) await t.close();
      await s.close();
    }
  });

  test("an engine that breaks its promise gets the client TPM_RC_FAILURE, and the server goes on", async () => {
    const e = new FakeEngine();
    const broken = Object.assign(Object.create(e) as FakeEngine, {
      execute: (cmd: Uint8Array) =>
        cmd[11] === 1 ? Promise.reject(new Error("boom")) : Promise.resolve(Uint8Array.of(0x80, 1, 0, 0)),
    });
    const seen: string[] = [];
    const s = await startSwtpmServer(broken, { warn: (m) => seen.push(m) });
    const t = new SwtpmTransport(tcp(s));
    try {
      assert.equal(rcOf(await t.send(hex("80010000000c0000017b0001"))), 0x101);
      assert.equal(rcOf(await t.send(GET_RANDOM_8)), 0x101);
      assert.match(seen.join("\n"), /boom[^]*malformed 4-byte response/);
    } finally {
      await t.close();
      await s.close();
    }
  });

  test("an address in use is a SimulatorListenError naming the channel", async () => {
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, "127.0.0.1", resolve));
    const taken = (blocker.address() as net.AddressInfo).port;
    try {
      await assert.rejects(
        startSwtpmServer(new FakeEngine(), { port: taken }),
        (e: unknown) =>
          e instanceof SimulatorListenError && e.code === "ERR_SIM_LISTEN" && /data channel/.test(e.message),
      );
      // The platform port is the one taken (unless taken - 1 happens to be busy too).
      await assert.rejects(
        startMssimServer(new FakeEngine(), { port: taken - 1 }),
        (e: unknown) => e instanceof SimulatorListenError && /(platform|TPM) port .*in use/.test(e.message),
      );
    } finally {
      await new Promise((resolve) => blocker.close(resolve));
    }
  });

  test("SHUTDOWN saves, answers, and stops the server", async () => {
    const e = new FakeEngine();
    const s = await startSwtpmServer(e, { warn: () => {} });
    const t = new SwtpmTransport(tcp(s), { timeoutMs: 2000 });
    await t.control.shutdown();
    await s.closed;
    assert.deepEqual(e.calls, ["save"]);
    await assert.rejects(t.send(GET_RANDOM_8), TransportError);
    await t.close();
    await s.close();
  });
});

describe("swtpm server on unix sockets", () => {
  test("data at path, control at path.ctrl; persistent and per-command; files removed on close", async () => {
    const engine = new FakeEngine();
    const p = path.join(tmp, "swtpm.sock");
    const server = await startSwtpmServer(engine, { path: p, warn: () => {} });
    try {
      assert.equal(server.uri, `swtpm:path=${p}`);
      assert.equal(server.ctrlPath, `${p}.ctrl`);
      for (const persistent of [true, false]) {
        const t = new SwtpmTransport({ path: p }, { persistent });
        await t.setLocality(4);
        assert.equal(rcOf(await t.send(GET_RANDOM_8)), 0);
        assert.equal(rcOf(await t.send(GET_RANDOM_8)), 0);
        await t.close();
      }
      assert.deepEqual(engine.seen.map((s) => s.locality), [4, 4, 4, 4]);
      const split = await rawExchange({ path: p }, [GET_RANDOM_8.subarray(0, 3), 20, GET_RANDOM_8.subarray(3)], {
        expect: 20,
      });
      assert.equal(rcOf(split.data), 0);
    } finally {
      await server.close();
    }
    assert.ok(!fs.existsSync(p) && !fs.existsSync(`${p}.ctrl`));
  });

  test("a stale socket file left by a dead server is replaced; a live one is not", async () => {
    const p = path.join(tmp, "stale.sock");
    const first = await startSwtpmServer(new FakeEngine(), { path: p, warn: () => {} });
    await assert.rejects(startSwtpmServer(new FakeEngine(), { path: p }), /address is in use/);
    await first.close();
    // A socket file nobody listens on: move it aside while its server closes (which removes it).
    const dead = net.createServer();
    await new Promise<void>((resolve) => dead.listen(p, resolve));
    fs.renameSync(p, `${p}.aside`);
    await new Promise((resolve) => dead.close(resolve));
    fs.renameSync(`${p}.aside`, p);
    assert.ok(fs.statSync(p).isSocket());
    const second = await startSwtpmServer(new FakeEngine(), { path: p, warn: () => {} });
    assert.equal(rcOf((await rawExchange({ path: p }, [GET_RANDOM_8], { expect: 20 })).data), 0);
    await second.close();
    // Never a file that is not a socket.
    fs.writeFileSync(p, "data");
    await assert.rejects(startSwtpmServer(new FakeEngine(), { path: p }), /Cannot listen for the swtpm data channel/);
    assert.equal(fs.readFileSync(p, "utf8"), "data");
  });
});

describe("mssim server", () => {
  test("MssimTransport over TCP: POWER_ON/NV_ON first, POWER_ON idempotent, locality in the header", async () => {
    const engine = new FakeEngine({ powered: false });
    const server = await startMssimServer(engine, { warn: () => {} });
    const a = new MssimTransport(tcp(server), { locality: 3 });
    const b = new MssimTransport(tcp(server));
    try {
      assert.equal(server.uri, `mssim:host=127.0.0.1,port=${server.port}`);
      assert.equal(server.platformPort, server.port! + 1);
      assertRandom8(await a.send(GET_RANDOM_8), 0);
      // A second client powers on again: no second _TPM_Init.
      assertRandom8(await b.send(GET_RANDOM_8), 8);
      assert.deepEqual(engine.calls, ["init"]);
      assert.deepEqual(engine.seen.map((s) => s.locality), [3, 0]);

      await a.signal(MSSIM_SIGNAL.POWER_OFF);
      assert.equal(rcOf(await a.send(GET_RANDOM_8)), 0x101);
      await a.signal(MSSIM_SIGNAL.POWER_OFF); // idempotent too
      await a.signal(MSSIM_SIGNAL.RESET); // while off: nothing
      await a.signal(MSSIM_SIGNAL.POWER_ON);
      await a.signal(MSSIM_SIGNAL.RESET); // while on: _TPM_Init
      for (
        const s of ["PHYS_PRES_ON", "PHYS_PRES_OFF", "CANCEL_ON", "CANCEL_OFF", "NV_OFF", "NV_ON", "RESTART"] as const
      ) {
        await a.signal(MSSIM_SIGNAL[s]);
      }
      assert.deepEqual(engine.calls, ["init", "powerOff", "init", "init"]);
      assert.equal(rcOf(await a.send(GET_RANDOM_8)), 0);
      await assert.rejects(a.signal(99), /refused \(answer 1\)/);
    } finally {
      await a.close();
      await b.close();
      await server.close();
    }
  });

  test("raw TPM port: handshake, split header and command, SESSION_END, unknown commands close", async () => {
    const engine = new FakeEngine();
    const server = await startMssimServer(engine, { warn: () => {} });
    try {
      const hs = await rawExchange(tcp(server), ["0000000f 00000001"], { expect: 12 });
      assert.equal(hs.data.toString("hex"), "00000001" + "0000000d" + "00000000");
      // tcti-mssim writes the 9-byte header and the command separately.
      const split = await rawExchange(tcp(server), ["00000008 00 0000000c", 30, GET_RANDOM_8, "00000014"], {
        timeoutMs: 1000,
      });
      assert.equal(split.data.length, 28);
      assert.equal(split.data.readUInt32BE(0), 20);
      assert.equal(split.data.readUInt32BE(24), 0);
      assert.ok(split.closed, "SESSION_END closes");
      const unknown = await rawExchange(tcp(server), ["00000005"], { timeoutMs: 1000 });
      assert.equal(unknown.data.length, 0);
      assert.ok(unknown.closed);
      const tooBig = await rawExchange(tcp(server), ["00000008 00 00002000"], { expect: 18, timeoutMs: 1000 });
      assert.equal(tooBig.data.toString("hex"), "0000000a80010000000a0000014200000000");
      assert.ok(tooBig.closed);
      // A frame holding no proper command goes to the engine, which answers it.
      const short = await rawExchange(tcp(server), ["00000008 00 00000002 8001"], { expect: 18 });
      assert.equal(short.data.toString("hex"), "0000000a80010000000a0000014200000000");
      const plat = await rawExchange(tcp(server, 1), ["00000001 0000000b 00000063"], { timeoutMs: 1000 });
      assert.equal(plat.data.toString("hex"), "00000000" + "00000000" + "00000001");
      assert.ok(plat.closed);
    } finally {
      await server.close();
    }
  });

  test("unix sockets: platform at path.ctrl; STOP saves and stops the server", async () => {
    const engine = new FakeEngine({ powered: false });
    const p = path.join(tmp, "mssim.sock");
    const server = await startMssimServer(engine, { path: p, warn: () => {} });
    assert.equal(server.uri, `mssim:path=${p}`);
    assert.equal(server.platformPath, `${p}.ctrl`);
    const t = new MssimTransport({ path: p });
    assertRandom8(await t.send(GET_RANDOM_8), 0);
    await t.close();
    await rawExchange({ path: p }, ["00000015"], { timeoutMs: 1000 });
    await server.closed;
    assert.deepEqual(engine.calls, ["init", "save"]);
    assert.ok(!fs.existsSync(p));
  });
});

describe("--listen values", () => {
  test("parse", () => {
    assert.deepEqual(parseListenUri("swtpm:host=127.0.0.1,port=2321"), {
      kind: "swtpm",
      host: "127.0.0.1",
      port: 2321,
    });
    assert.deepEqual(parseListenUri("mssim:path=/run/t.sock"), { kind: "mssim", path: "/run/t.sock" });
    assert.deepEqual(parseListenUri("swtpm:port=0,host=::1"), { kind: "swtpm", host: "::1", port: 0 });
    assert.deepEqual(parseListenUri("mssim"), { kind: "mssim", host: "localhost", port: 2321 });
    assert.throws(() => parseListenUri("device:/dev/tpmrm0"), /not a socket/);
    assert.throws(() => parseListenUri("swtpm:port=70000"), /not a usable port/);
    assert.throws(() => parseListenUri("sim:in-process"), /unknown TPM interface/);
  });

  test("start the server a value names", async () => {
    const engine = new FakeEngine();
    const s = await startListening(engine, "swtpm:host=127.0.0.1,port=0", { warn: () => {} });
    const m = await startListening(engine, `mssim:path=${path.join(tmp, "listen.sock")}`, { warn: () => {} });
    try {
      assert.match(s.uri, /^swtpm:host=127\.0\.0\.1,port=\d+$/);
      const t1 = new SwtpmTransport(tcp(s));
      const t2 = new MssimTransport({ path: m.path! });
      assert.equal(rcOf(await t1.send(GET_RANDOM_8)), 0);
      assert.equal(rcOf(await t2.send(GET_RANDOM_8)), 0);
      await t1.close();
      await t2.close();
    } finally {
      await s.close();
      await m.close();
    }
  });
});

describe("tpm2-tools against the servers", { skip: requireTool("tpm2_getrandom") }, () => {
  for (const kind of ["swtpm", "mssim"] as const) {
    for (const unix of [false, true]) {
      test(`tpm2_getrandom -T ${kind}:${unix ? "path=S" : "host=127.0.0.1,port=P"} 8 --hex`, async () => {
        // mssim: tcti-mssim powers on itself (POWER_ON, NV_ON).
        const engine = new FakeEngine({ powered: kind === "swtpm" });
        const where = unix ? { path: path.join(tmp, `tools-${kind}.sock`) } : {};
        const server = kind === "swtpm"
          ? await startSwtpmServer(engine, { ...where, warn: () => {} })
          : await startMssimServer(engine, { ...where, warn: () => {} });
        try {
          if (kind === "swtpm") {
            // tcti-swtpm's handshake is CMD_SET_LOCALITY(0): it must bring this back to 0.
            const t = new SwtpmTransport(unix ? { path: server.path! } : tcp(server));
            await t.setLocality(3);
            await t.close();
          }
          const { stdout } = await run("tpm2_getrandom", ["-T", server.uri, "8", "--hex"], {
            timeout: 20_000,
            env: { ...process.env, TSS2_LOG: "all+NONE" },
          });
          assert.equal(stdout.trim(), "0001020304050607");
          assert.deepEqual(engine.seen, [
            { code: CC_GET_CAPABILITY, locality: 0 },
            { code: CC_GET_RANDOM, locality: 0 },
          ]);
          assert.deepEqual(engine.calls, kind === "swtpm" ? [] : ["init"]);
        } finally {
          await server.close();
        }
      });
    }
  }
});

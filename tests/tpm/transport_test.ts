/**
 * Transports against real swtpm processes (TCP and unix, raw and mssim framing), misbehaving local
 * servers (silent, garbage, dropping), the control channel, and TPM URI parsing.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import process from "node:process";
import { TpmUriError, TransportError, TransportTimeoutError } from "../../src/tpm/errors.ts";
import { MAX_RESPONSE_BYTES } from "../../src/tpm/transport/transport.ts";
import { SwtpmTransport } from "../../src/tpm/transport/swtpm.ts";
import { PTM_CAP_BIT, SwtpmControl, SwtpmControlError } from "../../src/tpm/transport/swtpm_control.ts";
import { MssimTransport } from "../../src/tpm/transport/mssim.ts";
import { DeviceTransport } from "../../src/tpm/transport/device.ts";
import { formatTpmUri, openTransport, parseTpmUri, type TpmUri, tpmUriFromEnv } from "../../src/tpm/transport/uri.ts";
import { findTool, requireTool, startSwtpm, type SwtpmInstance, swtpmSkipReason } from "../helpers/swtpm.ts";
import { toHex } from "../../src/util/encoding.ts";

const GET_RANDOM_8 = Buffer.from("80010000000c0000017b0008", "hex");
const STARTUP_CLEAR = Buffer.from("80010000000c000001440000", "hex");

function header(rsp: Uint8Array): { tag: number; size: number; rc: number } {
  const b = Buffer.from(rsp);
  return { tag: b.readUInt16BE(0), size: b.readUInt32BE(2), rc: b.readUInt32BE(6) };
}

/** GetRandom(8) answered: tag 8001, size 20, rc 0, TPM2B of 8 bytes. */
function assertGetRandom8(rsp: Uint8Array): void {
  assert.deepEqual(header(rsp), { tag: 0x8001, size: 20, rc: 0 });
  assert.equal(rsp.length, 20);
  assert.equal(Buffer.from(rsp).readUInt16BE(10), 8);
}

function tcpAddress(s: SwtpmInstance): { host: string; port: number } {
  return { host: "127.0.0.1", port: s.port! };
}

/** A loopback server whose behaviour per connection is scripted; records what it received. */
async function scriptedServer(
  onData: (socket: net.Socket, data: Buffer, state: { received: Buffer[] }) => void,
): Promise<{ port: number; connections: number; received: Buffer[]; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const state = { received: [] as Buffer[] };
  const result = {
    port: 0,
    connections: 0,
    received: state.received,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
  const server = net.createServer((socket) => {
    result.connections++;
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => {});
    socket.on("data", (d: Buffer) => {
      state.received.push(d);
      onData(socket, d, state);
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  result.port = (server.address() as net.AddressInfo).port;
  return result;
}

// ---------------------------------------------------------------------------------------------

describe("TPM URIs", () => {
  const ok: Array<[string, TpmUri]> = [
    ["device:/dev/tpmrm0", { kind: "device", path: "/dev/tpmrm0" }],
    ["device", { kind: "device", path: "/dev/tpm0" }],
    ["device:", { kind: "device", path: "/dev/tpm0" }],
    ["swtpm", { kind: "swtpm", host: "localhost", port: 2321 }],
    ["swtpm:", { kind: "swtpm", host: "localhost", port: 2321 }],
    ["swtpm:host=127.0.0.1,port=2321", { kind: "swtpm", host: "127.0.0.1", port: 2321 }],
    ["swtpm:port=4000", { kind: "swtpm", host: "localhost", port: 4000 }],
    ["swtpm:host=tpm.example", { kind: "swtpm", host: "tpm.example", port: 2321 }],
    ["swtpm:port=5000,host=::1", { kind: "swtpm", host: "::1", port: 5000 }],
    ["swtpm:path=/run/t.sock", { kind: "swtpm", path: "/run/t.sock" }],
    ["mssim", { kind: "mssim", host: "localhost", port: 2321 }],
    ["mssim:host=10.0.0.2,port=2321", { kind: "mssim", host: "10.0.0.2", port: 2321 }],
    ["mssim:path=/tmp/sim.sock", { kind: "mssim", path: "/tmp/sim.sock" }],
    ["  swtpm:port=7  ", { kind: "swtpm", host: "localhost", port: 7 }],
  ];
  for (const [s, want] of ok) {
    test(`parses ${JSON.stringify(s)}`, () => assert.deepEqual(parseTpmUri(s), want));
  }

  test("formats canonically and round-trips", () => {
    assert.equal(formatTpmUri(parseTpmUri("swtpm")), "swtpm:host=localhost,port=2321");
    assert.equal(formatTpmUri(parseTpmUri("swtpm:port=9,host=h")), "swtpm:host=h,port=9");
    assert.equal(formatTpmUri(parseTpmUri("device")), "device:/dev/tpm0");
    for (const [s] of ok) assert.deepEqual(parseTpmUri(formatTpmUri(parseTpmUri(s))), parseTpmUri(s));
  });

  const bad: Array<[string, RegExp]> = [
    ["tabrmd", /tpm2-abrmd.*not supported.*device:\/dev\/tpmrm0/],
    ["tabrmd:bus_type=session", /tpm2-abrmd.*not supported.*device:\/dev\/tpmrm0/],
    ["swtpm:hots=127.0.0.1", /unknown key "hots"/],
    ["swtpm:port=70000", /port=70000/],
    ["swtpm:port=0", /port=0/],
    ["swtpm:port=65535", /port=65535.*port \+ 1/],
    ["mssim:port=23a", /port=23a/],
    ["swtpm:port=-1", /port=-1/],
    ["swtpm:host=a,host=b", /"host" is given twice/],
    ["swtpm:host=", /"host=" has an empty value/],
    ["swtpm:localhost", /"localhost" is not key=value/],
    ["swtpm:path=/s,port=2", /path= cannot be combined/],
    ["mssim:tcp://127.0.0.1:2321", /not key=value/],
    ["libtpms", /unknown TPM interface "libtpms"/],
    ["/dev/tpmrm0", /did you mean device:\/dev\/tpmrm0/],
    ["device:dev/tpm0", /must be absolute/],
    ["", /empty/],
  ];
  for (const [s, re] of bad) {
    test(`rejects ${JSON.stringify(s)}`, () => {
      assert.throws(() => parseTpmUri(s), (e: unknown) => {
        assert.ok(e instanceof TpmUriError, `expected TpmUriError, got ${e}`);
        assert.equal(e.code, "ERR_TPM_URI");
        assert.match(e.message, re);
        return true;
      });
    });
  }

  test("tpmUriFromEnv prefers TCTI, then TPM2TOOLS_TCTI", () => {
    assert.equal(tpmUriFromEnv({ TCTI: "swtpm:port=1", TPM2TOOLS_TCTI: "device:/dev/tpmrm0" }), "swtpm:port=1");
    assert.equal(tpmUriFromEnv({ TPM2TOOLS_TCTI: "device:/dev/tpmrm0" }), "device:/dev/tpmrm0");
    assert.equal(tpmUriFromEnv({ TCTI: "", TPM2TOOLS_TCTI: "mssim" }), "mssim");
    assert.equal(tpmUriFromEnv({}), undefined);
  });

  test("openTransport picks the transport and names it canonically", async () => {
    const rm = openTransport("device:/dev/tpmrm0");
    assert.ok(rm instanceof DeviceTransport);
    assert.equal(rm.uri, "device:/dev/tpmrm0");
    assert.equal(rm.resourceManaged, true);
    assert.equal(openTransport("device").resourceManaged, false);
    const sw = openTransport("swtpm:port=2400");
    assert.ok(sw instanceof SwtpmTransport);
    assert.equal(sw.uri, "swtpm:host=localhost,port=2400");
    assert.deepEqual((sw as SwtpmTransport).control.address, { host: "localhost", port: 2401 });
    const swu = openTransport("swtpm:path=/tmp/x.sock") as SwtpmTransport;
    assert.deepEqual(swu.control.address, { path: "/tmp/x.sock.ctrl" });
    const ms = openTransport("mssim:path=/tmp/m.sock") as MssimTransport;
    assert.ok(ms instanceof MssimTransport);
    assert.deepEqual(ms.platformAddress, { path: "/tmp/m.sock.ctrl" });
    assert.deepEqual((openTransport("mssim:port=2321") as MssimTransport).platformAddress, {
      host: "localhost",
      port: 2322,
    });
    assert.equal(ms.resourceManaged, false);
    for (const t of [rm, sw, swu, ms]) await t.close();
    assert.throws(() => openTransport("tabrmd"), TpmUriError);
  });
});

// ---------------------------------------------------------------------------------------------

const swtpmSkip = swtpmSkipReason();

describe("swtpm data channel", { skip: swtpmSkip ?? false }, () => {
  let tcp: SwtpmInstance;
  let unix: SwtpmInstance;
  before(async () => {
    [tcp, unix] = await Promise.all([startSwtpm({ transport: "tcp" }), startSwtpm({ transport: "unix" })]);
  });
  after(async () => {
    await Promise.all([tcp?.stop(), unix?.stop()]);
  });

  test("helper: ports are adjacent, the CA certificates are PEM, stop() is idempotent", () => {
    assert.equal(tcp.ctrlPort, tcp.port! + 1);
    assert.equal(tcp.uri, `swtpm:host=127.0.0.1,port=${tcp.port}`);
    assert.equal(tcp.tctiForTools, tcp.uri);
    assert.equal(unix.uri, `swtpm:path=${unix.socketPath}`);
    assert.equal(tcp.caCertPem?.match(/-----BEGIN CERTIFICATE-----/g)?.length, 2);
  });

  test("GetRandom(8) over TCP, several commands on one connection", async () => {
    const t = openTransport(tcp.uri);
    try {
      assert.equal(t.uri, tcp.uri);
      const a = await t.send(GET_RANDOM_8);
      const b = await t.send(GET_RANDOM_8);
      assertGetRandom8(a);
      assertGetRandom8(b);
      assert.notDeepEqual(a.subarray(12), b.subarray(12));
    } finally {
      await t.close();
      await t.close();
    }
  });

  test("GetRandom(8) over a unix socket", async () => {
    const t = openTransport(unix.uri);
    try {
      for (let i = 0; i < 3; i++) assertGetRandom8(await t.send(GET_RANDOM_8));
    } finally {
      await t.close();
    }
  });

  test("GetRandom(8) with mssim framing on swtpm's data port (platform: false)", async () => {
    for (const uri of [`mssim:host=127.0.0.1,port=${tcp.port}`, `mssim:path=${unix.socketPath}`]) {
      const t = openTransport(uri, { platform: false });
      try {
        assert.equal(t.uri, uri);
        for (let i = 0; i < 3; i++) assertGetRandom8(await t.send(GET_RANDOM_8));
      } finally {
        await t.close();
      }
    }
  });

  test("connection per command (persistent: false)", async () => {
    const t = new SwtpmTransport(tcpAddress(tcp), { persistent: false });
    try {
      for (let i = 0; i < 3; i++) assertGetRandom8(await t.send(GET_RANDOM_8));
    } finally {
      await t.close();
    }
  });

  test("a second client gets through once the first closes its persistent connection", async () => {
    const a = openTransport(tcp.uri);
    const b = openTransport(tcp.uri, { timeoutMs: 5000 });
    try {
      assertGetRandom8(await a.send(GET_RANDOM_8));
      await a.close();
      assertGetRandom8(await b.send(GET_RANDOM_8));
    } finally {
      await a.close();
      await b.close();
    }
  });

  test("control channel: capabilities include SEND_COMMAND_HEADER (bit 15)", async () => {
    const t = new SwtpmTransport(tcpAddress(tcp));
    const caps = await t.control.getCapability();
    assert.ok(caps & (1 << PTM_CAP_BIT.SEND_COMMAND_HEADER), `caps 0x${caps.toString(16)}`);
    assert.ok(caps & (1 << PTM_CAP_BIT.SET_LOCALITY));
    assert.equal(typeof (await t.control.getTpmEstablished()), "boolean");
    const unixCaps = await new SwtpmControl({ path: unix.ctrlPath! }).getCapability();
    assert.equal(unixCaps, caps);
  });

  test("control channel: SET_LOCALITY 0 works, 5 is refused with BAD_LOCALITY (0x3d)", async () => {
    const t = new SwtpmTransport(tcpAddress(tcp));
    try {
      await t.control.setLocality(0);
      await assert.rejects(t.control.setLocality(5), (e: unknown) => {
        assert.ok(e instanceof SwtpmControlError);
        assert.ok(e instanceof TransportError);
        assert.equal(e.result, 0x3d);
        assert.match(e.message, /CMD_SET_LOCALITY/);
        assert.match(e.message, /0x3d/);
        assert.match(e.message, /BAD_LOCALITY/);
        return true;
      });
      // The setter applies through CMD_SET_LOCALITY before the next command.
      t.locality = 3;
      assertGetRandom8(await t.send(GET_RANDOM_8));
      assert.equal(t.locality, 3);
      t.locality = 5;
      await assert.rejects(t.send(GET_RANDOM_8), /BAD_LOCALITY/);
      assert.equal(t.locality, 3);
      await t.setLocality(0);
      assertGetRandom8(await t.send(GET_RANDOM_8));
      assert.throws(() => (t.locality = 256), TransportError);
    } finally {
      await t.close();
    }
  });

  test("tpm2-tools reach the same swtpm through tctiForTools", { skip: requireTool("tpm2_getrandom") ?? false }, () => {
    for (const s of [tcp, unix]) {
      const out = execFileSync(findTool("tpm2_getrandom")!, ["--hex", "8"], {
        env: { ...process.env, TPM2TOOLS_TCTI: s.tctiForTools },
        timeout: 20_000,
      });
      assert.match(String(out).trim(), /^[0-9a-f]{16}$/);
    }
  });

  test("mssim header locality is carried", async () => {
    const t = new MssimTransport(tcpAddress(tcp), { platform: false, locality: 2 });
    try {
      assertGetRandom8(await t.send(GET_RANDOM_8));
      t.locality = 0;
      assertGetRandom8(await t.send(GET_RANDOM_8));
    } finally {
      await t.close();
    }
  });
});

describe("swtpm reconnects and lifecycle", { skip: swtpmSkip ?? false }, () => {
  test("server closing after every response (--server ...,disconnect): TCP and unix", async () => {
    const instances = await Promise.all([
      startSwtpm({ transport: "tcp", disconnect: true, provision: false }),
      startSwtpm({ transport: "unix", disconnect: true, provision: false }),
    ]);
    try {
      for (const s of instances) {
        const t = openTransport(s.uri, { timeoutMs: 5000 });
        try {
          for (let i = 0; i < 8; i++) assertGetRandom8(await t.send(GET_RANDOM_8));
        } finally {
          await t.close();
        }
        const m = openTransport(s.uri.replace(/^swtpm/, "mssim"), { platform: false, timeoutMs: 5000 });
        try {
          for (let i = 0; i < 4; i++) assertGetRandom8(await m.send(GET_RANDOM_8));
        } finally {
          await m.close();
        }
      }
    } finally {
      await Promise.all(instances.map((s) => s.stop()));
    }
  });

  test("without not-need-init: FAILURE (0x101) until CMD_INIT, INITIALIZE (0x100) until Startup", async () => {
    const s = await startSwtpm({ transport: "tcp", flags: "", provision: false });
    const t = new SwtpmTransport(tcpAddress(s), { timeoutMs: 5000 });
    try {
      assert.deepEqual(header(await t.send(GET_RANDOM_8)), { tag: 0x8001, size: 10, rc: 0x101 });
      await t.control.init();
      assert.equal(header(await t.send(GET_RANDOM_8)).rc, 0x100);
      assert.deepEqual(header(await t.send(STARTUP_CLEAR)), { tag: 0x8001, size: 10, rc: 0 });
      assertGetRandom8(await t.send(GET_RANDOM_8));
      await t.control.stop();
      assert.equal(header(await t.send(GET_RANDOM_8)).rc, 0x101);
      await assert.rejects(t.control.getTpmEstablished(), /TPM_BAD_ORDINAL|0xa/);
      await t.control.init(1);
      assert.equal(header(await t.send(STARTUP_CLEAR)).rc, 0);
      assertGetRandom8(await t.send(GET_RANDOM_8));
    } finally {
      await t.close();
      await s.stop();
    }
  });

  test("CMD_SHUTDOWN ends swtpm; the next command fails with a TransportError", async () => {
    const s = await startSwtpm({ transport: "unix", provision: false });
    const t = openTransport(s.uri, { timeoutMs: 5000 }) as SwtpmTransport;
    try {
      assertGetRandom8(await t.send(GET_RANDOM_8));
      await t.control.shutdown();
      await assert.rejects(t.send(GET_RANDOM_8), (e: unknown) => {
        assert.ok(e instanceof TransportError);
        assert.ok(e.message.includes(s.uri), e.message);
        return true;
      });
    } finally {
      await t.close();
      await s.stop();
    }
  });
});

// ---------------------------------------------------------------------------------------------

describe("socket transports against misbehaving servers", () => {
  test("a server that never answers: TransportTimeoutError naming the TPM and the wait", async () => {
    const srv = await scriptedServer(() => {});
    const uri = `swtpm:host=127.0.0.1,port=${srv.port}`;
    const t = openTransport(uri, { timeoutMs: 300 });
    try {
      const t0 = performance.now();
      await assert.rejects(t.send(GET_RANDOM_8), (e: unknown) => {
        assert.ok(e instanceof TransportTimeoutError);
        assert.equal(e.code, "ERR_TRANSPORT_TIMEOUT");
        assert.ok(e.message.includes(uri), e.message);
        assert.match(e.message, /300 ms/);
        return true;
      });
      const elapsed = performance.now() - t0;
      assert.ok(elapsed >= 290 && elapsed < 3000, `took ${elapsed} ms`);
      // The socket was dropped: the next command opens a new connection.
      await assert.rejects(t.send(GET_RANDOM_8), TransportTimeoutError);
      assert.equal(srv.connections, 2);
    } finally {
      await t.close();
      await srv.close();
    }
  });

  test("mssim: a server that never answers times out too", async () => {
    const srv = await scriptedServer(() => {});
    const t = new MssimTransport({ host: "127.0.0.1", port: srv.port }, { platform: false, timeoutMs: 200 });
    try {
      await assert.rejects(t.send(GET_RANDOM_8), /did not answer within 200 ms/);
    } finally {
      await t.close();
      await srv.close();
    }
  });

  for (const size of [4, 9, MAX_RESPONSE_BYTES + 1, 0xffffffff]) {
    test(`a response header with size ${size}: TransportError`, async () => {
      const srv = await scriptedServer((sock) => {
        const h = Buffer.alloc(10);
        h.writeUInt16BE(0x8001, 0);
        h.writeUInt32BE(size, 2);
        sock.write(h);
      });
      const uri = `swtpm:host=127.0.0.1,port=${srv.port}`;
      const t = openTransport(uri, { timeoutMs: 5000 });
      try {
        await assert.rejects(t.send(GET_RANDOM_8), (e: unknown) => {
          assert.ok(e instanceof TransportError && !(e instanceof TransportTimeoutError), String(e));
          assert.ok(e.message.includes(uri), e.message);
          assert.match(e.message, new RegExp(`responseSize ${size}`));
          return true;
        });
      } finally {
        await t.close();
        await srv.close();
      }
    });
  }

  test("mssim: bad frame size, bad trailer and inconsistent inner size are TransportErrors", async () => {
    const good = Buffer.from("800100000014000000000008b3f009db71b21594", "hex");
    const frames = [
      Buffer.from("00000004", "hex"),
      Buffer.concat([Buffer.from("00000014", "hex"), good, Buffer.from("00000001", "hex")]),
      Buffer.concat([Buffer.from("00000014", "hex"), Buffer.from("80010000000a", "hex"), good.subarray(6)]),
    ];
    const patterns = [/responseSize 4/, /trailer is 1/, /responseSize is 10/];
    for (let i = 0; i < frames.length; i++) {
      const srv = await scriptedServer((sock) => void sock.write(frames[i]!));
      const t = new MssimTransport({ host: "127.0.0.1", port: srv.port }, { platform: false, timeoutMs: 5000 });
      try {
        await assert.rejects(t.send(GET_RANDOM_8), (e: unknown) => {
          assert.ok(e instanceof TransportError && !(e instanceof TransportTimeoutError), String(e));
          assert.match(e.message, patterns[i]!);
          return true;
        });
      } finally {
        await t.close();
        await srv.close();
      }
    }
  });

  test("mssim: the real-server vector parses, with POWER_ON/NV_ON sent first on the platform port", async () => {
    const rsp = Buffer.from("00000014800100000014000000000008b3f009db71b2159400000000", "hex");
    const tpm = await scriptedServer((sock) => void sock.write(rsp));
    const signals: number[] = [];
    const platform = await scriptedServer((sock, d) => {
      for (let o = 0; o + 4 <= d.length; o += 4) {
        signals.push(d.readUInt32BE(o));
        sock.write(Buffer.alloc(4));
      }
    });
    const t = new MssimTransport({ host: "127.0.0.1", port: tpm.port }, {
      platformPort: platform.port,
      timeoutMs: 5000,
    });
    try {
      const r = await t.send(GET_RANDOM_8);
      assert.equal(toHex(r), "800100000014000000000008b3f009db71b21594");
      await t.send(GET_RANDOM_8);
      assert.deepEqual(signals, [1, 11]); // once per transport, not per command
      const req = Buffer.concat(tpm.received);
      assert.equal(req.subarray(0, 21).toString("hex"), "00000008000000000c80010000000c0000017b0008");
      assert.equal(req.length, 42);
    } finally {
      await t.close();
      await tpm.close();
      await platform.close();
    }
  });

  test("mssim: a platform port that refuses a signal gives a clear TransportError", async () => {
    const tpm = await scriptedServer(() => {});
    const platform = await scriptedServer((sock) => void sock.write(Buffer.from("00000001", "hex")));
    const t = new MssimTransport({ host: "127.0.0.1", port: tpm.port }, {
      platformPort: platform.port,
      timeoutMs: 5000,
    });
    try {
      await assert.rejects(t.send(GET_RANDOM_8), (e: unknown) => {
        assert.ok(e instanceof TransportError && !(e instanceof TransportTimeoutError), String(e));
        assert.match(e.message, /platform signal 1 .* refused/);
        assert.match(e.message, /platform: false/);
        return true;
      });
      assert.equal(tpm.received.length, 0); // the command never went out
    } finally {
      await t.close();
      await tpm.close();
      await platform.close();
    }
  });

  test("a deadline that passes before the command was written: the command is never sent", async () => {
    const tpm = await scriptedServer(() => {});
    const platform = await scriptedServer(() => {}); // swallows POWER_ON, never acknowledges
    const t = new MssimTransport({ host: "127.0.0.1", port: tpm.port }, {
      platformPort: platform.port,
      timeoutMs: 200,
    });
    try {
      await assert.rejects(t.send(GET_RANDOM_8), TransportTimeoutError);
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(tpm.connections, 0);
      assert.equal(tpm.received.length, 0);
    } finally {
      await t.close();
      await tpm.close();
      await platform.close();
    }
  });

  test("connection lost after the command was written: TransportError, and no resend", async () => {
    const srv = await scriptedServer((sock) => sock.destroy());
    const uri = `swtpm:host=127.0.0.1,port=${srv.port}`;
    const t = openTransport(uri, { timeoutMs: 5000 });
    try {
      await assert.rejects(t.send(GET_RANDOM_8), (e: unknown) => {
        assert.ok(e instanceof TransportError && !(e instanceof TransportTimeoutError), String(e));
        assert.match(e.message, /lost after the command was sent/);
        assert.match(e.message, /not resent/);
        return true;
      });
      assert.equal(srv.connections, 1);
      assert.equal(Buffer.concat(srv.received).toString("hex"), GET_RANDOM_8.toString("hex"));
    } finally {
      await t.close();
      await srv.close();
    }
  });

  test("a large command is delivered whole and its response read", async () => {
    const big = Buffer.alloc(4096, 0xab);
    big.writeUInt16BE(0x8001, 0);
    big.writeUInt32BE(big.length, 2);
    const srv = await scriptedServer((sock, _d, st) => {
      const total = st.received.reduce((n, b) => n + b.length, 0);
      if (total >= big.length) {
        sock.write(Buffer.from("80010000000a00000000", "hex"));
      }
    });
    const t = openTransport(`swtpm:host=127.0.0.1,port=${srv.port}`, { timeoutMs: 5000 });
    try {
      assert.deepEqual(header(await t.send(big)), { tag: 0x8001, size: 10, rc: 0 });
      assert.equal(Buffer.concat(srv.received).length, big.length);
    } finally {
      await t.close();
      await srv.close();
    }
  });

  test("bytes beyond the response are a TransportError", async () => {
    const srv = await scriptedServer((sock) => void sock.write(Buffer.from("80010000000a00000000ffff", "hex")));
    const t = openTransport(`swtpm:host=127.0.0.1,port=${srv.port}`, { timeoutMs: 5000 });
    try {
      await assert.rejects(t.send(GET_RANDOM_8), /2 bytes beyond the end of its response/);
    } finally {
      await t.close();
      await srv.close();
    }
  });

  test("nothing listening: TransportError naming the TPM", async () => {
    const srv = await scriptedServer(() => {});
    const port = srv.port;
    await srv.close();
    const t = openTransport(`swtpm:host=127.0.0.1,port=${port}`, { timeoutMs: 5000 });
    await assert.rejects(t.send(GET_RANDOM_8), (e: unknown) => {
      assert.ok(e instanceof TransportError);
      assert.match(e.message, new RegExp(`Cannot connect to TPM swtpm:host=127.0.0.1,port=${port}`));
      assert.match(e.message, /ECONNREFUSED/);
      return true;
    });
    await assert.rejects((t as SwtpmTransport).control.getCapability(), /Cannot connect to swtpm control/);
    const missing = path.join(os.tmpdir(), `keylime-ts-missing-${process.pid}.sock`);
    await assert.rejects(
      openTransport(`swtpm:path=${missing}`).send(GET_RANDOM_8),
      /Cannot connect.*ENOENT|no such file/i,
    );
    await t.close();
  });
});

// ---------------------------------------------------------------------------------------------

describe("device transport", () => {
  test("a nonexistent device: TransportError saying what to do", async () => {
    const t = openTransport("device:/nonexistent/tpmrm0");
    assert.equal(t.resourceManaged, true);
    await assert.rejects(t.send(GET_RANDOM_8), (e: unknown) => {
      assert.ok(e instanceof TransportError);
      assert.equal(e.code, "ERR_TRANSPORT");
      assert.match(e.message, /Cannot open TPM device \/nonexistent\/tpmrm0/);
      assert.match(e.message, /does not exist/);
      assert.match(e.message, /swtpm|simulator/);
      return true;
    });
    await t.close();
  });

  test("a path that is not openable read-write (a directory): TransportError", async () => {
    const t = new DeviceTransport(os.tmpdir(), { warn: () => {} });
    await assert.rejects(t.send(GET_RANDOM_8), TransportError);
    await t.close();
  });

  const mkfifo = findTool("mkfifo");
  const fifoSkip = mkfifo ? false : "mkfifo is not installed, so no FIFO can stand in for a device";

  // A FIFO echoes what is written: enough to check write-once/read-once, the size check and the warning.
  test("write once, read once (a FIFO named tpm0 standing in for the device)", { skip: fifoSkip }, async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "keylime-ts-dev-"));
    const fifo = path.join(dir, "tpm0");
    execFileSync(mkfifo!, [fifo]);
    const warnings: string[] = [];
    const t = new DeviceTransport(fifo, { warn: (m) => warnings.push(m), timeoutMs: 5000 });
    try {
      assert.equal(t.resourceManaged, false);
      const echoed = await t.send(GET_RANDOM_8);
      assert.equal(toHex(echoed), GET_RANDOM_8.toString("hex"));
      await t.send(GET_RANDOM_8);
      assert.equal(warnings.length, 1);
      assert.match(warnings[0]!, /no resource manager/);
      assert.match(warnings[0]!, /\/dev\/tpmrm0/);
      // Stale bytes ahead of the answer make the size disagree with what read() returned.
      const writer = fs.openSync(fifo, "r+");
      fs.writeSync(writer, Buffer.from("80010000001400000000", "hex"));
      fs.closeSync(writer);
      await assert.rejects(t.send(GET_RANDOM_8), /responseSize 20 but the device returned 22 bytes/);
    } finally {
      await t.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  const deviceSkip = process.env.TPM_DEVICE_TESTS === "1"
    ? false
    : "needs a hardware TPM: set TPM_DEVICE_TESTS=1 (and TPM_DEVICE=/dev/tpmrm0 to pick the device)";
  test("GetRandom(8) on the hardware TPM", { skip: deviceSkip }, async () => {
    const dev = process.env.TPM_DEVICE ?? "/dev/tpmrm0";
    const t = openTransport(`device:${dev}`, { warn: () => {} });
    try {
      assertGetRandom8(await t.send(GET_RANDOM_8));
      assertGetRandom8(await t.send(GET_RANDOM_8));
    } finally {
      await t.close();
    }
  });
});

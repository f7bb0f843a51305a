/**
 * The protocol servers under abuse: a connection that never speaks is closed, connections are
 * capped (the longest-idle one makes room; all busy refuses), a client sending garbage in a loop
 * gets a few log lines and a summary instead of one line each, and a server that ran out of file
 * descriptors (in a child process under a low `ulimit -n`) accepts again once they are back.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { GetRandom } from "../../src/tpm/commands.ts";
import { Tpm } from "../../src/tpm/client.ts";
import { SwtpmTransport } from "../../src/tpm/transport/swtpm.ts";
import { SwtpmControl } from "../../src/tpm/transport/swtpm_control.ts";
import type { SocketAddress } from "../../src/tpm/transport/socket_link.ts";
import { ALL_HANDLERS } from "../../simulator/handlers/all.ts";
import { startMssimServer } from "../../simulator/mssim_server.ts";
import { LOG_BURST } from "../../simulator/rate_limited_log.ts";
import { startSwtpmServer } from "../../simulator/swtpm_server.ts";
import { startedSim } from "../helpers/sim.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const GET_RANDOM_8 = Buffer.from("80010000000c0000017b0008", "hex");

/** A raw connection and what happens to it: bytes received, and whether (when) the server closed it. */
function open(address: SocketAddress) {
  const socket = "path" in address ? net.createConnection(address.path) : net.createConnection(address);
  const chunks: Buffer[] = [];
  socket.on("data", (d: Buffer) => chunks.push(d));
  socket.on("error", () => {});
  const closed = new Promise<boolean>((resolve) => socket.once("close", () => resolve(true)));
  const connected = new Promise<void>((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("error", reject);
  });
  return {
    socket,
    connected,
    received: () => Buffer.concat(chunks),
    /** True once the server closed the connection, false if it is still open after `ms`. */
    closedWithin: (ms: number) => Promise.race([closed, sleep(ms).then(() => false)]),
  };
}

async function engine() {
  return (await startedSim(ALL_HANDLERS)).engine;
}

describe("connection deadlines and limits", () => {
  for (const kind of ["swtpm", "mssim"] as const) {
    test(`${kind}: a connection that sends nothing is closed after the first-byte deadline`, async () => {
      const warnings: string[] = [];
      const options = { firstByteTimeoutMs: 100, warn: (m: string) => warnings.push(m) };
      const s = kind === "swtpm"
        ? await startSwtpmServer(await engine(), options)
        : await startMssimServer(await engine(), options);
      try {
        const silent = open({ host: "127.0.0.1", port: s.port! });
        const companion = open({ host: "127.0.0.1", port: s.port! + 1 });
        await Promise.all([silent.connected, companion.connected]);
        assert.equal(await silent.closedWithin(3000), true, "the silent connection was closed");
        assert.equal(await companion.closedWithin(3000), true, "on the companion channel too");
      } finally {
        await s.close();
      }
    });
  }

  test("the idle deadline closes a connection silent between requests; our client reconnects", async () => {
    const s = await startSwtpmServer(await engine(), { idleTimeoutMs: 100, warn: () => {} });
    const t = new SwtpmTransport({ host: "127.0.0.1", port: s.port! });
    try {
      const c = open({ host: "127.0.0.1", port: s.port! });
      await c.connected;
      c.socket.write(GET_RANDOM_8);
      for (let i = 0; i < 100 && c.received().length < 20; i++) await sleep(20);
      assert.equal(c.received().length, 20);
      assert.equal(await c.closedWithin(3000), true, "closed once idle");
      const tpm = new Tpm(t);
      await tpm.execute(GetRandom, { bytesRequested: 8 });
      await sleep(300);
      assert.equal((await tpm.execute(GetRandom, { bytesRequested: 8 })).randomBytes.length, 8);
    } finally {
      await t.close();
      await s.close();
    }
  });

  test("at maxConnections the longest-idle connection makes room; with all busy a new one is refused", async () => {
    const warnings: string[] = [];
    const sim = await engine();
    const s = await startSwtpmServer(sim, { maxConnections: 3, warn: (m) => warnings.push(m) });
    const at = { host: "127.0.0.1", port: s.port! };
    try {
      const idle = [open(at), open(at), open(at)];
      for (const c of idle) await c.connected;
      await sleep(50);
      const fourth = open(at);
      await fourth.connected;
      assert.equal(await idle[0]!.closedWithin(2000), true, "the oldest idle connection was closed");
      assert.equal(await idle[1]!.closedWithin(100), false, "the others stay");
      fourth.socket.write(GET_RANDOM_8);
      for (let i = 0; i < 100 && fourth.received().length < 20; i++) await sleep(20);
      assert.equal(fourth.received().length, 20, "the new connection is served");
      assert.match(warnings.join("\n"), /3 connections open; closed the one idle longest/);

      // Three connections each in the middle of a request (half a command sent): none is idle.
      for (const c of [idle[1]!, idle[2]!, fourth]) c.socket.write(GET_RANDOM_8.subarray(0, 5));
      await sleep(50);
      const refused = open(at);
      await refused.connected.catch(() => {});
      assert.equal(await refused.closedWithin(2000), true, "refused");
      assert.match(warnings.join("\n"), /3 connections open and all busy; refused a new one/);
      for (const c of [idle[1]!, idle[2]!, fourth]) c.socket.destroy();
    } finally {
      await s.close();
    }
  });

  test("malformed frames in a loop: the first few logged, the rest summed up in one line", async () => {
    const warnings: string[] = [];
    const s = await startSwtpmServer(await engine(), { warn: (m) => warnings.push(m) });
    const frames = 40;
    try {
      for (let i = 0; i < frames; i++) {
        const c = open({ host: "127.0.0.1", port: s.port! });
        await c.connected;
        c.socket.write("hello, TPM!\n");
        await c.closedWithin(2000);
      }
    } finally {
      await s.close(); // flushes the summary
    }
    const lines = warnings.filter((w) => w.includes("swtpm data channel"));
    assert.equal(lines.filter((w) => w.includes("neither a TPM command")).length, LOG_BURST);
    assert.ok(
      lines.some((w) => w.includes(`malformed requests: ${frames - LOG_BURST} more in the last`)),
      lines.join("\n"),
    );
    assert.equal(lines.length, LOG_BURST + 1);
  });
});

describe("out of file descriptors", () => {
  const child = fileURLToPath(new URL("../helpers/sim_server_process.ts", import.meta.url));
  const deno = fileURLToPath(new URL("../../scripts/deno", import.meta.url));
  // Deno itself needs a few hundred descriptors to start; this leaves ~250 for connections.
  const LIMIT = 512;

  test(
    "a server whose process ran out of descriptors logs it and accepts again once they are back",
    { skip: process.platform !== "linux" && "needs ulimit" },
    async () => {
      const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "sim-fd-"));
      const options = JSON.stringify({ acceptCheckMs: 200, maxConnections: 100_000, firstByteTimeoutMs: 60_000 });
      const proc = spawn("bash", ["-c", `ulimit -n ${LIMIT} && exec "$0" run -A "$1" "$2"`, deno, child, options], {
        stdio: ["pipe", "pipe", "pipe"],
        // Extra CA files are loaded lazily, which fails without descriptors (a noisy warning).
        env: Object.fromEntries(Object.entries(process.env).filter(([k]) => !/CERT|CA_BUNDLE|CAINFO/.test(k))),
      });
      let stderr = "";
      proc.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
      const flood: ReturnType<typeof open>[] = [];
      try {
        const { port, ctrlPort } = await new Promise<{ port: number; ctrlPort: number }>((resolve, reject) => {
          proc.stdout.once("data", (d: Buffer) => resolve(JSON.parse(d.toString())));
          proc.once("exit", (code) => reject(new Error(`the server process exited (${code}): ${stderr}`)));
        });
        const at = { host: "127.0.0.1", port };
        // More connections than the server has descriptors: it accepts until none are left.
        for (let i = 0; i < LIMIT + 100; i++) flood.push(open(at));
        // (Bounded: past the listen backlog a connect may hang in SYN retries.)
        await Promise.race([Promise.all(flood.map((c) => c.connected.catch(() => {}))), sleep(5000)]);
        for (let i = 0; i < 100 && !/out of file descriptors|stopped accepting/.test(stderr); i++) await sleep(100);
        assert.match(stderr, /out of file descriptors|stopped accepting/, `the server said what happened: ${stderr}`);

        for (const c of flood) c.socket.destroy();
        // The data channel serves again: a command gets its answer (retried while it recovers).
        let answered = false;
        for (let i = 0; i < 40 && !answered; i++) {
          const t = new SwtpmTransport(at, { timeoutMs: 1000, persistent: false });
          try {
            answered = (await new Tpm(t).execute(GetRandom, { bytesRequested: 8 })).randomBytes.length === 8;
          } catch {
            await sleep(250);
          } finally {
            await t.close();
          }
        }
        assert.ok(answered, `the data channel accepts again; server said:\n${stderr}`);
        // And so does the control channel.
        const control = new SwtpmControl({ host: "127.0.0.1", port: ctrlPort });
        assert.equal(typeof (await control.getCapability()), "number");
      } finally {
        for (const c of flood) c.socket.destroy();
        proc.stdin.end();
        const exited = new Promise((resolve) => proc.once("exit", resolve));
        if (!(await Promise.race([exited.then(() => true), sleep(5000).then(() => false)]))) proc.kill("SIGKILL");
        fs.rmSync(tmp, { recursive: true, force: true });
      }
    },
  );
});

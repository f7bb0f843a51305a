/**
 * quotes/integrity streams the IMA list into its answer: the body is exactly the envelope JSON.stringify
 * would write for the whole text (escapes, UTF-8 split across chunks, a BOM), and a 100 MB list asked from
 * entry 0 goes out without the list being held in memory (RSS measured, printed, bounded).
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createAgentApp } from "../../src/agent/app.ts";
import { ImaMeasurementList } from "../../src/agent/measurements.ts";
import type { MeasurementSource } from "../../src/agent/routes/quotes.ts";
import { envelope, envelopeText } from "../../src/protocol/envelope.ts";
import { type AgentAppFixture, agentAppFixture } from "../helpers/agent_app.ts";

let fx: AgentAppFixture;
const dir = mkdtempSync(join(tmpdir(), "ima-stream-"));
before(async () => {
  fx = await agentAppFixture();
});
after(async () => {
  await fx.stop();
  rmSync(dir, { recursive: true, force: true });
});

const QUERY = "/v2.2/quotes/integrity?nonce=abc&mask=0x400&partial=1&ima_ml_entry=0";
const appWith = (measurements: MeasurementSource) =>
  createAgentApp({ ...fx.deps, quotes: { ...fx.deps.quotes, measurements } });

test("the streamed body is the envelope of the whole text, byte for byte", async () => {
  const text = '\ufeff10 abc ima-ng "quoted" back\\slash\ttab\u0001 é€😀\n10 def ima-ng /x\n';
  const bytes = Buffer.from(text);
  // One byte a chunk: every multi-byte character is split.
  const app = appWith({
    ima: (entry) =>
      Promise.resolve({
        entry,
        chunks: async function* () {
          for (const b of bytes) yield Uint8Array.of(b);
        },
      }),
    measuredBoot: () => Promise.resolve(undefined),
  });
  const res = await app.request(QUERY);
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("content-type"), "application/json");
  const body = await res.text();
  const results = JSON.parse(body).results;
  assert.equal(results.ima_measurement_list, text);
  assert.equal(body, envelopeText(envelope(200, "Success", results)));
});

test("a 100 MB IMA list from entry 0 is streamed with bounded memory", async () => {
  const path = join(dir, "ascii_runtime_measurements");
  const fd = openSync(path, "w");
  const line = (i: number) => `10 ${"0".repeat(40)} ima-ng sha256:${i.toString(16).padStart(64, "0")} /usr/f${i}\n`;
  let n = 0;
  let size = 0;
  while (size < 100 * 1024 * 1024) {
    const block = Array.from({ length: 8192 }, (_, k) => line(n + k)).join("");
    writeSync(fd, block);
    size += block.length;
    n += 8192;
  }
  closeSync(fd);
  const list = new ImaMeasurementList(path);
  await list.locate(0); // index once, so the figure is the answer's alone
  const app = appWith({
    ima: async (entry) => {
      const slice = await list.locate(entry);
      return { entry: slice.entry, chunks: () => list.chunks(slice) };
    },
    measuredBoot: () => Promise.resolve(undefined),
  });

  const rss0 = process.memoryUsage().rss;
  let peak = rss0;
  const res = await app.request(QUERY);
  assert.equal(res.status, 200);
  const reader = res.body!.getReader();
  let received = 0;
  let lastBytes = new Uint8Array();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    received += value.length;
    lastBytes = value;
    peak = Math.max(peak, process.memoryUsage().rss);
  }
  const mb = (b: number) => (b / 1048576).toFixed(1);
  console.log(`IMA list ${mb(size)} MB, ${n} entries, answer ${mb(received)} MB; rss +${mb(peak - rss0)} MB at peak`);
  // Each line is ASCII with no character JSON escapes but the newline (\n: 2 bytes for 1).
  const envelopeOverhead = received - size - n;
  assert.ok(envelopeOverhead > 0 && envelopeOverhead < 4096, `answer of ${received} bytes for a ${size}-byte list`);
  assert.match(Buffer.from(lastBytes).toString(), /\n\s*\}\s*\}$/);
  assert.ok(peak - rss0 < 48 * 1024 * 1024, `rss grew ${mb(peak - rss0)} MB while streaming a 100 MB list`);
});

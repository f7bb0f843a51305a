/**
 * The IMA list served from entry n (rust-keylime's entry rules), an index kept across a growing file and
 * rebuilt when the file is replaced, a 100 MB list whose tail is read without holding the list in memory,
 * and the UEFI event log as base64.
 */
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  appendFileSync,
  closeSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  CHECKPOINT,
  ImaMeasurementList,
  MeasurementsError,
  readMeasuredBootLog,
} from "../../src/agent/measurements.ts";

const dir = mkdtempSync(join(tmpdir(), "measurements-"));
after(() => rmSync(dir, { recursive: true, force: true }));

/** An IMA ascii_runtime_measurements line (ima-ng template). */
const imaLine = (i: number) =>
  `10 ${i.toString(16).padStart(40, "0")} ima-ng sha256:${i.toString(16).padStart(64, "0")} /usr/lib/file-${i}\n`;
const lines = (from: number, to: number) => Array.from({ length: to - from }, (_, k) => imaLine(from + k));

describe("entry rules", () => {
  test("upstream's example: 3 entries, ask for 2, 3 and 4", async () => {
    const path = join(dir, "three");
    writeFileSync(path, "0-entry\n1-entry\n2-entry\n");
    const ml = new ImaMeasurementList(path);
    assert.deepEqual(await ml.read(2), { text: "2-entry\n", entry: 2, numEntries: 3 });
    // The next entry, not there yet: an empty list at that entry.
    assert.deepEqual(await ml.read(3), { text: "", entry: 3, numEntries: 3 });
    // Beyond it: the whole list from 0.
    assert.deepEqual(await ml.read(4), { text: "0-entry\n1-entry\n2-entry\n", entry: 0, numEntries: 3 });
    assert.deepEqual(await ml.read(0), { text: "0-entry\n1-entry\n2-entry\n", entry: 0, numEntries: 3 });
    assert.equal((await ml.read(-1)).entry, 0);
    assert.equal((await ml.read(Number.NaN)).entry, 0);
  });

  test("a line being written is not an entry yet, but is part of the text", async () => {
    const path = join(dir, "partial");
    writeFileSync(path, "a\nb");
    const ml = new ImaMeasurementList(path);
    assert.deepEqual(await ml.read(1), { text: "b", entry: 1, numEntries: 1 });
    appendFileSync(path, "\nc\n");
    assert.deepEqual(await ml.read(1), { text: "b\nc\n", entry: 1, numEntries: 3 });
  });

  test("an empty list", async () => {
    const path = join(dir, "empty");
    writeFileSync(path, "");
    assert.deepEqual(await new ImaMeasurementList(path).read(0), { text: "", entry: 0, numEntries: 0 });
  });

  test("a missing list is a MeasurementsError naming the path", async () => {
    await assert.rejects(
      new ImaMeasurementList(join(dir, "nope")).read(0),
      (e) => e instanceof MeasurementsError && e.message.includes(join(dir, "nope")),
    );
  });
});

describe("a growing list", () => {
  test("every entry across checkpoints, while the file grows between requests", async () => {
    const path = join(dir, "growing");
    const all = lines(0, 3 * CHECKPOINT + 17);
    writeFileSync(path, all.slice(0, CHECKPOINT + 5).join(""));
    const ml = new ImaMeasurementList(path);
    assert.equal((await ml.read(0)).numEntries, CHECKPOINT + 5);
    appendFileSync(path, all.slice(CHECKPOINT + 5).join(""));
    for (
      const n of [0, 1, CHECKPOINT - 1, CHECKPOINT, CHECKPOINT + 1, 2 * CHECKPOINT + 3, all.length - 1, all.length]
    ) {
      const r = await ml.read(n);
      assert.equal(r.entry, n);
      assert.equal(r.numEntries, all.length);
      assert.equal(r.text, all.slice(n).join(""), `entry ${n}`);
    }
  });

  test("a replaced (shorter) list is re-indexed", async () => {
    const path = join(dir, "replaced");
    writeFileSync(path, lines(0, 50).join(""));
    const ml = new ImaMeasurementList(path);
    assert.equal((await ml.read(10)).numEntries, 50);
    writeFileSync(path, "x".repeat(30) + "\n" + "y\n");
    assert.deepEqual(await ml.read(1), { text: "y\n", entry: 1, numEntries: 2 });
  });

  test("concurrent requests see consistent answers", async () => {
    const path = join(dir, "concurrent");
    const all = lines(0, 4000);
    writeFileSync(path, all.join(""));
    const ml = new ImaMeasurementList(path);
    const rs = await Promise.all([3999, 0, 2048, 4000, 5000].map((n) => ml.read(n)));
    assert.deepEqual(rs.map((r) => r.entry), [3999, 0, 2048, 4000, 0]);
    assert.equal(rs[2]!.text, all.slice(2048).join(""));
  });

  test("chunks() streams exactly what read() returns", async () => {
    const path = join(dir, "stream");
    writeFileSync(path, lines(0, 3000).join(""));
    const ml = new ImaMeasurementList(path);
    const slice = await ml.locate(1234);
    const parts: Uint8Array[] = [];
    for await (const c of ml.chunks(slice, 1000)) parts.push(c);
    assert.equal(Buffer.concat(parts).toString(), (await ml.read(1234)).text);
  });

  test("read() refuses a text larger than asked for", async () => {
    const path = join(dir, "bounded");
    writeFileSync(path, lines(0, 100).join(""));
    await assert.rejects(new ImaMeasurementList(path).read(0, 1000), MeasurementsError);
  });
});

test("a 100 MB list: the tail is read with bounded memory", async () => {
  const path = join(dir, "huge");
  const fd = openSync(path, "w");
  let n = 0;
  let size = 0;
  while (size < 100 * 1024 * 1024) {
    const block = lines(n, n + 8192).join("");
    writeSync(fd, block);
    size += Buffer.byteLength(block);
    n += 8192;
  }
  closeSync(fd);
  const ml = new ImaMeasurementList(path);
  const rss0 = process.memoryUsage().rss;
  // The longest gap between timer ticks while the whole file is indexed: how long the event loop was held.
  let lagMs = 0;
  let last = performance.now();
  const ticker = setInterval(() => {
    const now = performance.now();
    lagMs = Math.max(lagMs, now - last);
    last = now;
  }, 1);
  let t = performance.now();
  const tail = await ml.read(n - 10);
  const firstMs = performance.now() - t;
  clearInterval(ticker);
  const rss1 = process.memoryUsage().rss;
  assert.equal(tail.entry, n - 10);
  assert.equal(tail.numEntries, n);
  assert.equal(tail.text, lines(n - 10, n).join(""));

  appendFileSync(path, lines(n, n + 5).join(""));
  t = performance.now();
  const next = await ml.read(n);
  const nextMs = performance.now() - t;
  const rss2 = process.memoryUsage().rss;
  assert.equal(next.text, lines(n, n + 5).join(""));
  assert.equal(next.numEntries, n + 5);

  // A tail from the middle reads from the nearest checkpoint only.
  t = performance.now();
  const mid = await ml.locate(Math.floor(n / 2) + 7);
  const midMs = performance.now() - t;
  assert.equal(mid.start, Buffer.byteLength(lines(0, Math.floor(n / 2) + 7).join("")));

  const mb = (b: number) => (b / 1048576).toFixed(1);
  const figures = [
    `IMA list ${mb(size)} MB, ${n} entries`,
    `first tail read (indexes the whole file) ${firstMs.toFixed(0)} ms, rss +${mb(rss1 - rss0)} MB`,
    `longest event-loop stall ${lagMs.toFixed(0)} ms`,
    `next tail after an append ${nextMs.toFixed(1)} ms, rss +${mb(rss2 - rss0)} MB`,
    `locate mid-list entry ${midMs.toFixed(1)} ms`,
  ];
  console.log(figures.join("; "));

  assert.ok(rss1 - rss0 < 50 * 1024 * 1024, `rss grew ${mb(rss1 - rss0)} MB while reading a 100 MB list's tail`);
  assert.ok(rss2 - rss0 < 50 * 1024 * 1024);
  rmSync(path);
});

describe("UEFI event log", () => {
  const eventLog = fileURLToPath(new URL("../testdata/uefi-eventlog/binary_bios_measurements", import.meta.url));

  test("served as base64 of the exact bytes", async () => {
    const b64 = await readMeasuredBootLog(eventLog);
    assert.ok(b64);
    assert.deepEqual(Buffer.from(b64, "base64"), readFileSync(eventLog));
  });

  test("absent: undefined (no mb_measurement_list); too large: refused", async () => {
    assert.equal(await readMeasuredBootLog(join(dir, "no-such-log")), undefined);
    await assert.rejects(readMeasuredBootLog(eventLog, 1000), /larger than 1000 bytes/);
    assert.ok(await readMeasuredBootLog(eventLog, readFileSync(eventLog).length));
  });
});

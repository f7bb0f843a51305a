/**
 * The Keylime PCRBLOB (tpm2-tools little-endian PCR file): byte compatibility with tpm2-tools output,
 * the spec's worked example, strict decoding with the offending field named, and property tests.
 * A fresh `tpm2_quote -o` file from a live swtpm is checked in quote_test.ts.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import fc from "fast-check";
import { decodePcrBlob, encodePcrBlob, PcrBlobError, pcrBlobValues } from "../../src/protocol/pcr_blob.ts";
import { TPM_ALG } from "../../src/tpm/constants.ts";
import { pcrSelection } from "../../src/tpm/pcrs.ts";
import { toHex, VECTOR_DIR } from "../helpers/vectors.ts";

const SHA1: number = TPM_ALG.SHA1;
const SHA256: number = TPM_ALG.SHA256;
const stateFile = (f: string) => new Uint8Array(readFileSync(VECTOR_DIR + "swtpm-state/" + f));

function rejects(bytes: Uint8Array, field: string | RegExp): void {
  assert.throws(() => decodePcrBlob(bytes), (e: unknown) => {
    assert.ok(e instanceof PcrBlobError, `expected PcrBlobError, got ${String(e)}`);
    assert.equal(e.code, "ERR_PCR_FILE");
    if (typeof field === "string") assert.equal(e.field, field, e.message);
    else assert.match(e.field, field, e.message);
    assert.ok(e.message.includes(e.field));
    return true;
  });
}

const digest = (fill: number, n = 32) => new Uint8Array(n).fill(fill);

/** The PCR10 + PCR16 example of spec/keylime.md §5. */
function example(): Uint8Array {
  return encodePcrBlob([pcrSelection(SHA256, [10, 16])], [[digest(0xaa), digest(0xbb)]]);
}

function le32(b: Uint8Array, at: number, v: number): Uint8Array {
  const out = b.slice();
  new DataView(out.buffer).setUint32(at, v, true);
  return out;
}

describe("PCRBLOB layout", () => {
  test("the swtpm-state quote.pcrs (tpm2_quote -o) decodes and re-encodes byte for byte", () => {
    const bytes = stateFile("quote.pcrs");
    const blob = decodePcrBlob(bytes);
    assert.equal(bytes.length, 668);
    assert.deepEqual(blob.selections, [{ hash: SHA256, pcrSelect: Uint8Array.of(0x0f, 0x04, 0x00) }]);
    assert.equal(blob.values[0]!.length, 5);
    assert.equal(toHex(encodePcrBlob(blob.selections, blob.values)), toHex(bytes));
    assert.deepEqual([...pcrBlobValues(blob).get(SHA256)!.keys()], [0, 1, 2, 3, 10]);
  });

  test("spec/keylime.md §5 example: sha256 PCR10 + PCR16", () => {
    const b = example();
    assert.equal(b.length, 668);
    assert.equal(toHex(b.subarray(0, 12)), "01000000" + "0b00030004010000");
    assert.ok(b.subarray(12, 132).every((x) => x === 0), "unused selection entries are zero");
    assert.equal(toHex(b.subarray(132, 140)), "01000000" + "02000000");
    assert.equal(toHex(b.subarray(140, 142)), "2000");
    assert.equal(toHex(b.subarray(142, 174)), toHex(digest(0xaa)));
    assert.ok(b.subarray(174, 206).every((x) => x === 0), "slot buffer is zero after the value");
    assert.equal(toHex(b.subarray(206, 208)), "2000");
    assert.equal(toHex(b.subarray(208, 240)), toHex(digest(0xbb)));
    assert.ok(b.subarray(272).every((x) => x === 0), "unused slots are zero");
  });

  test("values are grouped 8 per TPML_DIGEST across banks, as TPM2_PCR_Read returns them", () => {
    const sels = [pcrSelection(SHA1, [0, 1]), pcrSelection(SHA256, [0, 1, 2, 3, 4, 5, 10, 16])];
    const values = [[digest(1, 20), digest(2, 20)], Array.from({ length: 8 }, (_, i) => digest(0x10 + i))];
    const b = encodePcrBlob(sels, values);
    assert.equal(b.length, 136 + 2 * 532);
    const view = new DataView(b.buffer);
    assert.equal(view.getUint32(132, true), 2);
    assert.equal(view.getUint32(136, true), 8);
    assert.equal(view.getUint32(136 + 532, true), 2);
    assert.equal(view.getUint16(140, true), 20, "first slot holds sha1 PCR0");
    assert.equal(view.getUint16(140 + 2 * 66, true), 32, "third slot holds sha256 PCR0");
    const back = decodePcrBlob(b);
    assert.deepEqual(back.values, values);
    assert.deepEqual(back.selections.map((s) => s.hash), [SHA1, SHA256]);
  });

  test("a selection without PCRs and a blob without values", () => {
    const b = encodePcrBlob([pcrSelection(SHA256, [])], [[]]);
    assert.equal(b.length, 136);
    assert.deepEqual(decodePcrBlob(b).values, [[]]);
    const none = encodePcrBlob([], []);
    assert.deepEqual(decodePcrBlob(none), { selections: [], values: [] });
  });

  test("groups with fewer than 8 values (a TPM that returns fewer per PCR_Read) decode", () => {
    // Move the second value of the example into a second group of its own.
    const b = example();
    const split = new Uint8Array(136 + 2 * 532);
    split.set(b.subarray(0, 668));
    const view = new DataView(split.buffer);
    view.setUint32(132, 2, true);
    view.setUint32(136, 1, true);
    split.fill(0, 206, 272);
    view.setUint32(668, 1, true);
    split.set(b.subarray(206, 272), 672);
    assert.deepEqual(decodePcrBlob(split).values, [[digest(0xaa), digest(0xbb)]]);
  });
});

describe("PCRBLOB strict decoding names the field", () => {
  const ok = example();

  test("length", () => {
    rejects(ok.slice(0, 100), "file");
    rejects(ok.slice(0, -1), "TPML_DIGEST count");
    rejects(Uint8Array.of(...ok, 0), "TPML_DIGEST count");
    rejects(le32(ok, 132, 2), "TPML_DIGEST count");
    rejects(le32(ok, 132, 0xffffffff), "TPML_DIGEST count");
  });

  test("selection", () => {
    rejects(le32(ok, 0, 17), "TPML_PCR_SELECTION.count");
    const size4 = ok.slice();
    size4[6] = 4;
    rejects(size4, "pcrSelections[0].sizeofSelect");
    const beyond = ok.slice();
    beyond[10] = 1;
    rejects(beyond, "pcrSelections[0].pcrSelect");
    const unused = ok.slice();
    unused[12] = 0x0b;
    rejects(unused, "pcrSelections[1]");
    const unknown = ok.slice();
    unknown[4] = 0x99;
    rejects(unknown, "pcrSelections[0].hash");
    const dup = le32(ok, 0, 2);
    dup.set(ok.subarray(4, 12), 12);
    rejects(dup, "pcrSelections[1].hash");
    const pad = ok.slice();
    pad[11] = 0x5a; // C padding is not read
    assert.deepEqual(decodePcrBlob(pad).values, decodePcrBlob(ok).values);
  });

  test("digests", () => {
    rejects(le32(ok, 136, 0), "pcrValues[0].count");
    rejects(le32(ok, 136, 9), "pcrValues[0].count");
    rejects(le32(ok, 136, 1), "pcrValues[0].digests[1]");
    rejects(le32(ok, 136, 3), "pcrValues[0].digests[2].size");
    const big = ok.slice();
    big[140] = 65;
    rejects(big, "pcrValues[0].digests[0].size");
    const tail = ok.slice();
    tail[180] = 1;
    rejects(tail, "pcrValues[0].digests[0].buffer");
    const short = ok.slice();
    short[140] = 20;
    short.fill(0, 162, 206);
    rejects(short, "pcrValues");
    const more = ok.slice();
    more[9] = 0x03; // PCR16 and PCR17 selected: 3 PCRs, 2 values
    rejects(more, "pcrValues");
  });
});

describe("PCRBLOB encoding refuses what it cannot represent", () => {
  const fails = (fn: () => unknown, field: string) =>
    assert.throws(fn, (e: unknown) => e instanceof PcrBlobError && e.field === field);

  test("value counts and sizes, PCRs above 23, unknown banks, too many banks", () => {
    const sel = pcrSelection(SHA256, [10, 16]);
    fails(() => encodePcrBlob([sel], [[digest(1)]]), "values[0]");
    fails(() => encodePcrBlob([sel], [[digest(1), digest(1, 20)]]), "values[0][1]");
    fails(() => encodePcrBlob([sel], []), "values");
    fails(() => encodePcrBlob([pcrSelection(SHA256, [24])], [[digest(1)]]), "pcrSelections[0].pcrSelect");
    fails(
      () => encodePcrBlob([{ hash: 0x99, pcrSelect: Uint8Array.of(1, 0, 0) }], [[digest(1)]]),
      "pcrSelections[0].hash",
    );
    const many = Array.from({ length: 17 }, () => pcrSelection(SHA256, []));
    fails(() => encodePcrBlob(many, many.map(() => [])), "TPML_PCR_SELECTION.count");
  });
});

describe("PCRBLOB properties", () => {
  const banks = [TPM_ALG.SHA1, TPM_ALG.SHA256, TPM_ALG.SHA384, TPM_ALG.SHA512] as const;
  const sizes: Record<number, number> = { [SHA1]: 20, [SHA256]: 32, [TPM_ALG.SHA384]: 48, [TPM_ALG.SHA512]: 64 };
  const blobArb = fc
    .uniqueArray(fc.constantFrom(...banks), { minLength: 0, maxLength: 4 })
    .chain((hs) =>
      fc.tuple(
        ...hs.map((h) =>
          fc.uniqueArray(fc.integer({ min: 0, max: 23 }), { maxLength: 24 }).chain((pcrs) =>
            fc.tuple(
              fc.constant(pcrSelection(h, pcrs)),
              fc.array(fc.uint8Array({ minLength: sizes[h]!, maxLength: sizes[h]! }), {
                minLength: pcrs.length,
                maxLength: pcrs.length,
              }),
            )
          )
        ),
      )
    );

  test("decode(encode(x)) = x and encode(decode(b)) = b", () => {
    fc.assert(
      fc.property(blobArb, (entries) => {
        const sels = entries.map(([s]) => s);
        const values = entries.map(([, v]) => v);
        const b = encodePcrBlob(sels, values);
        const back = decodePcrBlob(b);
        assert.deepEqual(back.values, values);
        assert.deepEqual(back.selections.map((s) => s.hash), sels.map((s) => s.hash));
        assert.equal(toHex(encodePcrBlob(back.selections, back.values)), toHex(b));
      }),
      { numRuns: 100 },
    );
  });

  const onlyOwnErrors = (bytes: Uint8Array) => {
    try {
      const blob = decodePcrBlob(bytes);
      // What decodes is canonical apart from the ignored C padding byte.
      const again = encodePcrBlob(blob.selections, blob.values);
      assert.equal(again.length, bytes.length);
    } catch (e) {
      if (!(e instanceof PcrBlobError)) throw new Error(`decodePcrBlob threw ${String(e)}`);
    }
  };

  test("random bytes raise only PcrBlobError", () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 2000 }), onlyOwnErrors), { numRuns: 300 });
  });

  test("valid blobs with random bytes changed raise only PcrBlobError", () => {
    const base = stateFile("quote.pcrs");
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat({ max: base.length - 1 }), fc.integer({ min: 0, max: 255 })), {
          minLength: 1,
          maxLength: 4,
        }),
        fc.integer({ min: -600, max: 600 }),
        (edits, resize) => {
          const b = base.slice();
          for (const [at, v] of edits) b[at] = v;
          const sized = resize >= 0 ? Uint8Array.of(...b, ...new Uint8Array(resize)) : b.slice(0, resize);
          onlyOwnErrors(b);
          onlyOwnErrors(sized);
        },
      ),
      { numRuns: 300 },
    );
  });
});

/**
 * Property tests over every declared structure and command: encode/decode round trips, decoding is
 * canonical (what decodes re-encodes to the same bytes), random or truncated bytes only ever raise
 * MarshalError naming the structure, and values of the wrong type never encode.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import * as structures from "../../src/tpm/structures.ts";
import { COMMANDS } from "../../src/tpm/commands.ts";
import { MarshalError } from "../../src/tpm/errors.ts";
import { type Codec, decode, encode } from "../../src/tpm/marshal.ts";
import { EK_TEMPLATES } from "../../src/tpm/templates.ts";
import { arbitraryFor } from "../helpers/arbitrary.ts";

const codecs: Codec<unknown>[] = (Object.values(structures) as unknown[]).filter(
  (v): v is Codec<unknown> => typeof v === "object" && v !== null && "shape" in v && "decode" in v,
);
for (const def of COMMANDS.values()) codecs.push(def.params as Codec<unknown>, def.response as Codec<unknown>);

const RUNS = 60;

function decodeOrMarshalError(codec: Codec<unknown>, bytes: Uint8Array): unknown {
  try {
    return { value: decode(codec, bytes) };
  } catch (e) {
    if (!(e instanceof MarshalError)) throw new Error(`${codec.name} threw ${String(e)} instead of MarshalError`);
    return { error: e };
  }
}

test("every structure in structures.ts is covered", () => {
  assert.ok(codecs.length > 150, `found ${codecs.length} codecs`);
  for (const name of ["TPMT_PUBLIC", "TPMS_ATTEST", "TPMT_SIGNATURE", "TPMS_CAPABILITY_DATA", "TPMT_SYM_DEF"]) {
    assert.ok(codecs.some((c) => c.name === name), name);
  }
});

describe("round trip: decode(encode(v)) = v", () => {
  for (const codec of codecs) {
    test(codec.name, () => {
      fc.assert(
        fc.property(arbitraryFor(codec), (v) => {
          assert.deepStrictEqual(decode(codec, encode(codec, v)), v);
        }),
        { numRuns: RUNS },
      );
    });
  }
});

describe("random bytes: MarshalError or a canonical decode", () => {
  for (const codec of codecs) {
    test(codec.name, () => {
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
          const r = decodeOrMarshalError(codec, bytes) as { value?: unknown };
          if ("value" in r) assert.deepStrictEqual(encode(codec, r.value), bytes, "decoding is canonical");
        }),
        { numRuns: RUNS },
      );
    });
  }
});

describe("mutated valid encodings: MarshalError or a canonical decode", () => {
  for (const codec of codecs) {
    test(codec.name, () => {
      fc.assert(
        fc.property(
          arbitraryFor(codec),
          fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 4 }),
          (v, flips) => {
            const bytes = encode(codec, v).slice();
            if (bytes.length === 0) return;
            for (const [at, x] of flips) bytes[at % bytes.length]! ^= x;
            const r = decodeOrMarshalError(codec, bytes) as { value?: unknown };
            if ("value" in r) assert.deepStrictEqual(encode(codec, r.value), bytes, "decoding is canonical");
          },
        ),
        { numRuns: RUNS },
      );
    });
  }
});

describe("truncated encodings raise MarshalError naming the structure and field", () => {
  // A structure without fields (TPM2_Clear's parameters, say) has no prefix to truncate to.
  const nonEmpty = codecs.filter((c) => c.shape.kind !== "struct" || c.shape.fields.length > 0);
  for (const codec of nonEmpty) {
    test(codec.name, () => {
      fc.assert(
        fc.property(arbitraryFor(codec), fc.nat(), (v, cut) => {
          const full = encode(codec, v);
          const short = full.subarray(0, cut % Math.max(full.length, 1));
          const r = decodeOrMarshalError(codec, short) as { error?: MarshalError };
          assert.ok(r.error, `a ${short.length}-byte prefix of ${full.length} bytes must not decode`);
          assert.ok(r.error.message.startsWith(`Cannot decode ${codec.name}`), r.error.message);
          assert.ok(r.error.structure, "names the structure");
          if (codec.shape.kind === "struct" && (codec.shape.fields.length > 0)) {
            assert.ok(r.error.fieldName, `names the field: ${r.error.message}`);
            assert.ok(r.error.message.includes(r.error.fieldName!), r.error.message);
          }
        }),
        { numRuns: RUNS },
      );
    });
  }
});

describe('values of the wrong type raise MarshalError "Cannot encode", never a TypeError or silent bytes', () => {
  const junk: [string, unknown][] = [["undefined", undefined], ["a string", "00"], ["1.5", 1.5], ["{}", {}], [
    "[{}]",
    [{}],
  ]];
  // A struct without fields (a command without parameters) and the empty codec take any value.
  const takesValues = codecs.filter((c) =>
    c.shape.kind !== "empty" && !(c.shape.kind === "struct" && c.shape.fields.length === 0)
  );
  for (const codec of takesValues) {
    test(codec.name, () => {
      for (const [label, v] of junk) {
        assert.throws(() => encode(codec, v), (e: unknown) => {
          assert.ok(e instanceof MarshalError, `${codec.name} given ${label} threw ${String(e)}`);
          assert.equal(e.direction, "encode");
          assert.match(e.message, /^Cannot encode /, `${codec.name} given ${label}`);
          return true;
        }, `${codec.name} given ${label}`);
      }
    });
  }
});

describe("error messages", () => {
  test("a byte field that is not bytes", () => {
    assert.throws(() => encode(structures.TPM2B_DIGEST, {} as Uint8Array), {
      name: "MarshalError",
      message: "Cannot encode TPM2B_DIGEST: an object is not a Uint8Array",
    });
  });

  test("a number too wide for its field, a missing field, a list that is not an array", () => {
    const pub = { ...EK_TEMPLATES.rsa, nameAlg: 0x10000 };
    assert.throws(() => encode(structures.TPMT_PUBLIC, pub), {
      message: "Cannot encode TPMT_PUBLIC.nameAlg > TPMI_ALG_HASH: 65536 is not a 16-bit unsigned integer",
    });
    const { objectAttributes: _, ...missing } = EK_TEMPLATES.rsa;
    assert.throws(() => encode(structures.TPMT_PUBLIC, missing as structures.TPMT_PUBLIC), {
      message: "Cannot encode TPMT_PUBLIC.objectAttributes: the field is missing",
    });
    assert.throws(() => encode(structures.TPML_PCR_SELECTION, { length: 1 } as never), {
      message: "Cannot encode TPML_PCR_SELECTION: an object is not an array",
    });
  });

  test("oversized TPM2B", () => {
    const bytes = new Uint8Array(2 + 80);
    bytes[1] = 80;
    assert.throws(() => decode(structures.TPM2B_DATA, bytes), {
      name: "MarshalError",
      message: "Cannot decode TPM2B_DATA: size 80 exceeds maximum 66",
    });
  });

  test("a truncated public area names the nested path", () => {
    const tmpl = encode(structures.TPMT_PUBLIC, {
      type: 0x0001,
      nameAlg: 0x000b,
      objectAttributes: 0x00050072,
      authPolicy: new Uint8Array(0),
      parameters: {
        symmetric: { algorithm: 0x0010, keyBits: null, mode: null, details: null },
        scheme: { scheme: 0x0014, details: { hashAlg: 0x000b } },
        keyBits: 2048,
        exponent: 0,
      },
      unique: new Uint8Array(256),
    });
    assert.throws(() => decode(structures.TPMT_PUBLIC, tmpl.subarray(0, 17)), (e: MarshalError) => {
      assert.equal(e.code, "ERR_TPM_MARSHAL");
      assert.equal(e.structure, "TPMI_RSA_KEY_BITS");
      assert.match(
        e.message,
        /^Cannot decode TPMT_PUBLIC\.parameters > TPMS_RSA_PARMS\.keyBits > TPMI_RSA_KEY_BITS: need 2 bytes/,
      );
      return true;
    });
  });

  test("an unknown union selector", () => {
    assert.throws(() => decode(structures.TPMT_SIGNATURE, Uint8Array.of(0x12, 0x34)), {
      message: /^Cannot decode TPMT_SIGNATURE\.signature: TPMU_SIGNATURE has no member for sigAlg 0x1234/,
    });
  });

  test("trailing bytes", () => {
    assert.throws(() => decode(structures.TPM2B_DIGEST, Uint8Array.of(0, 1, 0xaa, 0xbb)), {
      message: "Cannot decode TPM2B_DIGEST: 1 trailing byte after TPM2B_DIGEST",
    });
  });
});

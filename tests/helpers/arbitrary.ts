/**
 * fast-check arbitraries derived from a codec's declared shape, so every structure gets property
 * tests without a second, hand-written description that could drift from the declaration.
 */
import fc from "fast-check";
import type { Codec, Field, UnionField } from "../../src/tpm/marshal.ts";

const cache = new WeakMap<object, fc.Arbitrary<unknown>>();

/** Lists are kept short: the property is about structure, not volume. */
const LIST_CAP = 3;

export function arbitraryFor(codec: Codec<unknown>): fc.Arbitrary<unknown> {
  let arb = cache.get(codec);
  if (!arb) {
    arb = build(codec);
    cache.set(codec, arb);
  }
  return arb;
}

function isUnion(f: Field<unknown>): f is UnionField<unknown> {
  return (f as UnionField<unknown>).union !== undefined;
}

function build(codec: Codec<unknown>): fc.Arbitrary<unknown> {
  const s = codec.shape;
  switch (s.kind) {
    case "uint":
      if (s.values) return fc.constantFrom(...s.values);
      if (s.bits === 64) return fc.bigInt({ min: 0n, max: 0xffff_ffff_ffff_ffffn });
      if (s.signed) return fc.integer({ min: -0x80000000, max: 0x7fffffff });
      return fc.integer({ min: 0, max: 2 ** s.bits - 1 });
    case "bool":
      return fc.boolean();
    case "bits":
      return fc.integer({ min: 0, max: 2 ** s.bits - 1 });
    case "fixed":
      return fc.uint8Array({ minLength: s.length, maxLength: s.length });
    case "bytes":
      return fc.uint8Array({ maxLength: Math.min(s.max, 96) });
    case "sized": {
      const inner = arbitraryFor(s.inner);
      return s.optional ? fc.option(inner, { nil: null }) : inner;
    }
    case "list":
      return fc.array(arbitraryFor(s.inner), { maxLength: Math.min(s.max, LIST_CAP) });
    case "empty":
      return fc.constant(null);
    case "struct":
      return structArbitrary(s.fields);
  }
}

function structArbitrary(fields: readonly (readonly [string, Field<unknown>])[]): fc.Arbitrary<unknown> {
  // A selector may only take values every union keyed on it has a member for.
  const selectorValues = new Map<string, number[]>();
  for (const [, f] of fields) {
    if (!isUnion(f)) continue;
    const keys = [...f.cases.keys()];
    const prev = selectorValues.get(f.selector);
    selectorValues.set(f.selector, prev ? prev.filter((k) => keys.includes(k)) : keys);
  }
  const plain: Record<string, fc.Arbitrary<unknown>> = {};
  for (const [key, f] of fields) {
    if (isUnion(f)) continue;
    const allowed = selectorValues.get(key);
    plain[key] = allowed ? fc.constantFrom(...allowed) : arbitraryFor(f);
  }
  const unions = fields.filter(([, f]) => isUnion(f)) as [string, UnionField<unknown>][];
  return fc.record(plain).chain((base) => {
    if (unions.length === 0) return fc.constant(orderLike(fields, base));
    const members = unions.map(([, u]) => arbitraryFor(u.cases.get(base[u.selector] as number)!));
    return fc.tuple(...members).map((vals) => {
      const o: Record<string, unknown> = { ...base };
      unions.forEach(([key], i) => (o[key] = vals[i]));
      return orderLike(fields, o);
    });
  });
}

/** Same key order as a decoded value, so deepStrictEqual compares like with like. */
function orderLike(fields: readonly (readonly [string, unknown])[], o: Record<string, unknown>) {
  const out: Record<string, unknown> = {};
  for (const [k] of fields) out[k] = o[k];
  return out;
}

/**
 * TPM 2.0 marshalling (Part 1 §18, Part 2 §4-§5): a Reader, a Writer and codec combinators.
 *
 * Every structure and command is declared once with these combinators; the same declaration encodes
 * and decodes in both directions (client and simulator). Each codec also carries a `shape` that
 * describes it, so tests can walk every declaration (property tests, arbitraries) without a second
 * hand-written description.
 *
 * Decoders are strict: sizes are checked against declared maxima, selectors against the declared
 * cases, and a TPM2B wrapping a structure must be consumed exactly. Encoders check their input: a byte
 * field must be a Uint8Array, a number must fit its width, a struct must have every field and a list
 * must be an array. Failures raise MarshalError whose message says "Cannot decode" or "Cannot encode"
 * and names the structure and field path.
 */
import { hex, nameOf } from "./constants.ts";
import { MarshalError, type MarshalFault } from "./errors.ts";

/** Byte reader over an untrusted buffer; never reads past `end`. */
export class Reader {
  readonly buf: Uint8Array;
  offset: number;
  readonly end: number;
  private readonly view: DataView;

  /** Whether bytes() returns views into `buf` rather than copies (see DecodeOptions.alias). */
  readonly alias: boolean;

  constructor(buf: Uint8Array, offset = 0, end = buf.length, alias = false) {
    this.buf = buf;
    this.offset = offset;
    this.end = end;
    this.alias = alias;
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  get remaining(): number {
    return this.end - this.offset;
  }

  private need(n: number): number {
    if (this.end - this.offset < n) {
      throw new MarshalError(
        `need ${n} byte${n === 1 ? "" : "s"} at offset ${this.offset}, ${this.end - this.offset} left`,
        "insufficient",
      );
    }
    const at = this.offset;
    this.offset += n;
    return at;
  }

  u8(): number {
    return this.view.getUint8(this.need(1));
  }
  u16(): number {
    return this.view.getUint16(this.need(2));
  }
  u32(): number {
    return this.view.getUint32(this.need(4));
  }
  i32(): number {
    return this.view.getInt32(this.need(4));
  }
  u64(): bigint {
    return this.view.getBigUint64(this.need(8));
  }
  /** A copy, so decoded values never alias the caller's buffer, unless this reader aliases. */
  bytes(n: number): Uint8Array {
    const at = this.need(n);
    return this.alias ? this.buf.subarray(at, at + n) : this.buf.slice(at, at + n);
  }
  /** A reader over the next `n` bytes; this reader moves past them. */
  sub(n: number): Reader {
    const at = this.need(n);
    return new Reader(this.buf, at, at + n, this.alias);
  }
}

/** Growable big-endian writer. */
export class Writer {
  private buf: Uint8Array;
  private view: DataView;
  length = 0;

  constructor(initial = 256) {
    this.buf = new Uint8Array(initial);
    this.view = new DataView(this.buf.buffer);
  }

  private room(n: number): number {
    const at = this.length;
    if (at + n > this.buf.length) {
      let size = this.buf.length * 2;
      while (size < at + n) size *= 2;
      const next = new Uint8Array(size);
      next.set(this.buf.subarray(0, at));
      this.buf = next;
      this.view = new DataView(next.buffer);
    }
    this.length = at + n;
    return at;
  }

  u8(v: number): void {
    const at = this.room(1); // grows (replaces) view first
    this.view.setUint8(at, v);
  }
  u16(v: number): void {
    const at = this.room(2); // grows (replaces) view first
    this.view.setUint16(at, v);
  }
  u32(v: number): void {
    const at = this.room(4); // grows (replaces) view first
    this.view.setUint32(at, v);
  }
  i32(v: number): void {
    const at = this.room(4); // grows (replaces) view first
    this.view.setInt32(at, v);
  }
  u64(v: bigint): void {
    const at = this.room(8); // grows (replaces) view first
    this.view.setBigUint64(at, v);
  }
  bytes(b: Uint8Array): void {
    const at = this.room(b.length); // grows (replaces) buf first
    this.buf.set(b, at);
  }
  /** Reserve a u16/u32 length slot; returns a function that back-fills it with the bytes written since. */
  lengthSlot(width: 2 | 4): () => number {
    const at = this.room(width);
    return () => {
      const n = this.length - at - width;
      if (width === 2) this.view.setUint16(at, n);
      else this.view.setUint32(at, n);
      return n;
    };
  }
  finish(): Uint8Array {
    return this.buf.slice(0, this.length);
  }
}

/** What a codec is, for tests and tools that walk declarations. */
export type Shape =
  | { kind: "uint"; bits: 8 | 16 | 32 | 64; signed?: boolean; values?: readonly number[] }
  | { kind: "bool" }
  | { kind: "bits"; bits: 8 | 16 | 32; fields: Readonly<Record<string, number>> }
  | { kind: "fixed"; length: number }
  | { kind: "bytes"; sizeBits: 8 | 16; max: number }
  | { kind: "sized"; sizeBits: 16; inner: Codec<unknown>; optional: boolean }
  | { kind: "list"; inner: Codec<unknown>; max: number }
  | { kind: "struct"; fields: readonly (readonly [string, Field<unknown>])[] }
  | { kind: "empty" };

export interface Codec<T> {
  /** TCG name, used in error messages. */
  readonly name: string;
  readonly shape: Shape;
  encode(w: Writer, v: T): void;
  decode(r: Reader): T;
}

/** The TypeScript type a codec produces. */
export type Infer<C> = C extends Codec<infer T> ? T : never;

/**
 * A struct field: a plain codec, or a union member whose codec is picked by an earlier field's value
 * (the TPMU_* unions, whose selector lives in the enclosing TPMT_*).
 */
export type Field<T> = Codec<T> | UnionField<T>;

/** Cases of a union by selector value, as declared. */
export type UnionCases = Readonly<Record<number, Codec<unknown>>>;

export interface UnionField<T, C extends UnionCases = UnionCases> {
  readonly union: string;
  readonly selector: string;
  readonly cases: ReadonlyMap<number, Codec<unknown>>;
  /** Names of selector values for messages (a constants table such as TPM_ALG). */
  readonly names: Readonly<Record<string, number>> | undefined;
  /** The value's TypeScript type and the declared cases, for types only; never read at run time. */
  readonly _type?: T;
  readonly _cases?: C;
}

function isUnion(f: Field<unknown>): f is UnionField<unknown> {
  return (f as UnionField<unknown>).union !== undefined;
}

export type FieldType<F> = F extends Codec<infer T> ? T : F extends UnionField<infer T> ? T : never;

// ---- encode/decode entry points ---------------------------------------------------------------

/** Marshal one value. */
export function encode<T>(codec: Codec<T>, v: T): Uint8Array {
  const w = new Writer();
  try {
    codec.encode(w, v);
  } catch (e) {
    throw e instanceof MarshalError ? e : MarshalError.wrap(e, "encode").at(codec.name);
  }
  return w.finish();
}

/** An encoder's refusal of its input, at codec `name`. */
function refuse(name: string, reason: string, fault: MarshalFault = "value"): MarshalError {
  return new MarshalError(reason, fault, "encode").at(name);
}

/** What a value is, for messages: its kind and size, never its content (a byte field may be a secret). */
export function describeValue(v: unknown): string {
  if (v === undefined) return "nothing (undefined)";
  if (v === null) return "null";
  if (typeof v === "number" || typeof v === "boolean") return String(v);
  if (typeof v === "bigint") return `${v}n`;
  if (v instanceof Uint8Array) return `a ${v.length}-byte Uint8Array`;
  if (Array.isArray(v)) return `an array of ${v.length}`;
  return typeof v === "object" ? "an object" : `a ${typeof v}`;
}

export interface DecodeOptions {
  /**
   * Return byte fields as views into `bytes` instead of copies. Only for a buffer the caller owns
   * and never changes afterwards (the client's response buffers): it saves an allocation per field.
   */
  alias?: boolean;
}

/** Unmarshal one value that must take exactly all of `bytes`. */
export function decode<T>(codec: Codec<T>, bytes: Uint8Array, options: DecodeOptions = {}): T {
  const r = new Reader(bytes, 0, bytes.length, options.alias === true);
  const v = decodeNamed(codec, r);
  if (r.remaining !== 0) {
    throw new MarshalError(`${r.remaining} trailing byte${r.remaining === 1 ? "" : "s"} after ${codec.name}`, "size")
      .at(codec.name);
  }
  return v;
}

/** Decode and, on failure, put this codec's name at the head of the error's path. */
export function decodeNamed<T>(codec: Codec<T>, r: Reader): T {
  try {
    return codec.decode(r);
  } catch (e) {
    throw MarshalError.wrap(e).at(codec.name);
  }
}

// ---- primitives -------------------------------------------------------------------------------

function uint(name: string, bits: 8 | 16 | 32, values?: readonly number[]): Codec<number> {
  const max = 2 ** bits - 1;
  const allowed = values ? new Set(values) : undefined;
  const read = bits === 8 ? (r: Reader) => r.u8() : bits === 16 ? (r: Reader) => r.u16() : (r: Reader) => r.u32();
  const write = bits === 8
    ? (w: Writer, v: number) => w.u8(v)
    : bits === 16
    ? (w: Writer, v: number) => w.u16(v)
    : (w: Writer, v: number) => w.u32(v);
  return {
    name,
    shape: values ? { kind: "uint", bits, values } : { kind: "uint", bits },
    encode(w, v) {
      if (!Number.isInteger(v) || v < 0 || v > max) {
        throw refuse(name, `${describeValue(v)} is not a ${bits}-bit unsigned integer`);
      }
      write(w, v);
    },
    decode(r) {
      const v = read(r);
      if (allowed && !allowed.has(v)) {
        throw new MarshalError(`value 0x${v.toString(16)} is not allowed`, "value");
      }
      return v;
    },
  };
}

export const u8: Codec<number> = uint("UINT8", 8);
export const u16: Codec<number> = uint("UINT16", 16);
export const u32: Codec<number> = uint("UINT32", 32);

export const i32: Codec<number> = {
  name: "INT32",
  shape: { kind: "uint", bits: 32, signed: true },
  encode(w, v) {
    if (!Number.isInteger(v) || v < -0x80000000 || v > 0x7fffffff) {
      throw refuse("INT32", `${describeValue(v)} is not a 32-bit signed integer`);
    }
    w.i32(v);
  },
  decode: (r) => r.i32(),
};

export const u64: Codec<bigint> = {
  name: "UINT64",
  shape: { kind: "uint", bits: 64 },
  encode(w, v) {
    if (typeof v !== "bigint" || v < 0n || v > 0xffff_ffff_ffff_ffffn) {
      throw refuse("UINT64", `${describeValue(v)} is not a 64-bit unsigned integer (a bigint)`);
    }
    w.u64(v);
  },
  decode: (r) => r.u64(),
};

/** A named integer type (TPM_ALG_ID, TPM_HANDLE, TPM_ST ...), optionally restricted to listed values. */
export function alias(name: string, base: 8 | 16 | 32, values?: readonly number[]): Codec<number> {
  return uint(name, base, values);
}

/** TPMI_YES_NO (Part 2 §9.2): a byte that must be 0 or 1. */
export const TPMI_YES_NO: Codec<boolean> = {
  name: "TPMI_YES_NO",
  shape: { kind: "bool" },
  encode(w, v) {
    if (typeof v !== "boolean") throw refuse("TPMI_YES_NO", `${describeValue(v)} is not a boolean`);
    w.u8(v ? 1 : 0);
  },
  decode(r) {
    const v = r.u8();
    if (v > 1) throw new MarshalError(`value ${v} is not YES (1) or NO (0)`, "value");
    return v === 1;
  },
};

/**
 * A TPMA_* attribute set. Bits are declared by their position in the spec table; the value stays the
 * raw integer so reserved bits survive a round trip. Helpers build and test values by name.
 */
export interface BitsCodec<N extends string> extends Codec<number> {
  readonly bit: Readonly<Record<N, number>>;
  /** The integer with the named bits set. */
  of(...names: N[]): number;
  has(v: number, name: N): boolean;
  /** Names of the set bits, for display. */
  names(v: number): N[];
}

export function bits<N extends string>(
  name: string,
  width: 8 | 16 | 32,
  positions: Readonly<Record<N, number>>,
): BitsCodec<N> {
  const base = uint(name, width);
  const mask = (n: N) => 2 ** positions[n];
  const entries = Object.entries(positions) as [N, number][];
  return {
    name,
    shape: { kind: "bits", bits: width, fields: positions },
    bit: positions,
    encode: base.encode,
    decode: base.decode,
    of: (...names) => names.reduce((v, n) => v + (Math.floor(v / mask(n)) % 2 ? 0 : mask(n)), 0),
    has: (v, n) => Math.floor(v / mask(n)) % 2 === 1,
    names: (v) => entries.filter(([n]) => Math.floor(v / mask(n)) % 2 === 1).map(([n]) => n),
  };
}

/** Exactly `length` bytes (a TPM_GENERATED magic, a PCR select bitmap of fixed width). */
export function fixed(name: string, length: number): Codec<Uint8Array> {
  return {
    name,
    shape: { kind: "fixed", length },
    encode(w, v) {
      if (!(v instanceof Uint8Array)) throw refuse(name, `${describeValue(v)} is not a Uint8Array`);
      if (v.length !== length) throw refuse(name, `expected ${length} bytes, got ${v.length}`, "size");
      w.bytes(v);
    },
    decode: (r) => r.bytes(length),
  };
}

/** A byte buffer with a u16 (TPM2B_*) or u8 (TPMS_PCR_SELECT) size prefix and a maximum size. */
export function sizedBytes(name: string, max: number, sizeBits: 8 | 16 = 16): Codec<Uint8Array> {
  return {
    name,
    shape: { kind: "bytes", sizeBits, max },
    encode(w, v) {
      if (!(v instanceof Uint8Array)) throw refuse(name, `${describeValue(v)} is not a Uint8Array`);
      if (v.length > max) throw refuse(name, `size ${v.length} exceeds maximum ${max}`, "size");
      if (sizeBits === 8) w.u8(v.length);
      else w.u16(v.length);
      w.bytes(v);
    },
    decode(r) {
      const n = sizeBits === 8 ? r.u8() : r.u16();
      if (n > max) throw new MarshalError(`size ${n} exceeds maximum ${max}`, "size");
      return r.bytes(n);
    },
  };
}

/**
 * A TPM2B that wraps a structure (TPM2B_PUBLIC, TPM2B_ATTEST ...). The size must match the
 * structure exactly. `optional` declarations (the spec's "+" on a size) decode size 0 as null.
 */
export function sized<T>(name: string, inner: Codec<T>): Codec<T>;
export function sized<T>(name: string, inner: Codec<T>, opts: { optional: true }): Codec<T | null>;
export function sized<T>(name: string, inner: Codec<T>, opts?: { optional: true }): Codec<T | null> {
  const optional = opts?.optional === true;
  return {
    name,
    shape: { kind: "sized", sizeBits: 16, inner: inner as Codec<unknown>, optional },
    encode(w, v) {
      if (v === null) {
        if (!optional) throw refuse(name, `${inner.name} is required`);
        w.u16(0);
        return;
      }
      const fill = w.lengthSlot(2);
      inner.encode(w, v);
      if (fill() > 0xffff) throw refuse(name, `size exceeds 65535`, "size");
    },
    decode(r) {
      const n = r.u16();
      if (n === 0) {
        if (optional) return null;
        throw new MarshalError(`size is 0 but ${inner.name} is required`, "size");
      }
      const sub = r.sub(n);
      const v = decodeNamed(inner, sub);
      if (sub.remaining !== 0) {
        throw new MarshalError(`size ${n} leaves ${sub.remaining} byte(s) after ${inner.name}`, "size");
      }
      return v;
    },
  };
}

/** A TPML_* list: u32 count, then that many elements; count above `max` is rejected before reading. */
export function list<T>(name: string, inner: Codec<T>, max: number): Codec<T[]> {
  return {
    name,
    shape: { kind: "list", inner: inner as Codec<unknown>, max },
    encode(w, v) {
      if (!Array.isArray(v)) throw refuse(name, `${describeValue(v)} is not an array`);
      if (v.length > max) throw refuse(name, `count ${v.length} exceeds maximum ${max}`, "size");
      w.u32(v.length);
      for (let i = 0; i < v.length; i++) {
        try {
          inner.encode(w, v[i] as T);
        } catch (e) {
          throw MarshalError.wrap(e, "encode").at(name, `[${i}]`);
        }
      }
    },
    decode(r) {
      const n = r.u32();
      if (n > max) throw new MarshalError(`count ${n} exceeds maximum ${max}`, "size");
      const out: T[] = new Array(n);
      for (let i = 0; i < n; i++) {
        try {
          out[i] = decodeNamed(inner, r);
        } catch (e) {
          throw MarshalError.wrap(e).field(`[${i}]`);
        }
      }
      return out;
    },
  };
}

/** Reads and writes nothing: the value of a union member whose selector is NULL. */
export const empty: Codec<null> = {
  name: "empty",
  shape: { kind: "empty" },
  encode() {},
  decode: () => null,
};

/**
 * A TPMU_* member of a struct, chosen by the value of an earlier field `selector`.
 * An unlisted selector is a decode error ("selector"), as the TPM's TPM_RC_SELECTOR.
 */
export function union<C extends UnionCases>(
  name: string,
  selector: string,
  cases: C,
  names?: Readonly<Record<string, number>>,
): UnionField<Infer<C[keyof C]>, C> {
  const map = new Map<number, Codec<unknown>>();
  for (const [k, c] of Object.entries(cases)) map.set(Number(k), c);
  return { union: name, selector, cases: map, names };
}

export type StructType<F extends Record<string, Field<unknown>>> = { [K in keyof F]: FieldType<F[K]> };

/** A struct codec that keeps its field declarations, so checked union accessors can be derived from it. */
export interface StructCodec<F extends Record<string, Field<unknown>>> extends Codec<StructType<F>> {
  readonly fields: F;
}

/** A TPMS_/TPMT_ structure: fields in declaration order. */
export function struct<F extends Record<string, Field<unknown>>>(name: string, fields: F): StructCodec<F> {
  const entries = Object.entries(fields) as [string, Field<unknown>][];
  type V = Record<string, unknown>;
  const pick = (f: UnionField<unknown>, sel: unknown, op: "decode" | "encode"): Codec<unknown> => {
    const c = f.cases.get(sel as number);
    if (!c) {
      const shown = typeof sel === "number" ? hex(sel) : String(sel);
      throw new MarshalError(`${f.union} has no member for ${f.selector} ${shown} (${op})`, "selector", op);
    }
    return c;
  };
  return {
    name,
    fields,
    shape: { kind: "struct", fields: entries },
    encode(w, v) {
      if (typeof v !== "object" || v === null) throw refuse(name, `${describeValue(v)} is not a ${name} structure`);
      const o = v as V;
      for (const [key, f] of entries) {
        try {
          const c = isUnion(f) ? pick(f, o[f.selector], "encode") : f;
          const x = o[key];
          // Only an empty union member (a NULL selector's) may be left out.
          if (x === undefined && c !== empty) throw new MarshalError("the field is missing", "value", "encode");
          c.encode(w, x);
        } catch (e) {
          throw MarshalError.wrap(e, "encode").at(name, key);
        }
      }
    },
    decode(r) {
      const o: V = {};
      for (const [key, f] of entries) {
        try {
          o[key] = decodeNamed(isUnion(f) ? pick(f, o[f.selector], "decode") : f, r);
        } catch (e) {
          throw MarshalError.wrap(e).field(key);
        }
      }
      return o as StructType<F>;
    },
  };
}

/** The names of a struct's fields that are unions. */
type UnionKeys<F> = { [K in keyof F]: F[K] extends UnionField<unknown> ? K : never }[keyof F] & string;
type CasesOf<U> = U extends UnionField<unknown, infer C> ? C : never;

/**
 * A checked accessor for union field `field` of struct `codec`: it returns the member when the
 * selector is one of `selectors` (typed as exactly that member) and raises MarshalError ("selector")
 * naming the union and the selector otherwise. Declared beside each union instead of casting members.
 */
export function member<
  F extends Record<string, Field<unknown>>,
  K extends UnionKeys<F>,
  S extends keyof CasesOf<F[K]> & number,
>(codec: StructCodec<F>, field: K, ...selectors: [S, ...S[]]): (v: StructType<F>) => Infer<CasesOf<F[K]>[S]> {
  const u = codec.fields[field] as UnionField<unknown>;
  const allowed: ReadonlySet<number> = new Set(selectors);
  const label = (v: unknown) => {
    if (typeof v !== "number") return String(v);
    const name = u.names && nameOf(u.names, v);
    return name ? `${name} (${hex(v)})` : hex(v);
  };
  const wanted = selectors.map(label).join(" or ");
  return (v) => {
    const sel = (v as Record<string, unknown>)[u.selector];
    if (typeof sel !== "number" || !allowed.has(sel)) {
      throw new MarshalError(
        `${u.union} member ${codec.name}.${field} read as ${wanted}, but ${u.selector} is ${label(sel)}`,
        "selector",
      );
    }
    return v[field] as Infer<CasesOf<F[K]>[S]>;
  };
}

export type { MarshalFault };

/**
 * Declare-once validators for JSON bodies (the marshal.ts idea applied to JSON). A shape declared once
 * with `object({...})` gives the TypeScript type (`Infer`), the parser of untrusted JSON (every field
 * checked, sizes bounded, errors naming the field: `aik_tpm: not base64 (or hex)`) and the encoder a client
 * uses to build the body (`toJson`). Unknown fields are ignored, as upstream's models ignore them.
 */
import { fromBase64, fromHex, toBase64 } from "../util/encoding.ts";

export interface FieldIssue {
  /** Dotted path from the body's root, e.g. `aik_tpm` or `results.uuids[3]`. */
  path: string;
  reason: string;
}

/** Untrusted input that does not have the declared shape. The message lists every field at fault. */
export class ProtocolInputError extends Error {
  readonly code = "ERR_PROTOCOL_INPUT";
  readonly issues: readonly FieldIssue[];

  constructor(issues: FieldIssue[]) {
    super(issues.map((i) => (i.path ? `${i.path}: ${i.reason}` : i.reason)).join("; "));
    this.name = "ProtocolInputError";
    this.issues = issues;
  }

  /** The same issues one level down, e.g. under `results`. */
  under(prefix: string): ProtocolInputError {
    return new ProtocolInputError(this.issues.map((i) => ({ path: join(prefix, i.path), reason: i.reason })));
  }

  /** The first field at fault. */
  get field(): string {
    return this.issues[0]?.path ?? "";
  }

  /** One issue, e.g. `new ProtocolInputError.at("aik_tpm", "is not a restricted signing key")`. */
  static at(path: string, reason: string): ProtocolInputError {
    return new ProtocolInputError([{ path, reason }]);
  }
}

/** A request body over the limit, as the agent's and the registrar's apps refuse it. */
export function bodyTooLarge(maxBytes: number): never {
  throw ProtocolInputError.at("", `the request body is larger than ${maxBytes} bytes`);
}

function join(prefix: string, path: string): string {
  if (!path) return prefix;
  return path.startsWith("[") ? prefix + path : `${prefix}.${path}`;
}

/** A field parser refuses its value by throwing this; the object parser adds the path. */
export class FieldReject extends Error {}

export interface Field<T, Optional extends boolean = boolean> {
  readonly optional: Optional;
  /** What the field holds, for messages and documentation. */
  readonly doc: string;
  /** Parse a JSON value; `undefined` means empty (absent, null or ""), which only optional fields accept. */
  parse(v: unknown): T | undefined;
  toJson(v: T): unknown;
}

export type Shape = Record<string, Field<unknown>>;
type Out<F> = F extends Field<infer T> ? T : never;
type OptionalKeys<S extends Shape> = { [K in keyof S]: S[K] extends Field<unknown, true> ? K : never }[keyof S];
type Simplify<T> = { [K in keyof T]: T[K] } & unknown;
/** The TypeScript type of a shape: optional fields are optional properties. */
export type Infer<S extends Shape> = Simplify<
  & { [K in Exclude<keyof S, OptionalKeys<S>>]: Out<S[K]> }
  & { [K in OptionalKeys<S>]?: Out<S[K]> }
>;

export interface ShapeOf<S extends Shape> extends Field<Infer<S>, false> {
  readonly fields: S;
  /** Parse, throwing ProtocolInputError with every field at fault. */
  parse(v: unknown): Infer<S>;
  toJson(v: Infer<S>): Record<string, unknown>;
}

const kindOf = (v: unknown) => (v === null ? "null" : Array.isArray(v) ? "an array" : `a ${typeof v}`);

/** A JSON object with the declared fields; other keys are ignored. */
export function object<S extends Shape>(fields: S): ShapeOf<S> {
  return {
    optional: false,
    fields,
    doc: "an object",
    parse(v: unknown): Infer<S> {
      if (typeof v !== "object" || v === null || Array.isArray(v)) {
        throw ProtocolInputError.at("", `expected a JSON object, got ${kindOf(v)}`);
      }
      const issues: FieldIssue[] = [];
      const out: Record<string, unknown> = {};
      for (const [key, field] of Object.entries(fields)) {
        const raw = Object.hasOwn(v, key) ? (v as Record<string, unknown>)[key] : undefined;
        try {
          const parsed = field.parse(raw);
          if (parsed !== undefined) out[key] = parsed;
          else if (!field.optional) issues.push({ path: key, reason: "is required" });
        } catch (e) {
          if (e instanceof ProtocolInputError) issues.push(...e.under(key).issues);
          else if (e instanceof FieldReject) issues.push({ path: key, reason: e.message });
          else throw e;
        }
      }
      if (issues.length) throw new ProtocolInputError(issues);
      return out as Infer<S>;
    },
    toJson(value: Infer<S>): Record<string, unknown> {
      const out: Record<string, unknown> = {};
      for (const [key, field] of Object.entries(fields)) {
        const x = (value as Record<string, unknown>)[key];
        if (x !== undefined) out[key] = field.toJson(x);
      }
      return out;
    },
  };
}

/** The same field, accepting absence, `null` and "" (upstream casts each of them to None). */
export function optional<T>(field: Field<T>): Field<T, true> {
  return {
    ...field,
    optional: true,
    doc: `${field.doc} (optional)`,
    parse: (v) => (v === undefined || v === null ? undefined : field.parse(v)),
  };
}

export interface TextOptions {
  max: number;
  pattern?: RegExp;
  /** What the pattern means, for the message ("96 lowercase hex digits"). */
  expect?: string;
  allowEmpty?: boolean;
}

/** A JSON string of at most `max` characters; "" is empty unless allowed. */
export function text(o: TextOptions): Field<string, false> {
  return {
    optional: false,
    doc: o.expect ?? `a string of at most ${o.max} characters`,
    parse(v) {
      if (typeof v !== "string") {
        if (v === undefined) return undefined;
        throw new FieldReject(`expected a string, got ${kindOf(v)}`);
      }
      if (v === "" && !o.allowEmpty) return undefined;
      if (v.length > o.max) throw new FieldReject(`longer than ${o.max} characters`);
      if (o.pattern && !o.pattern.test(v)) throw new FieldReject(`not ${o.expect ?? `matching ${o.pattern}`}`);
      return v;
    },
    toJson: (v) => v,
  };
}

/** A JSON integer (or a string of decimal digits, which upstream's Integer type also casts). */
export function integer(o: { min: number; max: number }): Field<number, false> {
  return {
    optional: false,
    doc: `an integer from ${o.min} to ${o.max}`,
    parse(v) {
      if (v === undefined || v === "") return undefined;
      const n = typeof v === "string" && /^[0-9]{1,10}$/.test(v) ? Number(v) : v;
      if (typeof n !== "number" || !Number.isInteger(n)) throw new FieldReject(`expected an integer, got ${kindOf(v)}`);
      if (n < o.min || n > o.max) throw new FieldReject(`${n} is outside ${o.min}..${o.max}`);
      return n;
    },
    toJson: (v) => v,
  };
}

export function boolean(): Field<boolean, false> {
  return {
    optional: false,
    doc: "true or false",
    parse(v) {
      if (v === undefined) return undefined;
      if (typeof v !== "boolean") throw new FieldReject(`expected true or false, got ${kindOf(v)}`);
      return v;
    },
    toJson: (v) => v,
  };
}

const HEX = /^(?:0x)?((?:[0-9a-fA-F]{2})*)$/;

/**
 * Bytes as strict base64 (standard alphabet, `=` padding), with hex (optionally `0x`-prefixed) as the
 * fallback, as upstream's Binary type casts them (keylime/models/base/types/binary.py). Sent as base64.
 */
export function binary(o: { maxBytes: number }): Field<Uint8Array, false> {
  return {
    optional: false,
    doc: `base64 bytes (hex accepted), at most ${o.maxBytes} bytes`,
    parse(v) {
      if (v === undefined || v === "") return undefined;
      if (typeof v !== "string") throw new FieldReject(`expected a base64 string, got ${kindOf(v)}`);
      // 4/3 of the byte limit, plus the hex form's 2x: refuse before decoding anything large.
      if (v.length > 2 * o.maxBytes + 2) throw new FieldReject(`longer than ${o.maxBytes} bytes`);
      let bytes: Uint8Array;
      try {
        bytes = fromBase64(v, { canonical: false });
      } catch {
        const hex = HEX.exec(v);
        if (!hex) throw new FieldReject("not base64 (or hex)");
        bytes = fromHex(hex[1]!);
      }
      if (bytes.length > o.maxBytes) throw new FieldReject(`${bytes.length} bytes is more than ${o.maxBytes}`);
      return bytes;
    },
    toJson: (v) => toBase64(v),
  };
}

/** A JSON array of at most `max` elements, each checked by `item`. */
export function array<T>(item: Field<T>, o: { max: number }): Field<T[], false> {
  return {
    optional: false,
    doc: `a list of at most ${o.max} ${item.doc}`,
    parse(v) {
      if (v === undefined) return undefined;
      if (!Array.isArray(v)) throw new FieldReject(`expected an array, got ${kindOf(v)}`);
      if (v.length > o.max) throw new FieldReject(`more than ${o.max} elements`);
      const issues: FieldIssue[] = [];
      const out = v.map((x, i) => {
        try {
          const parsed = item.parse(x);
          if (parsed === undefined) issues.push({ path: `[${i}]`, reason: "is empty" });
          return parsed as T;
        } catch (e) {
          if (e instanceof FieldReject) issues.push({ path: `[${i}]`, reason: e.message });
          else if (e instanceof ProtocolInputError) issues.push(...e.under(`[${i}]`).issues);
          else throw e;
          return undefined as T;
        }
      });
      if (issues.length) throw new ProtocolInputError(issues);
      return out;
    },
    toJson: (v) => v.map((x) => item.toJson(x)),
  };
}

/**
 * A field whose parsed value is converted further (e.g. bytes decoded as a TPM structure); a throw from
 * `to` refuses the field with that error's message.
 */
export function refine<A, B>(
  field: Field<A, false>,
  doc: string,
  to: (a: A) => B,
  from: (b: B) => A,
): Field<B, false> {
  return {
    optional: false,
    doc,
    parse(v) {
      const a = field.parse(v);
      if (a === undefined) return undefined;
      try {
        return to(a);
      } catch (e) {
        if (e instanceof FieldReject || e instanceof ProtocolInputError) throw e;
        throw new FieldReject(e instanceof Error ? e.message : String(e));
      }
    },
    toJson: (b) => field.toJson(from(b)),
  };
}

/** One field on its own (a path parameter): empty or refused is a ProtocolInputError naming `path`. */
export function parseField<T>(path: string, field: Field<T>, v: unknown): T {
  let out: T | undefined;
  try {
    out = field.parse(v);
  } catch (e) {
    if (e instanceof FieldReject) throw ProtocolInputError.at(path, e.message);
    throw e instanceof ProtocolInputError ? e.under(path) : e;
  }
  if (out === undefined) throw ProtocolInputError.at(path, "is required");
  return out;
}

/** Parse a request body's text: not JSON, or not the shape, is a ProtocolInputError. */
export function parseJsonText<S extends Shape>(shape: ShapeOf<S>, body: string): Infer<S> {
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    throw ProtocolInputError.at("", "the body is not JSON");
  }
  return shape.parse(json);
}

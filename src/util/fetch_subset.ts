/**
 * Headers, Request and Response: the part of the fetch API a Hono app and fetch_listener.ts use, for a
 * process that serves HTTP and never fetches. Node builds its own classes from undici the first time one of
 * these globals is read, which costs an agent about 5 MiB of resident memory (docs/binary.md); the agent
 * process installs these instead (installFetchSubset).
 *
 * Bodies are kept as given (text, bytes or a ReadableStream), so fetch_listener.ts writes them without a
 * stream in between (bodyInitOf). Not here: FormData, Blob bodies, clone(), signals, redirects.
 */
import { Buffer } from "node:buffer";

export type SubsetBody = string | Uint8Array | ArrayBuffer | ReadableStream<Uint8Array>;
type HeaderPairs = Iterable<readonly [string, string]>;
export type SubsetHeadersInit = HeaderPairs | Record<string, string> | {
  forEach(cb: (v: string, k: string) => void): void;
};

/** RFC 9110 token: what a field name may be. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** A field value never carries CR, LF or NUL: they would split or end the header block. */
const BAD_VALUE = /[\r\n\0]/;

function checkedName(name: string): string {
  if (!TOKEN.test(name)) throw new TypeError(`invalid header name ${JSON.stringify(name)}`);
  return name.toLowerCase();
}

function checkedValue(name: string, value: string): string {
  const v = String(value).replace(/^[\t ]+|[\t ]+$/g, "");
  if (BAD_VALUE.test(v)) throw new TypeError(`invalid value for header ${name}`);
  return v;
}

export class SubsetHeaders {
  /** Lower-cased name to its values in the order they were appended. */
  readonly #fields = new Map<string, string[]>();

  constructor(init?: SubsetHeadersInit) {
    if (init === undefined || init === null) return;
    if (Symbol.iterator in Object(init)) {
      for (const [k, v] of init as HeaderPairs) this.append(k, v);
    } else if (typeof (init as { forEach?: unknown }).forEach === "function") {
      (init as { forEach(cb: (v: string, k: string) => void): void }).forEach((v, k) => this.append(k, v));
    } else {
      for (const [k, v] of Object.entries(init as Record<string, string>)) this.append(k, v);
    }
  }

  append(name: string, value: string): void {
    const key = checkedName(name);
    const v = checkedValue(name, value);
    const values = this.#fields.get(key);
    if (values) values.push(v);
    else this.#fields.set(key, [v]);
  }

  set(name: string, value: string): void {
    this.#fields.set(checkedName(name), [checkedValue(name, value)]);
  }

  get(name: string): string | null {
    return this.#fields.get(checkedName(name))?.join(", ") ?? null;
  }

  getSetCookie(): string[] {
    return [...this.#fields.get("set-cookie") ?? []];
  }

  has(name: string): boolean {
    return this.#fields.has(checkedName(name));
  }

  delete(name: string): void {
    this.#fields.delete(checkedName(name));
  }

  /** Sorted by name, Set-Cookie one pair per cookie, the rest combined: as the fetch standard iterates. */
  *entries(): IterableIterator<[string, string]> {
    for (const key of [...this.#fields.keys()].sort()) {
      const values = this.#fields.get(key)!;
      if (key === "set-cookie") { for (const v of values) yield [key, v]; }
      else yield [key, values.join(", ")];
    }
  }

  *keys(): IterableIterator<string> {
    for (const [k] of this.entries()) yield k;
  }

  *values(): IterableIterator<string> {
    for (const [, v] of this.entries()) yield v;
  }

  forEach(cb: (value: string, name: string, headers: SubsetHeaders) => void): void {
    for (const [k, v] of this.entries()) cb(v, k, this);
  }

  [Symbol.iterator](): IterableIterator<[string, string]> {
    return this.entries();
  }
}

/** A body read once, as fetch's are. */
class Body {
  #body: SubsetBody | null;
  #used = false;

  constructor(body: SubsetBody | null | undefined) {
    this.#body = body ?? null;
  }

  get bodyUsed(): boolean {
    return this.#used;
  }

  /** As fetch gives it: a stream, made only when asked for (fetch_listener.ts reads bodyInitOf instead). */
  get body(): ReadableStream<Uint8Array> | null {
    const b = this.#body;
    if (b === null || !isPlain(b)) return b;
    const bytes = toBytes(b);
    this.#body = new ReadableStream<Uint8Array>({
      start(controller) {
        if (bytes.length) controller.enqueue(bytes);
        controller.close();
      },
    });
    return this.#body;
  }

  /** The body as given, for the server to write; null when none. Marks it used. */
  takeInit(): SubsetBody | null {
    this.#use();
    return this.#body;
  }

  async bytes(): Promise<Uint8Array> {
    this.#use();
    const b = this.#body;
    if (b === null) return new Uint8Array(0);
    if (isPlain(b)) return toBytes(b);
    const chunks: Uint8Array[] = [];
    for await (const chunk of b) chunks.push(chunk);
    return Buffer.concat(chunks);
  }

  async arrayBuffer(): Promise<ArrayBuffer> {
    const b = await this.bytes();
    return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
  }

  async text(): Promise<string> {
    return new TextDecoder().decode(await this.bytes());
  }

  async json(): Promise<unknown> {
    return JSON.parse(await this.text());
  }

  #use(): void {
    if (this.#used) throw new TypeError("body already used");
    this.#used = true;
  }
}

/** Text or bytes, not a stream (tested this way round: reading the ReadableStream global costs memory on Node). */
function isPlain(b: SubsetBody): b is string | Uint8Array | ArrayBuffer {
  return typeof b === "string" || b instanceof Uint8Array || b instanceof ArrayBuffer;
}

function toBytes(b: string | Uint8Array | ArrayBuffer): Uint8Array {
  if (typeof b === "string") return Buffer.from(b);
  return b instanceof Uint8Array ? b : new Uint8Array(b);
}

export interface SubsetRequestInit {
  method?: string;
  headers?: SubsetHeadersInit;
  body?: SubsetBody | null;
}

export class SubsetRequest extends Body {
  readonly url: string;
  readonly method: string;
  readonly headers: SubsetHeaders;

  constructor(input: string | URL | SubsetRequest, init: SubsetRequestInit = {}) {
    const from = input instanceof SubsetRequest ? input : undefined;
    const method = (init.method ?? from?.method ?? "GET").toUpperCase();
    const body = init.body !== undefined ? init.body : from ? from.takeInit() : null;
    if ((method === "GET" || method === "HEAD") && body !== null) {
      throw new TypeError(`a ${method} request has no body`);
    }
    super(body);
    this.url = from ? from.url : new URL(String(input)).href;
    this.method = method;
    this.headers = new SubsetHeaders(init.headers ?? from?.headers);
  }
}

export interface SubsetResponseInit {
  status?: number;
  statusText?: string;
  headers?: SubsetHeadersInit;
}

export class SubsetResponse extends Body {
  readonly status: number;
  readonly statusText: string;
  readonly headers: SubsetHeaders;

  constructor(body?: SubsetBody | null, init: SubsetResponseInit = {}) {
    super(body);
    const status = init.status ?? 200;
    if (!Number.isInteger(status) || status < 200 || status > 599) throw new RangeError(`invalid status ${status}`);
    this.status = status;
    this.statusText = init.statusText ?? "";
    this.headers = new SubsetHeaders(init.headers);
    if (typeof body === "string" && !this.headers.has("content-type")) {
      this.headers.set("content-type", "text/plain;charset=UTF-8");
    }
  }

  get ok(): boolean {
    return this.status >= 200 && this.status < 300;
  }
}

/** The body a response was made with (text, bytes, a stream) when it is one of these; undefined otherwise. */
export function bodyInitOf(response: unknown): SubsetBody | null | undefined {
  return response instanceof SubsetResponse ? response.takeInit() : undefined;
}

/**
 * Make these the process's Headers, Request and Response. For a process that only serves: anything that
 * fetches must not run in it. On Node this keeps undici unloaded; on Deno too it saves each request a stream
 * (the runtime's Response is written through its body stream, these are written as given).
 */
export function installFetchSubset(): void {
  // Assigned, not Object.defineProperty: Node's globals are lazy, and redefining one first loads what it replaces.
  const globals = globalThis as Record<string, unknown>;
  globals.Headers = SubsetHeaders;
  globals.Request = SubsetRequest;
  globals.Response = SubsetResponse;
}

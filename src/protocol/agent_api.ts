/**
 * The agent's HTTP API (pull model, keylime.md §4), each route declared once: method, path under the
 * version prefix, the oldest version that has it, the query or body shape and the results shape. The
 * agent's app mounts these, clients (attest, the tests) build their requests from them. Also the fixed
 * status texts and the per-version `enc_alg` name, as rust-keylime writes them.
 * Upstream: keylime/rust-keylime keylime-agent/src/{api,errors_handler,quotes_handler,keys_handler,
 * agent_handler,notifications_handler}.rs, keylime/src/quote.rs.
 */
import { type ApiVersion, compareVersions, isApiVersion } from "./api_version.ts";
import {
  array,
  binary,
  type Field,
  FieldReject,
  type Infer,
  integer,
  object,
  optional,
  ProtocolInputError,
  refine,
  type Shape,
  type ShapeOf,
  text,
} from "./schema.ts";

/** TPM2B_DATA of the quote holds the nonce's ASCII: rust-keylime's MAX_NONCE_SIZE. */
export const MAX_NONCE_CHARS = 64;
/** Largest IMA list text a client accepts in one answer. */
export const MAX_IMA_LIST_CHARS = 512 * 1024 * 1024;
/** Largest UEFI event log a client accepts (decoded). */
export const MAX_MB_LOG_BYTES = 16 * 1024 * 1024;
const MAX_PEM_CHARS = 16 * 1024;
const MAX_ALG_CHARS = 32;

/** `nonce`: what the TPM signs as qualifyingData, 1 to 64 characters from [A-Za-z0-9]. */
export const nonce = text({
  max: MAX_NONCE_CHARS,
  pattern: /^[A-Za-z0-9]+$/,
  expect: `1 to ${MAX_NONCE_CHARS} characters from A-Z a-z 0-9`,
});

/**
 * `mask`: the PCR selection as a hex u32, as Python's hex() writes it (`0x400`). Like rust-keylime: only
 * alphanumerics, leading `0x` stripped, at most 32 bits.
 */
export const mask: Field<number, false> = refine(
  text({ max: 64, pattern: /^[A-Za-z0-9]+$/, expect: "a hex PCR mask such as 0x400" }),
  "a hex PCR mask such as 0x400",
  (s) => {
    const hex = s.replace(/^(?:0x)+/, "");
    if (!/^[0-9a-fA-F]+$/.test(hex) || hex.replace(/^0+/, "").length > 8) {
      throw new FieldReject(`not a hex encoded 32-bit integer: ${s}`);
    }
    return parseInt(hex, 16);
  },
  (n) => `0x${n.toString(16)}`,
);

/** `partial`: required, "0" (send the NK's pubkey) or "1" (the verifier has it). */
export const partial: Field<boolean, false> = refine(
  text({ max: 1, pattern: /^[01]$/, expect: `"0" or "1"` }),
  `"0" or "1"`,
  (s) => s === "1",
  (b) => (b ? "1" : "0"),
);

/**
 * `ima_ml_entry`: the first IMA entry wanted. rust-keylime parses it as u64 and takes 0 for anything else
 * (quotes_handler.rs: `idx.parse::<u64>().unwrap_or(0)`); 0 means the whole list, so a bad value is not an
 * error. Values past 2^53 cannot be an entry number here either and also give 0.
 */
export const imaMlEntry: Field<number, false> = {
  optional: false,
  doc: "an unsigned entry number (anything else means 0)",
  parse(v) {
    if (v === undefined) return undefined;
    if (typeof v === "number") return Number.isSafeInteger(v) && v >= 0 ? v : 0;
    if (typeof v !== "string") return 0;
    if (!/^\+?[0-9]{1,20}$/.test(v)) return 0;
    const n = Number(v.replace(/^\+/, ""));
    return Number.isSafeInteger(n) ? n : 0;
  },
  toJson: (n) => String(n),
};

/** `challenge` of keys/verify: alphanumeric, as the tenant makes it (20 characters). */
export const challenge = text({
  max: 1024,
  pattern: /^[A-Za-z0-9]+$/,
  expect: "characters from A-Z a-z 0-9",
});

/** How the agent proves its NK is bound to its TPM (spec/nk-certify.md, agent setting nk_binding). */
export const NK_BINDING_MODES = ["pcr16", "certify", "both"] as const;
export type NkBindingMode = typeof NK_BINDING_MODES[number];

/**
 * `binding` of quotes/identity (spec/nk-certify.md): absent or `pcr16` asks for the quote with PCR 16 (the
 * identityQuote route), `certify` for a fresh TPM2_Certify of the NK by the AK (identityCertify).
 */
export const binding = text({ max: 16, pattern: /^(?:pcr16|certify)$/, expect: `"pcr16" or "certify"` });

export const IdentityQuery = object({ nonce, binding: optional(binding) });
export const IdentityCertifyQuery = object({ nonce, binding });
export const IntegrityQuery = object({ nonce, mask, partial, ima_ml_entry: optional(imaMlEntry) });
export const VerifyQuery = object({ challenge });

const alg = text({ max: MAX_ALG_CHARS });

/** A quote answer (keylime/src/quote.rs KeylimeQuote); optional fields are omitted, never null. */
export const QuoteResults = object({
  quote: text({
    max: 64 * 1024,
    pattern: /^r[A-Za-z0-9+/=]*:[A-Za-z0-9+/=]*:[A-Za-z0-9+/=]*$/,
    expect: "r<b64>:<b64>:<b64>",
  }),
  hash_alg: alg,
  enc_alg: alg,
  sign_alg: alg,
  pubkey: optional(text({ max: MAX_PEM_CHARS, expect: "a PEM public key" })),
  ima_measurement_list: optional(text({ max: MAX_IMA_LIST_CHARS, allowEmpty: true })),
  ima_measurement_list_entry: optional(integer({ min: 0, max: Number.MAX_SAFE_INTEGER })),
  mb_measurement_list: optional(binary({ maxBytes: MAX_MB_LOG_BYTES })),
});
export type QuoteResults = Infer<typeof QuoteResults["fields"]>;

/** quotes/identity?binding=certify: TPM2_Certify of the NK by the AK over the nonce's ASCII (nk-certify.md). */
export const IdentityCertifyResults = object({
  /** TPM2B_PUBLIC of the NK as loaded with TPM2_LoadExternal. */
  nk_tpm: binary({ maxBytes: 2048 }),
  /** TPMS_ATTEST of TPM2_Certify (no size prefix). */
  nk_attest: binary({ maxBytes: 4096 }),
  /** TPMT_SIGNATURE of TPM2_Certify. */
  nk_sign: binary({ maxBytes: 4096 }),
  hash_alg: alg,
  enc_alg: alg,
  sign_alg: alg,
  /** The NK's public key (PEM SubjectPublicKeyInfo). */
  pubkey: text({ max: MAX_PEM_CHARS, expect: "a PEM public key" }),
});
export type IdentityCertifyResults = Infer<typeof IdentityCertifyResults["fields"]>;

/** POST keys/ukey. `auth_tag` is checked as 48 bytes of hex by payload.ts (parseAuthTag). */
export const UKeyBody = object({
  auth_tag: text({ max: 2 * 48, pattern: /^[0-9a-fA-F]+$/, expect: "96 hex digits" }),
  /** U wrapped to the NK: RSA-OAEP (at most a 16384-bit NK's ciphertext), or ECIES for an EC NK (nk_ecies.ts). */
  encrypted_key: binary({ maxBytes: 2048 }),
  /** iv ‖ ciphertext ‖ tag. */
  payload: optional(binary({ maxBytes: 64 * 1024 * 1024 })),
});
export type UKeyBody = Infer<typeof UKeyBody["fields"]>;

export const VKeyBody = object({ encrypted_key: binary({ maxBytes: 2048 }) });

/** The body of a revocation notification (keylime.md §9); the signature is checked by revocation.ts. */
export const RevocationBody = object({
  /** A JSON document serialised as a string. */
  msg: text({ max: 1024 * 1024, expect: "the revocation message (JSON text)" }),
  signature: binary({ maxBytes: 2048 }),
});
export type RevocationBody = Infer<typeof RevocationBody["fields"]>;

export const EmptyResults = object({});
export const PubkeyResults = object({ pubkey: text({ max: MAX_PEM_CHARS, expect: "a PEM public key" }) });
export const VerifyResults = object({
  hmac: text({ max: 96, pattern: /^[0-9a-f]{96}$/, expect: "96 lowercase hex digits" }),
});
export const AgentInfoResults = object({
  agent_uuid: text({ max: 256 }),
  tpm_hash_alg: alg,
  tpm_enc_alg: alg,
  tpm_sign_alg: alg,
  ak_handle: integer({ min: 0, max: 0xffffffff }),
});
export const VersionResults = object({
  supported_version: text({ max: 16 }),
  supported_versions: array(text({ max: 16 }), { max: 64 }),
});

export type AgentMethod = "GET" | "POST";

export interface AgentRouteDecl<Q extends Shape | undefined, B extends Shape | undefined, R extends Shape> {
  readonly name: string;
  readonly method: AgentMethod;
  /** Under `/vX.Y` unless `versioned` is false. */
  readonly path: string;
  readonly versioned: boolean;
  /** The oldest API version that serves the route. */
  readonly since: ApiVersion;
  /**
   * Beyond upstream: a route that shares its method and path with another is chosen by this query
   * parameter's value (quotes/identity?binding=certify); the route without one takes every other request.
   */
  readonly selectedBy?: { readonly param: string; readonly value: string };
  readonly query: Q extends Shape ? ShapeOf<Q> : undefined;
  readonly body: B extends Shape ? ShapeOf<B> : undefined;
  readonly results: ShapeOf<R>;
}

function route<Q extends Shape | undefined, B extends Shape | undefined, R extends Shape>(
  r: AgentRouteDecl<Q, B, R>,
): AgentRouteDecl<Q, B, R> {
  return r;
}

/** Every agent route of the v2 pull API, plus /version. */
export const agentRoutes = {
  version: route({
    name: "version",
    method: "GET",
    path: "/version",
    versioned: false,
    since: "2.1",
    query: undefined,
    body: undefined,
    results: VersionResults,
  }),
  identityQuote: route({
    name: "identityQuote",
    method: "GET",
    path: "/quotes/identity",
    versioned: true,
    since: "2.1",
    query: IdentityQuery,
    body: undefined,
    results: QuoteResults,
  }),
  /** Beyond upstream (spec/nk-certify.md): the identity proof by TPM2_Certify. */
  identityCertify: route({
    name: "identityCertify",
    method: "GET",
    path: "/quotes/identity",
    versioned: true,
    since: "2.1",
    selectedBy: { param: "binding", value: "certify" },
    query: IdentityCertifyQuery,
    body: undefined,
    results: IdentityCertifyResults,
  }),
  integrityQuote: route({
    name: "integrityQuote",
    method: "GET",
    path: "/quotes/integrity",
    versioned: true,
    since: "2.1",
    query: IntegrityQuery,
    body: undefined,
    results: QuoteResults,
  }),
  ukey: route({
    name: "ukey",
    method: "POST",
    path: "/keys/ukey",
    versioned: true,
    since: "2.1",
    query: undefined,
    body: UKeyBody,
    results: EmptyResults,
  }),
  vkey: route({
    name: "vkey",
    method: "POST",
    path: "/keys/vkey",
    versioned: true,
    since: "2.1",
    query: undefined,
    body: VKeyBody,
    results: EmptyResults,
  }),
  pubkey: route({
    name: "pubkey",
    method: "GET",
    path: "/keys/pubkey",
    versioned: true,
    since: "2.1",
    query: undefined,
    body: undefined,
    results: PubkeyResults,
  }),
  verify: route({
    name: "verify",
    method: "GET",
    path: "/keys/verify",
    versioned: true,
    since: "2.1",
    query: VerifyQuery,
    body: undefined,
    results: VerifyResults,
  }),
  info: route({
    name: "info",
    method: "GET",
    path: "/agent/info",
    versioned: true,
    since: "2.2",
    query: undefined,
    body: undefined,
    results: AgentInfoResults,
  }),
  revocation: route({
    name: "revocation",
    method: "POST",
    path: "/notifications/revocation",
    versioned: true,
    since: "2.1",
    query: undefined,
    body: RevocationBody,
    results: EmptyResults,
  }),
} as const;

export type AgentRoutes = typeof agentRoutes;
export type AgentRouteName = keyof AgentRoutes;
type AnyAgentRoute = AgentRouteDecl<Shape | undefined, Shape | undefined, Shape>;

/** Does this API version serve the route? */
export function routeInVersion(r: AnyAgentRoute, version: ApiVersion): boolean {
  return !r.versioned || compareVersions(version, r.since) >= 0;
}

/** The routes a version serves (what the app mounts under `/v<version>`). */
export function routesOf(version: ApiVersion): AnyAgentRoute[] {
  return Object.values(agentRoutes).filter((r) => r.versioned && routeInVersion(r, version));
}

/** The request path and query string of a route: `/v2.2/quotes/identity?nonce=...`. */
export function agentRoutePath<Q extends Shape>(
  r: AgentRouteDecl<Q, Shape | undefined, Shape> | AgentRouteDecl<undefined, Shape | undefined, Shape>,
  version: ApiVersion | undefined,
  query?: Infer<Q>,
): string {
  let path = r.path;
  if (r.versioned) {
    if (!isApiVersion(version)) throw new Error(`route ${r.name} needs an API version`);
    if (!routeInVersion(r as AnyAgentRoute, version)) throw new Error(`route ${r.name} needs API ${r.since} or newer`);
    path = `/v${version}${path}`;
  }
  if (r.query && query) {
    const json = (r.query as ShapeOf<Q>).toJson(query);
    const qs = new URLSearchParams();
    for (const [k, v] of Object.entries(json)) qs.set(k, String(v));
    path += `?${qs}`;
  }
  return path;
}

/**
 * Parse a query string against a route's query shape. A declared parameter given twice is refused, as
 * rust-keylime's serde_urlencoded struct decoding refuses it (400 "Query deserialize error: duplicate field
 * `nonce`"); undeclared ones are ignored, repeated or not.
 * Throws schema.ts's ProtocolInputError naming the parameter (`nonce: not 1 to 64 characters ...`).
 */
export function parseQuery<S extends Shape>(shape: ShapeOf<S>, params: URLSearchParams): Infer<S> {
  const first: Record<string, string> = {};
  for (const [k, v] of params) {
    if (!Object.hasOwn(shape.fields, k)) continue;
    if (Object.hasOwn(first, k)) throw new ProtocolInputError([{ path: k, reason: "duplicate field" }]);
    first[k] = v;
  }
  return shape.parse(first);
}

/** The fixed status texts of rust-keylime's agent (api.rs, errors_handler.rs, keys_handler.rs). */
export const agentStatus = {
  success: "Success",
  /** 400 for an unmounted `/vX.Y/...`; `segment` as written in the path, e.g. `v500.440`. */
  versionNotSupported: (segment: string) => `API version not supported: ${segment}`,
  /** 400 from keys/verify before K is derived. */
  bootstrapKeyNotAvailable: "Bootstrap key not yet available.",
  noChallenge: "No challenge provided.",
  /** Beyond upstream: the identity proof asked for is not the agent's nk_binding. */
  identityBindingIs: (mode: NkBindingMode) => `identity binding is ${mode}`,
} as const;

/**
 * What a scope answers for a request none of its routes takes (rust-keylime's `*_default` handlers): 400
 * with `get` or `post` for those methods when given, else 405 with `other` and the `Allow` header.
 */
export interface ScopeAnswers {
  readonly get?: string;
  readonly post?: string;
  readonly other: string;
  readonly allow: string;
}

/** Inside `/vX.Y`, for a path under none of the resource scopes below (api.rs api_default). */
export const versionScopeAnswers: ScopeAnswers = {
  get: "Not Implemented: Use /agent, /keys, or /quotes interfaces",
  post: "Not Implemented: Use /keys or /notifications interfaces",
  other: "Method is not supported",
  allow: "GET, POST",
};

/**
 * Inside `/vX.Y/<scope>`, keyed by the first path segment of the routes; a scope exists in the versions
 * that serve one of its routes (`/agent` from 2.2). Upstream: quotes_default, keys_default,
 * notifications_default, agent_default.
 */
export const resourceScopeAnswers: Readonly<Record<string, ScopeAnswers>> = {
  quotes: {
    get: "URI not supported, only /identity and /integrity are supported for GET in /quotes/ interface",
    other: "Method is not supported in /quotes/ interface",
    allow: "GET",
  },
  keys: {
    get: "URI not supported, only /pubkey and /verify are supported for GET in /keys interface",
    post: "URI not supported, only /ukey and /vkey are supported for POST in /keys interface",
    other: "Method is not supported in /keys interface",
    allow: "GET, POST",
  },
  notifications: {
    post: "URI not supported, only /revocation is supported for POST in /notifications/ interface",
    other: "Method is not supported in /notifications/ interface",
    allow: "POST",
  },
  agent: {
    get: "URI not supported, only /info is supported for GET in /agent interface",
    other: "Method is not supported in /agent interface",
    allow: "GET",
  },
};

/** Outside `/version` and every `/vX.Y` (errors_handler.rs app_default); `newest` is the newest served version. */
export function outsideScopeAnswers(newest: ApiVersion): ScopeAnswers {
  return {
    get: `Not Implemented: Use /version or /v${newest} interfaces`,
    post: `Not Implemented: Use /v${newest} interface`,
    other: "Method is not supported",
    allow: "GET, POST",
  };
}

/** The resource scope of a route path (`/quotes/identity` → `quotes`). */
export function scopeOf(path: string): string {
  return path.split("/")[1] ?? "";
}

/**
 * `enc_alg` (quotes) and `tpm_enc_alg` (agent/info) name the AK's key type: `rsa`/`ecc` before API 2.5,
 * key-size qualified from 2.5 (`rsa2048`, `ecc256`), as rust-keylime's to_string_for_api_version does.
 * `size` is the RSA modulus or the curve's field size in bits.
 */
export function encAlgName(kind: "rsa" | "ecc", size: number, version: ApiVersion): string {
  return compareVersions(version, "2.5") >= 0 ? `${kind}${size}` : kind;
}

/**
 * The registrar's HTTP API, each route declared once (keylime.md §1.2-§1.6, §2): method, path under the
 * version prefix, who may call it, the body and the results shapes. The reference registrar mounts these,
 * the agent's client builds its requests from them, and the tests drive both through them.
 * Upstream: keylime/keylime keylime/web/registrar_server.py, keylime/web/registrar/agents_controller.py,
 * keylime/models/registrar/registrar_agent.py.
 */
import { decode } from "../tpm/marshal.ts";
import { TPM2B_PUBLIC, type TPMT_PUBLIC } from "../tpm/structures.ts";
import { type ApiVersion, isApiVersion } from "./api_version.ts";
import {
  array,
  binary,
  type Field,
  type Infer,
  integer,
  object,
  optional,
  parseField,
  refine,
  type Shape,
  type ShapeOf,
  text,
} from "./schema.ts";

/** Largest request body the registrar reads (an EK certificate chain in PEM fits many times over). */
export const MAX_BODY_BYTES = 128 * 1024;
/** Largest TPM2B_PUBLIC (an RSA-4096 key with a policy digest is under 700 bytes). */
const MAX_PUBLIC_BYTES = 2048;
const MAX_CERT_CHARS = 64 * 1024;

/**
 * An agent id as a path segment: upstream's column is String(80); characters that mean something in a
 * path or a URL (`/`, `%`, `?`, `#`, a leading dot) are refused so an id names one resource everywhere.
 */
export const agentId = text({
  max: 80,
  pattern: /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,79}$/,
  expect: "an agent id (1 to 80 characters from A-Z a-z 0-9 . _ -, not starting with a dot)",
});

/** A TPM2B_PUBLIC as sent (`aik_tpm`, `ek_tpm`): the exact bytes, size prefix included, and their parse. */
export interface TpmPublicBytes {
  bytes: Uint8Array;
  public: TPMT_PUBLIC;
}

/** Decode a TPM2B_PUBLIC: the size must match and nothing may follow it. */
export function tpmPublicFromBytes(bytes: Uint8Array): TpmPublicBytes {
  return { bytes, public: decode(TPM2B_PUBLIC, bytes) };
}

const tpmPublic = (): Field<TpmPublicBytes, false> =>
  refine(
    binary({ maxBytes: MAX_PUBLIC_BYTES }),
    "base64 of a TPM2B_PUBLIC (size prefix included)",
    tpmPublicFromBytes,
    (p) => p.bytes,
  );

const certificateText = text({ max: MAX_CERT_CHARS, expect: "a PEM certificate (or base64 DER)" });

/** The version of the NK certify extension (../shared/spec/nk-certify.md) this code speaks. */
export const NK_CERTIFY_VERSION = 1;
/** Bytes of a registrar's certify nonce. */
export const CERTIFY_NONCE_BYTES = 32;
const MAX_ATTEST_BYTES = 4096;
const certifyNonce = () => binary({ maxBytes: CERTIFY_NONCE_BYTES });
const transportKey = () => text({ max: 16 * 1024, expect: "a PEM public key (SubjectPublicKeyInfo)" });

/** The NK's certification by the AK (nk-certify.md step 4), as sent at activation and shown to tenants. */
const nkCertification = {
  /** TPM2B_PUBLIC of the NK as loaded with TPM2_LoadExternal. */
  nk_tpm: optional(binary({ maxBytes: MAX_PUBLIC_BYTES })),
  /** TPMS_ATTEST of TPM2_Certify (no size prefix). */
  nk_attest: optional(binary({ maxBytes: MAX_ATTEST_BYTES })),
  /** TPMT_SIGNATURE of TPM2_Certify. */
  nk_sign: optional(binary({ maxBytes: MAX_ATTEST_BYTES })),
};

/** POST /agents/:agent_id (and POST /agents with agent_id in the body), keylime.md §1.3. */
export const RegisterBody = object({
  agent_id: optional(agentId),
  aik_tpm: tpmPublic(),
  ek_tpm: optional(tpmPublic()),
  /** PEM: the EK certificate, then any chain certificates from NV. base64 DER is accepted too. */
  ekcert: optional(certificateText),
  /** PEM of the agent's TLS server certificate, or "disabled". */
  mtls_cert: optional(text({ max: MAX_CERT_CHARS, expect: 'a PEM certificate or "disabled"' })),
  /** upstream's column is String(15): dotted IPv4. */
  ip: optional(text({ max: 15 })),
  port: optional(integer({ min: 1, max: 65535 })),
  iak_tpm: optional(tpmPublic()),
  idevid_tpm: optional(tpmPublic()),
  iak_attest: optional(binary({ maxBytes: 4096 })),
  iak_sign: optional(binary({ maxBytes: 4096 })),
  iak_cert: optional(certificateText),
  idevid_cert: optional(certificateText),
  /** Beyond upstream (nk-certify.md): the agent speaks the NK certify extension of this version. */
  nk_certify: optional(integer({ min: 0, max: 0xffff })),
  /** Beyond upstream: PEM SPKI of the NK, sent when mtls_cert is "disabled". */
  transport_key: optional(transportKey()),
});
export type RegisterBody = Infer<typeof RegisterBody["fields"]>;

/** `blob`: the MakeCredential blob (src/protocol/credential.ts, decodeKeylimeBlob). */
export const RegisterResults = object({
  blob: binary({ maxBytes: 4096 }),
  /** Beyond upstream: 32 random bytes the AK must certify the NK over, when the agent asked for nk_certify. */
  certify_nonce: optional(certifyNonce()),
});

/**
 * `auth_tag`: 96 lowercase hex digits from an honest agent; any other string is compared and fails.
 * After a registration that answered certify_nonce, the NK's certification too.
 */
export const ActivateBody = object({ auth_tag: text({ max: 1024 }), ...nkCertification });

export const EmptyResults = object({});

export const VersionResults = object({
  current_version: text({ max: 16 }),
  supported_versions: array(text({ max: 16 }), { max: 64 }),
});

export const ListResults = object({ uuids: array(agentId, { max: 1_000_000 }) });

/** What a tenant sees of an active agent (keylime.md §2 Tenant view). */
export const ShowResults = object({
  agent_id: agentId,
  aik_tpm: binary({ maxBytes: MAX_PUBLIC_BYTES }),
  ek_tpm: optional(binary({ maxBytes: MAX_PUBLIC_BYTES })),
  /** base64(DER) of the stored EK certificate (pull-mode rendering). */
  ekcert: optional(binary({ maxBytes: MAX_CERT_CHARS })),
  mtls_cert: optional(text({ max: MAX_CERT_CHARS })),
  ip: optional(text({ max: 15 })),
  port: optional(integer({ min: 1, max: 65535 })),
  regcount: integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
  /** Beyond upstream (nk-certify.md): the NK's certification checked at activation, to check again. */
  transport_key: optional(transportKey()),
  ...nkCertification,
  certify_nonce: optional(certifyNonce()),
  /** When the registrar verified the certification (ISO 8601, UTC). */
  nk_verified_at: optional(text({ max: 64 })),
});

export type HttpMethod = "GET" | "POST" | "PUT" | "DELETE";

/** "agent": plain HTTP, no authentication (upstream's allow_insecure). "tenant": TLS with a client certificate. */
export type Access = "agent" | "tenant";

export interface RouteDecl<B extends Shape | undefined, R extends Shape> {
  readonly name: string;
  readonly method: HttpMethod;
  /** Under the version prefix (`/v2.6`) unless `versioned` is false; `:agent_id` is the only parameter. */
  readonly path: string;
  readonly versioned: boolean;
  readonly access: Access;
  readonly body: B extends Shape ? ShapeOf<B> : undefined;
  readonly results: ShapeOf<R>;
}

function route<B extends Shape | undefined, R extends Shape>(r: RouteDecl<B, R>): RouteDecl<B, R> {
  return r;
}

/** Every registrar route of the v2 scope, plus /version. */
export const registrarRoutes = {
  version: route({
    name: "version",
    method: "GET",
    path: "/version",
    versioned: false,
    access: "agent",
    body: undefined,
    results: VersionResults,
  }),
  /** The route rust-keylime uses. */
  register: route({
    name: "register",
    method: "POST",
    path: "/agents/:agent_id",
    versioned: true,
    access: "agent",
    body: RegisterBody,
    results: RegisterResults,
  }),
  /** agent_id in the body. */
  registerByBody: route({
    name: "registerByBody",
    method: "POST",
    path: "/agents",
    versioned: true,
    access: "agent",
    body: RegisterBody,
    results: RegisterResults,
  }),
  /** The route rust-keylime uses. */
  activate: route({
    name: "activate",
    method: "PUT",
    path: "/agents/:agent_id",
    versioned: true,
    access: "agent",
    body: ActivateBody,
    results: EmptyResults,
  }),
  activatePut: route({
    name: "activatePut",
    method: "PUT",
    path: "/agents/:agent_id/activate",
    versioned: true,
    access: "agent",
    body: ActivateBody,
    results: EmptyResults,
  }),
  activatePost: route({
    name: "activatePost",
    method: "POST",
    path: "/agents/:agent_id/activate",
    versioned: true,
    access: "agent",
    body: ActivateBody,
    results: EmptyResults,
  }),
  list: route({
    name: "list",
    method: "GET",
    path: "/agents",
    versioned: true,
    access: "tenant",
    body: undefined,
    results: ListResults,
  }),
  show: route({
    name: "show",
    method: "GET",
    path: "/agents/:agent_id",
    versioned: true,
    access: "tenant",
    body: undefined,
    results: ShowResults,
  }),
  delete: route({
    name: "delete",
    method: "DELETE",
    path: "/agents/:agent_id",
    versioned: true,
    access: "tenant",
    body: undefined,
    results: EmptyResults,
  }),
} as const;

export type RegistrarRoutes = typeof registrarRoutes;
export type RegistrarRouteName = keyof RegistrarRoutes;

/** The request path of a route: `/v2.6/agents/<id>`. The id is checked, never escaped into another path. */
export function routePath(
  r: RouteDecl<Shape | undefined, Shape>,
  version: ApiVersion | undefined,
  params: { agent_id?: string } = {},
): string {
  if (r.versioned && !isApiVersion(version)) throw new Error(`route ${r.name} needs an API version`);
  let path = r.path;
  if (path.includes(":agent_id")) {
    try {
      path = path.replace(":agent_id", parseField("agent_id", agentId, params.agent_id));
    } catch (e) {
      throw new Error(`route ${r.name}: ${(e as Error).message}`);
    }
  }
  return r.versioned ? `/v${version}${path}` : path;
}

/** The `status` texts upstream's registrar answers with (agents_controller.py); clients and tests match them. */
export const registrarStatus = {
  success: "Success",
  invalidData: "Could not register agent with invalid data",
  notFound: (id: string) => `Agent with ID '${id}' not found`,
  notActive: (id: string) => `Agent with ID '${id}' has not been activated`,
  /** keylime 7.14 (keylime/keylime#1825, CVE-2025-13609): a known uuid with another EK, EK certificate or AK. */
  identityChanged: "Agent re-registration with different TPM identity is forbidden for security reasons",
  /** Beyond upstream: an activation whose NK certification failed `failure` (NkCertifyError's message). */
  nkCertifyFailed: (failure: string) =>
    `${failure}. The agent has been deleted from the database and will need to be restarted to reattempt ` +
    `registration`,
  authTagMismatch: (tag: string, id: string) =>
    `Auth tag '${tag}' for agent '${id}' does not match expected value. The agent has been deleted from the ` +
    `database and will need to be restarted to reattempt registration`,
} as const;

/**
 * Beyond upstream: the header of a refusal that names the field at fault (`aik_tpm: not base64 (or hex)`),
 * while the body keeps upstream's fixed status text. Clients show it when present.
 */
export const REGISTRAR_ERROR_HEADER = "X-Keylime-Error";

/** Bare responses (empty body, the reason phrase in the status line), from keylime/web/base/default_controller.py. */
export const bareStatus = {
  malformed: { code: 400, reason: "Malformed Request Parameter" },
  badRequest: { code: 400, reason: "Bad Request" },
  notFound: { code: 404, reason: "Not Found" },
  methodNotAllowed: { code: 405, reason: "Method Not Allowed" },
} as const;

/**
 * The registrar and the agent as attest reaches them: the registrar's tenant port (TLS with the client
 * certificate) for the agent's record, then the agent over mTLS pinned to the registered certificate
 * (keylime.md §2 Tenant view, §4, §7). Requests and answers use the routes declared in
 * src/protocol/{registrar,agent}_api.ts; a malformed answer is a PeerError naming the field.
 */
import {
  AGENT_SUPPORTED_VERSIONS,
  type ApiVersion,
  negotiateVersion,
  newestFirst,
  REGISTRAR_SUPPORTED_VERSIONS,
} from "../protocol/api_version.ts";
import { agentRoutePath, agentRoutes, IdentityCertifyResults, QuoteResults } from "../protocol/agent_api.ts";
import { parseEnvelope } from "../protocol/envelope.ts";
import { registrarRoutes, routePath, ShowResults } from "../protocol/registrar_api.ts";
import { type Infer, ProtocolInputError, type Shape, type ShapeOf } from "../protocol/schema.ts";
import { getJson, PeerError, type PeerTls } from "./http_json.ts";
import type { TenantTls } from "./tls_dir.ts";

export type RegistrarRecord = Infer<typeof ShowResults["fields"]>;

/** An answer parsed against a route's results; a refusal or a malformed answer is a PeerError. */
function results<S extends Shape>(who: string, answer: { status: number; json: unknown }, shape: ShapeOf<S>) {
  if (answer.json === undefined) throw new PeerError(`${who} answered HTTP ${answer.status} with an empty body`);
  let env;
  try {
    env = parseEnvelope(answer.json, shape);
  } catch (e) {
    if (!(e instanceof ProtocolInputError)) throw e;
    throw new PeerError(`${who} sent a malformed answer: ${e.message}`, { cause: e });
  }
  if (!env.ok) throw new PeerError(`${who} answered ${env.code} "${env.status}"`);
  return env.results;
}

export class NotFoundError extends PeerError {}

/** `GET /v2.x/agents/{uuid}` on the registrar's TLS port. 404: unknown or not active. */
export async function fetchRegistrarRecord(
  registrar: string,
  tls: TenantTls,
  uuid: string,
): Promise<{ record: RegistrarRecord; version: ApiVersion }> {
  const base = `https://${registrar}`;
  const peer: PeerTls = { tls, ca: tls.ca, checkHost: true };
  const who = "the registrar";
  let version: ApiVersion = "2.1";
  const v = await getJson(who, base + routePath(registrarRoutes.version, undefined), peer);
  if (v.status === 200) {
    version = negotiateVersion(REGISTRAR_SUPPORTED_VERSIONS, results(who, v, registrarRoutes.version.results)) ??
      version;
  }
  const a = await getJson(who, base + routePath(registrarRoutes.show, version, { agent_id: uuid }), peer);
  if (a.status === 404) throw new NotFoundError(`${who} has no active agent ${uuid} (404: unknown or not activated)`);
  const record = results(who, a, registrarRoutes.show.results);
  return { record, version };
}

export interface IntegrityRequest {
  readonly nonce: string;
  readonly mask: number;
  readonly imaEntry: number;
}

/** The agent's API over mTLS pinned to its registered certificate, or HTTP when it registered "disabled". */
export class AgentPeer {
  readonly base: string;
  readonly #tls: PeerTls | undefined;
  readonly who = "the agent";
  version: ApiVersion = "2.1";

  constructor(ip: string, port: number, mtlsCert: string | undefined, tls: TenantTls) {
    const pinned = mtlsCert !== undefined && mtlsCert !== "disabled";
    this.base = `${pinned ? "https" : "http"}://${ip.includes(":") ? `[${ip}]` : ip}:${port}`;
    this.#tls = pinned ? { tls, ca: mtlsCert, checkHost: false } : undefined;
  }

  get url(): string {
    return this.base;
  }

  /** The newest API version both speak (GET /version). */
  async negotiate(): Promise<ApiVersion> {
    const a = await getJson(this.who, this.base + agentRoutePath(agentRoutes.version, undefined), this.#tls);
    const offered = new Set(results(this.who, a, agentRoutes.version.results).supported_versions);
    const common = newestFirst(AGENT_SUPPORTED_VERSIONS).find((v) => offered.has(v));
    if (!common) throw new PeerError(`${this.who} offers API versions ${[...offered].join(", ")}, none of ours`);
    this.version = common;
    return common;
  }

  async identityQuote(nonce: string): Promise<QuoteResults> {
    const path = agentRoutePath(agentRoutes.identityQuote, this.version, { nonce });
    return results(this.who, await getJson(this.who, this.base + path, this.#tls), QuoteResults);
  }

  /** `GET /quotes/identity?nonce=N&binding=certify` (spec/nk-certify.md, Identity proof). */
  async certifyIdentity(nonce: string): Promise<IdentityCertifyResults> {
    const path = agentRoutePath(agentRoutes.identityCertify, this.version, { nonce, binding: "certify" });
    return results(this.who, await getJson(this.who, this.base + path, this.#tls), IdentityCertifyResults);
  }

  async integrityQuote(r: IntegrityRequest): Promise<QuoteResults> {
    const path = agentRoutePath(agentRoutes.integrityQuote, this.version, {
      nonce: r.nonce,
      mask: r.mask,
      partial: true,
      ima_ml_entry: r.imaEntry,
    });
    return results(this.who, await getJson(this.who, this.base + path, this.#tls), QuoteResults);
  }
}

export { PeerError };

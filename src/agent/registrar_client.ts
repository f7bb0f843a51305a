/**
 * The agent's side of the registrar API (keylime.md §1), requests built from the route declarations
 * of src/protocol/registrar_api.ts: GET /version, the version as rust-keylime picks it, POST the
 * registration, PUT the activation. While the registrar is unreachable or answers 5xx, each request is
 * retried with exponential backoff and jitter (exponential_backoff_*), one log line per attempt.
 * A 403 is final (no other version is tried). Upstream: keylime/rust-keylime keylime/src/registrar_client.rs,
 * keylime/src/resilient_client.rs.
 */
import { request as httpRequest } from "node:http";
import { isIP } from "node:net";
import { type ApiVersion, fallbackVersions, negotiateVersion } from "../protocol/api_version.ts";
import { parseEnvelope } from "../protocol/envelope.ts";
import {
  type ActivateBody,
  type RegisterBody,
  type RegisterResults,
  registrarRoutes,
  type RouteDecl,
  routePath,
} from "../protocol/registrar_api.ts";
import type { Infer, Shape } from "../protocol/schema.ts";
import { RegistrarError } from "./errors.ts";
import { type AgentLog, MSG } from "./messages.ts";

export interface RetryPolicy {
  /** Retries after the first attempt (exponential_backoff_max_retries). */
  readonly maxRetries: number;
  /** Delay before the first retry, ms; doubles per retry (exponential_backoff_initial_delay). */
  readonly initialDelayMs: number;
  /** Cap of one delay, ms (exponential_backoff_max_delay). */
  readonly maxDelayMs: number;
}

export interface RegistrarClientOptions {
  readonly ip: string;
  readonly port: number;
  /** The agent's enabled API versions, oldest first. */
  readonly enabledVersions: readonly ApiVersion[];
  readonly retry: RetryPolicy;
  readonly log: AgentLog;
  /** Per request, ms (rust-keylime's registrar client uses 5000). */
  readonly timeoutMs?: number;
  /** Random source of the jitter, in [0, 1). */
  readonly random?: () => number;
}

/** The delay before retry `n` (1-based): initial·2^(n-1), capped, then between half and all of it. */
export function backoffDelay(policy: RetryPolicy, n: number, random: () => number = Math.random): number {
  const base = Math.min(policy.maxDelayMs, policy.initialDelayMs * 2 ** Math.min(n - 1, 30));
  return Math.round(base / 2 + (base / 2) * random());
}

/** A registrar answer: HTTP status, the envelope's status text (or the reason phrase) and the JSON body. */
interface Answer {
  readonly code: number;
  readonly status: string;
  readonly json: unknown;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export class RegistrarClient {
  readonly base: string;
  readonly #o: RegistrarClientOptions;
  /** The negotiated version; undefined until negotiate() ran. */
  version: ApiVersion | undefined;
  #candidates: ApiVersion[] = [];
  #negotiation: Promise<ApiVersion | undefined> | undefined;

  constructor(o: RegistrarClientOptions) {
    this.#o = o;
    // An IPv6 literal needs brackets in a URL (registrar_client.rs parse_registrar_address).
    const host = isIP(o.ip) === 6 ? `[${o.ip}]` : o.ip;
    this.base = `http://${host}:${o.port}`;
  }

  /**
   * One HTTP exchange; no Content-Type without a body (keylime.md §0.5). node:http rather than fetch: fetch's
   * client (undici, its llhttp WebAssembly) would stay in the agent's memory for two requests at start.
   */
  #send(method: string, path: string, body?: unknown): Promise<Answer> {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    return new Promise((resolve, reject) => {
      const req = httpRequest(this.base + path, {
        method,
        headers: payload === undefined
          ? {}
          : { "Content-Type": "application/json", "Content-Length": String(payload.length) },
        signal: AbortSignal.timeout(this.#o.timeoutMs ?? 5000),
      }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("error", reject);
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          let json: unknown = undefined;
          try {
            json = text ? JSON.parse(text) : undefined;
          } catch {
            // A bare answer (empty or not JSON): the status line says it all.
          }
          const status = typeof (json as { status?: unknown })?.status === "string"
            ? (json as { status: string }).status
            : res.statusMessage ?? "";
          resolve({ code: res.statusCode ?? 0, status, json });
        });
      });
      req.on("error", reject);
      req.end(payload);
    });
  }

  /**
   * One request with retries while the registrar is unreachable or answers 5xx; any other answer
   * (2xx or 4xx) is returned as it is.
   */
  async #request(what: string, method: string, path: string, body?: unknown): Promise<Answer> {
    const { retry, log } = this.#o;
    for (let attempt = 0;; attempt++) {
      let why: string;
      try {
        const a = await this.#send(method, path, body);
        if (a.code < 500) return a;
        why = `${a.code} ${a.status}`;
      } catch (e) {
        why = describeFetchError(e);
      }
      if (attempt >= retry.maxRetries) {
        throw new RegistrarError(MSG.gaveUp(`${what} (${this.base}${path})`, attempt + 1, why));
      }
      const delay = backoffDelay(retry, attempt + 1, this.#o.random);
      log.warn(MSG.retrying(what, attempt + 1, retry.maxRetries, delay, why));
      await sleep(delay);
    }
  }

  /**
   * GET /version and pick the version (keylime.md §1.1); without /version, the candidates to try.
   * Asked once; an agent starts it early, while its TPM works.
   */
  negotiate(): Promise<ApiVersion | undefined> {
    return this.#negotiation ??= this.#negotiate();
  }

  async #negotiate(): Promise<ApiVersion | undefined> {
    const { log, enabledVersions } = this.#o;
    const v = registrarRoutes.version;
    const addr = this.base + routePath(v, undefined);
    log.info(MSG.requestingVersion(addr));
    const a = await this.#request("Requesting the registrar API version", v.method, routePath(v, undefined));
    if (a.code < 200 || a.code > 299) {
      log.info(MSG.noVersionEndpoint(addr));
      this.#candidates = fallbackVersions(enabledVersions);
      return undefined;
    }
    const env = parseEnvelope(a.json, v.results);
    if (!env.ok) throw new RegistrarError(MSG.refused("GET /version", this.base, env.code, env.status), env.code);
    const chosen = negotiateVersion(enabledVersions, env.results);
    if (!chosen) {
      const message = MSG.incompatible(this.base, [...enabledVersions], env.results.supported_versions);
      log.warn(message);
      throw new RegistrarError(message);
    }
    this.version = chosen;
    this.#candidates = [chosen];
    return chosen;
  }

  /**
   * Run a versioned request with the negotiated version, or (registrar without /version) with each
   * enabled version newest first until one is not refused; a 403 stops at once.
   */
  async #versioned<B extends Shape | undefined, R extends Shape>(
    route: RouteDecl<B, R>,
    what: string,
    uuid: string,
    body: unknown,
    refusal: (a: Answer, addr: string) => RegistrarError,
  ): Promise<Infer<R>> {
    await this.negotiate();
    const { log } = this.#o;
    let last: RegistrarError | undefined;
    for (const version of this.#candidates) {
      if (!this.version) log.info(MSG.tryingVersion(version));
      const path = routePath(route, version, { agent_id: uuid });
      log.info(
        what === "register"
          ? MSG.requestingRegistration(this.base + path, uuid)
          : MSG.requestingActivation(this.base + path, uuid),
      );
      const a = await this.#request(what === "register" ? "Registration" : "Activation", route.method, path, body);
      if (a.code >= 200 && a.code <= 299) {
        const env = parseEnvelope(a.json, route.results);
        if (!env.ok) throw refusal(a, this.base);
        this.version = version;
        this.#candidates = [version];
        return env.results;
      }
      last = refusal(a, this.base);
      if (a.code === 403 || this.version) throw last;
    }
    throw last ?? new RegistrarError(`no API version to try against ${this.base}`);
  }

  /** POST /v2.x/agents/{uuid}: the MakeCredential blob, and a certify nonce when the registrar speaks nk_certify. */
  async register(uuid: string, body: RegisterBody): Promise<Infer<typeof RegisterResults["fields"]>> {
    const route = registrarRoutes.register;
    const r = await this.#versioned(route, "register", uuid, route.body.toJson(body), (a, addr) => {
      if (a.code === 403) return new RegistrarError(MSG.identityChanged(uuid, addr), 403);
      if (a.code === 400) return new RegistrarError(MSG.badRequest(uuid, addr, a.status), 400);
      return new RegistrarError(MSG.refused("Registration", addr, a.code, a.status), a.code);
    });
    return r;
  }

  /** PUT /v2.x/agents/{uuid} with the auth_tag (and the NK's certification, after a certify nonce). */
  async activate(uuid: string, body: Infer<typeof ActivateBody["fields"]>): Promise<void> {
    const route = registrarRoutes.activate;
    await this.#versioned(route, "activate", uuid, route.body.toJson(body), (a, addr) => {
      if (a.code === 400) return new RegistrarError(MSG.activationRejected(uuid, addr, a.status), 400);
      return new RegistrarError(MSG.refused("Activation", addr, a.code, a.status), a.code);
    });
  }
}

/** A fetch failure in one line: ECONNREFUSED, a timeout ... */
function describeFetchError(e: unknown): string {
  const err = e as { name?: string; message?: string; cause?: { code?: string; message?: string } };
  if (err?.name === "TimeoutError" || (err?.cause as { name?: string })?.name === "TimeoutError") {
    return "no answer in time";
  }
  const text = `${err?.cause?.code ?? ""} ${err?.cause?.message ?? ""} ${err?.message ?? String(e)}`;
  // Node names the errno, Deno quotes the OS message: one wording for both.
  if (/ECONNREFUSED|Connection refused/i.test(text)) return "connection refused";
  if (/ECONNRESET|Connection reset/i.test(text)) return "connection reset";
  if (/ENOTFOUND|EAI_AGAIN|lookup|resolve/i.test(text)) return "registrar host name not found";
  return (err?.cause?.code ?? err?.cause?.message ?? err?.message ?? String(e)).split("\n")[0]!;
}

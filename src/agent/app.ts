/**
 * The agent's Hono app (keylime.md §4): /version, and every route of src/protocol/agent_api.ts mounted under
 * `/v<version>` for each enabled API version that has it; the scope rules for anything else (each scope's
 * 400 for an unknown GET or POST, 405 with Allow for other methods, as agent_api.ts declares them; an
 * unmounted version 400 "API version not supported: v<version>", a version without its minor, as
 * `/v2/...`, answered as outside every scope); and one
 * error funnel mapping error classes to statuses and the {code, status, results} envelope. Route files get
 * only what they use. Nothing here opens a socket (server.ts does).
 * Upstream: keylime/rust-keylime keylime-agent/src/{main,api,errors_handler}.rs, keylime/src/json_wrapper.rs.
 */
import { type Context, Hono } from "hono";
import {
  type AgentRouteName,
  agentRoutes,
  agentStatus,
  outsideScopeAnswers,
  parseQuery,
  resourceScopeAnswers,
  routesOf,
  type ScopeAnswers,
  scopeOf,
  versionScopeAnswers,
} from "../protocol/agent_api.ts";
import { type ApiVersion, compareVersions, parseVersionPrefix } from "../protocol/api_version.ts";
import { envelope, envelopeText } from "../protocol/envelope.ts";
import { PayloadError } from "../protocol/payload.ts";
import { bodyTooLarge, parseJsonText, ProtocolInputError, type Shape, type ShapeOf } from "../protocol/schema.ts";
import { limitBody } from "../util/body_limit.ts";
import { PcrsUnstableError, TpmLibraryError, TpmUsageError } from "../tpm/errors.ts";
import type { RouteHandlers, RouteInput } from "./routes/handler.ts";
import { RouteError } from "./routes/handler.ts";
import { infoHandlers, type InfoRouteDeps } from "./routes/info.ts";
import { keyHandlers, type KeyRouteDeps } from "./routes/keys.ts";
import { notificationHandlers, type NotificationRouteDeps } from "./routes/notifications.ts";
import { quoteHandlers, type QuoteRouteDeps } from "./routes/quotes.ts";
import { streamIntoText, WithStreamedText } from "./routes/streamed_text.ts";
import { monotonicMs } from "../util/clock.ts";

/** Log lines of the app: one per request at debug, refusals at warn, failures at error. */
export interface AppLog {
  debug(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

export interface AgentAppDeps {
  /** Enabled API versions, any order (config.ts enabledApiVersions). */
  versions: readonly ApiVersion[];
  quotes: QuoteRouteDeps;
  keys: KeyRouteDeps;
  info: InfoRouteDeps;
  notifications: NotificationRouteDeps;
  log: AppLog;
}

/** The largest body: a keys/ukey with the largest payload, base64, plus room for the other fields. */
export const MAX_BODY_BYTES = Math.ceil((64 * 1024 * 1024 * 4) / 3) + 64 * 1024;

type Env = { Variables: { route: AgentRouteName } };

function reply(c: Context<Env>, code: number, status: string, results?: object): Response {
  return c.body(envelopeText(envelope(code, status, results)), code as 200, { "Content-Type": "application/json" });
}

/** What a failure answers, by class; TPM and unknown failures are logged, never described beyond their kind. */
function answerError(c: Context<Env>, e: unknown, log: AppLog): Response {
  const where = `${c.req.method} ${new URL(c.req.url).pathname}`;
  if (e instanceof RouteError || e instanceof ProtocolInputError || e instanceof PayloadError) {
    const status = e instanceof RouteError ? e.status : 400;
    log.warn(`${where} returning ${status} response. ${e.message}`);
    return reply(c, status, e.message);
  }
  if (e instanceof PcrsUnstableError) {
    log.warn(`${where} returning 503 response. ${e.message}`);
    return reply(c, 503, "PCRs changed while quoting; retry");
  }
  if (e instanceof TpmUsageError) {
    log.warn(`${where} returning 400 response. ${e.message}`);
    return reply(c, 400, e.message);
  }
  const quoting = ["identityQuote", "identityCertify", "integrityQuote"].includes(c.get("route"));
  if (e instanceof TpmLibraryError) {
    log.error(`${where}: TPM failure (${e.code}): ${e.message}`);
    return reply(c, 500, quoting ? "Unable to retrieve quote" : "TPM failure");
  }
  log.error(`${where}: ${e instanceof Error ? e.stack ?? e.message : String(e)}`);
  return reply(c, 500, quoting ? "Unable to retrieve quote" : "Internal Server Error");
}

/** A scope's answer to a request none of its routes takes: 400 for its GET or POST text, else 405 with Allow. */
function answerScope(c: Context<Env>, answers: ScopeAnswers, log: AppLog): Response {
  const text = c.req.method === "GET" ? answers.get : c.req.method === "POST" ? answers.post : undefined;
  const status = text === undefined ? 405 : 400;
  const message = text ?? answers.other;
  log.warn(`${c.req.method} ${new URL(c.req.url).pathname} returning ${status} response. ${message}`);
  if (status === 405) c.header("Allow", answers.allow);
  return reply(c, status, message);
}

function sortedVersions(versions: readonly ApiVersion[]): ApiVersion[] {
  return [...new Set(versions)].sort(compareVersions);
}

type AnyHandler = (input: RouteInput<AgentRouteName>) => Promise<unknown>;

export function createAgentApp(deps: AgentAppDeps): Hono<Env> {
  const versions = sortedVersions(deps.versions);
  if (versions.length === 0) throw new Error("createAgentApp: no API version enabled");
  const handlers: RouteHandlers<Exclude<AgentRouteName, "version">> = {
    ...quoteHandlers(deps.quotes),
    ...keyHandlers(deps.keys),
    ...infoHandlers(deps.info),
    ...notificationHandlers(deps.notifications),
  };

  const app = new Hono<Env>({ strict: false });
  app.use("*", async (c, next) => {
    const start = monotonicMs();
    await next();
    deps.log.debug(
      `${c.req.method} ${c.req.path} ${c.res.status} ${(monotonicMs() - start).toFixed(1)} ms`,
    );
  });
  app.use("*", limitBody(MAX_BODY_BYTES, bodyTooLarge));

  app.get(agentRoutes.version.path, (c) => {
    const results = { supported_version: versions.at(-1)!, supported_versions: versions };
    return reply(c, 200, agentStatus.success, agentRoutes.version.results.toJson(results));
  });

  for (const version of versions) {
    // Routes sharing a method and path (quotes/identity and its binding=certify) are one mount.
    const mounts = new Map<string, ReturnType<typeof routesOf>>();
    for (const r of routesOf(version)) {
      mounts.set(`${r.method} ${r.path}`, [...mounts.get(`${r.method} ${r.path}`) ?? [], r]);
    }
    for (const group of mounts.values()) {
      const { method, path } = group[0]!;
      app.on(method, `/v${version}${path}`, async (c) => {
        const params = new URL(c.req.url).searchParams;
        const route = group.find((r) => r.selectedBy && params.get(r.selectedBy.param) === r.selectedBy.value) ??
          group.find((r) => !r.selectedBy)!;
        const name = route.name as Exclude<AgentRouteName, "version">;
        c.set("route", name);
        // keys/verify names a missing challenge as upstream does.
        if (name === "verify" && !params.get("challenge")) throw new RouteError(400, agentStatus.noChallenge);
        const query = route.query ? parseQuery(route.query as ShapeOf<Shape>, params) : undefined;
        const body = route.body ? parseJsonText(route.body as ShapeOf<Shape>, await c.req.text()) : undefined;
        const answer = await (handlers[name] as AnyHandler)({ version, query, body } as RouteInput<AgentRouteName>);
        const streamed = answer instanceof WithStreamedText ? answer : undefined;
        const results = (route.results as ShapeOf<Shape>).toJson((streamed ? streamed.results : answer) as never);
        if (!streamed) return reply(c, 200, agentStatus.success, results);
        const text = envelopeText(envelope(200, agentStatus.success, results));
        return c.body(streamIntoText(text, streamed.chunks()), 200, { "Content-Type": "application/json" });
      });
    }
  }

  const scopes = new Map(versions.map((v) => [v, new Set(routesOf(v).map((r) => scopeOf(r.path)))]));
  const outside = outsideScopeAnswers(versions.at(-1)!);
  app.notFound((c) => {
    const scope = parseVersionPrefix(new URL(c.req.url).pathname);
    // Upstream's unsupported-version route is /v{major}.{minor}...: `/v2/...` is outside every scope.
    if (scope?.minor === undefined) return answerScope(c, outside, deps.log);
    const segment = `v${scope.major}.${scope.minor}`;
    const served = scopes.get(segment.slice(1) as ApiVersion);
    if (!served) return reply(c, 400, agentStatus.versionNotSupported(segment));
    const resource = scopeOf(scope.rest);
    return answerScope(c, served.has(resource) ? resourceScopeAnswers[resource]! : versionScopeAnswers, deps.log);
  });
  app.onError((e, c) => answerError(c, e, deps.log));
  return app;
}

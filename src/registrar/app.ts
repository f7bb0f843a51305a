/**
 * The registrar's Hono app: every route of src/protocol/registrar_api.ts mounted under `/v2` and each
 * `/v2.M` it serves, request parameters read the way upstream reads them, and one error funnel mapping error
 * classes to statuses and upstream's envelope (keylime/web/base/action_handler.py, default_controller.py).
 * One app serves each port: `tls` says whether requests arrive over the TLS port, where the server has
 * already required a client certificate from the trusted CA.
 */
import { type Context, Hono } from "hono";
import type { ServerResponse } from "node:http";
import { REGISTRAR_SUPPORTED_VERSIONS } from "../protocol/api_version.ts";
import { envelope, envelopeText } from "../protocol/envelope.ts";
import {
  bareStatus,
  MAX_BODY_BYTES,
  REGISTRAR_ERROR_HEADER,
  type RegistrarRouteName,
  registrarRoutes,
  registrarStatus,
} from "../protocol/registrar_api.ts";
import { NkCertifyError } from "../protocol/nk_certify.ts";
import { bodyTooLarge, ProtocolInputError } from "../protocol/schema.ts";
import { limitBody } from "../util/body_limit.ts";
import { AgentNotFoundError, AuthTagMismatchError, IdentityChangedError } from "./errors.ts";
import type { RegistrarService } from "./registration.ts";
import { BareResponse, type Params, registrarHandlers } from "./routes.ts";

/** What fetch_listener.ts passes as the environment; absent under app.request. */
type Env = { Bindings: { outgoing?: ServerResponse }; Variables: { route: RegistrarRouteName } };

/** Upstream's test for a JSON body (Controller.JSON_MEDIA_TYPE_REGEX). */
const JSON_MEDIA_TYPE = /^application\/(?:[a-z-.]+\+)?json/;

function bare(c: Context<Env>, status: number, reason: string): Response {
  // node:http writes res.statusMessage as the reason phrase when writeHead is not given one.
  if (c.env?.outgoing) c.env.outgoing.statusMessage = reason;
  return c.body(null, status as 400);
}

function reply(c: Context<Env>, code: number, status: string, results?: object, reason?: string): Response {
  const headers: Record<string, string> = { "Content-Type": "application/json" };
  // Header values are Latin-1 without control characters: keep the reason printable ASCII.
  if (reason) headers[REGISTRAR_ERROR_HEADER] = reason.replace(/[^\x20-\x7e]/g, "?").slice(0, 2048);
  return c.body(envelopeText(envelope(code, status, results)), code as 200, headers);
}

/** The error funnel: each class has its status; anything else is upstream's bare 500. */
function answerError(c: Context<Env>, e: unknown, log: (line: string) => void): Response {
  if (e instanceof BareResponse) return bare(c, e.status, e.reason);
  if (e instanceof ProtocolInputError) {
    const registering = c.get("route") === "register" || c.get("route") === "registerByBody";
    return reply(c, 400, registering ? registrarStatus.invalidData : e.message, undefined, e.message);
  }
  if (e instanceof IdentityChangedError) return reply(c, 403, e.message, undefined, e.fields.join(", ") + " changed");
  if (e instanceof AgentNotFoundError) return reply(c, 404, e.message);
  if (e instanceof AuthTagMismatchError) return reply(c, 400, e.message, undefined, "auth_tag does not match");
  if (e instanceof NkCertifyError) {
    return reply(c, 400, registrarStatus.nkCertifyFailed(e.message), undefined, e.message);
  }
  log(`internal error on ${c.req.method} ${new URL(c.req.url).pathname}: ${e instanceof Error ? e.stack : String(e)}`);
  return bare(c, 500, "Internal Server Error");
}

/** JSON parameters as upstream reads them: a JSON media type needs a JSON body; an array is no parameters. */
async function jsonParams(c: Context<Env>): Promise<Params> {
  const type = c.req.header("content-type");
  if (!type || !JSON_MEDIA_TYPE.test(type)) return {};
  const text = await c.req.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new BareResponse(bareStatus.malformed.code, bareStatus.malformed.reason);
  }
  return typeof json === "object" && json !== null && !Array.isArray(json) ? json as Params : {};
}

/** The paths of a declared route: /version, or /v2, /v2.0 … /v2.6 followed by the route's path. */
function mountPaths(path: string, versioned: boolean): string[] {
  if (!versioned) return [path];
  return ["2", ...REGISTRAR_SUPPORTED_VERSIONS].map((v) => `/v${v}${path}`);
}

const ROUTES = Object.values(registrarRoutes);

/** Path patterns of every route, to tell a wrong method (405) from an unknown path (404). */
const PATH_PATTERNS = ROUTES.flatMap((r) =>
  mountPaths(r.path, r.versioned).map((p) => new RegExp(`^${p.replace(/\./g, "\\.").replace(":agent_id", "[^/]+")}/?$`))
);

export interface RegistrarAppOptions {
  /** Requests arrive over the TLS port (client certificate already verified by the server). */
  tls: boolean;
}

export function createRegistrarApp(svc: RegistrarService, opts: RegistrarAppOptions): Hono<Env> {
  const app = new Hono<Env>({ strict: false });
  app.use("*", limitBody(MAX_BODY_BYTES, bodyTooLarge));
  for (const route of ROUTES) {
    const name = route.name as RegistrarRouteName;
    const handler = registrarHandlers[name];
    for (const path of mountPaths(route.path, route.versioned)) {
      app.on(route.method, path, async (c) => {
        c.set("route", name);
        // Upstream answers an HTTPS-only route on its plain HTTP port with a bare 400.
        if (route.access === "tenant" && !opts.tls) {
          return bare(c, bareStatus.badRequest.code, bareStatus.badRequest.reason);
        }
        const params = { ...(await jsonParams(c)), ...c.req.param() };
        const results = await handler(svc, params);
        return reply(c, 200, registrarStatus.success, route.results.toJson(results as never));
      });
    }
  }
  app.notFound((c) => {
    const path = new URL(c.req.url).pathname;
    return PATH_PATTERNS.some((p) => p.test(path))
      ? bare(c, bareStatus.methodNotAllowed.code, bareStatus.methodNotAllowed.reason)
      : bare(c, bareStatus.notFound.code, bareStatus.notFound.reason);
  });
  app.onError((e, c) => answerError(c, e, svc.log));
  return app;
}

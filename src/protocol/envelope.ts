/**
 * The `{code, status, results}` envelope of every Keylime v2 controller response (keylime.md §0.11, §1.6).
 * Upstream: keylime/keylime keylime/web/base/controller.py (Controller.respond): `status` defaults to the
 * HTTP reason phrase of `code`, `results` to `{}`, and the JSON is written with an indent of 4.
 */
import { type Infer, integer, object, ProtocolInputError, type Shape, type ShapeOf, text } from "./schema.ts";

export interface Envelope<R> {
  code: number;
  status: string;
  results: R;
}

/** Python's http.client.responses for the codes the Keylime servers answer with. */
export const REASON_PHRASES: Readonly<Record<number, string>> = {
  200: "OK",
  201: "Created",
  202: "Accepted",
  204: "No Content",
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  409: "Conflict",
  413: "Request Entity Too Large",
  415: "Unsupported Media Type",
  500: "Internal Server Error",
  501: "Not Implemented",
  503: "Service Unavailable",
};

export function reasonPhrase(code: number): string {
  return REASON_PHRASES[code] ?? "Unknown";
}

/** Upstream's respond(code, status, data): empty or absent data becomes `{}`. */
export function envelope<R extends object = Record<string, never>>(
  code: number,
  status?: string,
  results?: R,
): Envelope<R | Record<string, never>> {
  return { code, status: status || reasonPhrase(code), results: results ?? {} };
}

/** The response body exactly as upstream writes it (json.dumps(..., indent=4)). */
export function envelopeText(e: Envelope<unknown>): string {
  return JSON.stringify(e, null, 4);
}

const ENVELOPE_HEAD = object({
  code: integer({ min: 100, max: 599 }),
  status: text({ max: 4096, allowEmpty: true }),
});

/** A received envelope: results checked against the route's shape on success, absent otherwise. */
export type ReceivedEnvelope<R> =
  | { ok: true; code: number; status: string; results: R }
  | { ok: false; code: number; status: string };

/**
 * Parse a received envelope; on a 2xx `results` is checked against the route's results shape.
 * Errors name the field (`results.blob: not base64 (or hex)`).
 */
export function parseEnvelope<S extends Shape>(json: unknown, results: ShapeOf<S>): ReceivedEnvelope<Infer<S>> {
  const head = ENVELOPE_HEAD.parse(json);
  if (head.code < 200 || head.code > 299) return { ok: false, ...head };
  const body = (json as { results?: unknown }).results;
  try {
    return { ok: true, ...head, results: results.parse(body ?? {}) };
  } catch (e) {
    throw e instanceof ProtocolInputError ? e.under("results") : e;
  }
}

/**
 * What a route file gives the app: one handler per declared route (src/protocol/agent_api.ts), typed by the
 * declaration: the parsed query or body in, the results shape out.
 */
import type { AgentRouteName, AgentRoutes } from "../../protocol/agent_api.ts";
import type { ApiVersion } from "../../protocol/api_version.ts";
import type { Infer, Shape, ShapeOf } from "../../protocol/schema.ts";
import type { WithStreamedText } from "./streamed_text.ts";

type Parsed<F> = F extends ShapeOf<infer S extends Shape> ? Infer<S> : undefined;

export interface RouteInput<N extends AgentRouteName> {
  /** The version scope the request came in (`/v2.5/...`). */
  version: ApiVersion;
  query: Parsed<AgentRoutes[N]["query"]>;
  body: Parsed<AgentRoutes[N]["body"]>;
}

export type RouteResults<N extends AgentRouteName> = Parsed<AgentRoutes[N]["results"]>;

/** A handler answers its results, or results with one field streamed (streamed_text.ts). */
export type RouteHandler<N extends AgentRouteName> = (
  input: RouteInput<N>,
) => Promise<RouteResults<N> | WithStreamedText<RouteResults<N>>>;

export type RouteHandlers<N extends AgentRouteName> = { [K in N]: RouteHandler<K> };

/** A refusal with its status and upstream's status text (e.g. 400 "Bootstrap key not yet available."). */
export class RouteError extends Error {
  readonly code = "ERR_AGENT_REQUEST";
  constructor(readonly status: 400 | 404 | 405 | 500 | 503, message: string) {
    super(message);
    this.name = "RouteError";
  }
}

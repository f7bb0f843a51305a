/**
 * What each declared registrar route does (src/protocol/registrar_api.ts declares method, path and shapes;
 * agents_controller.py and version_controller.py upstream). Handlers receive the request's parameters
 * (JSON body, with path parameters taking precedence as upstream merges them) and return `results`.
 */
import { REGISTRAR_CURRENT_VERSION, REGISTRAR_SUPPORTED_VERSIONS } from "../protocol/api_version.ts";
import { ActivateBody, agentId, bareStatus, RegisterBody, type RegistrarRouteName } from "../protocol/registrar_api.ts";
import { parseField } from "../protocol/schema.ts";
import {
  activateAgent,
  deleteAgent,
  listAgents,
  registerAgent,
  type RegistrarService,
  showAgent,
} from "./registration.ts";

/** A response without a body, as upstream's DefaultController sends for dispatch and decoding errors. */
export class BareResponse extends Error {
  constructor(readonly status: number, readonly reason: string) {
    super(`${status} ${reason}`);
    this.name = "BareResponse";
  }
}

export type Params = Record<string, unknown>;
type Handler = (svc: RegistrarService, params: Params) => object | Promise<object>;

/** Upstream calls the action with the parameters as keyword arguments: a missing required one is a bare 400. */
function requireParams(params: Params, ...names: string[]): void {
  if (names.some((n) => params[n] === undefined)) {
    throw new BareResponse(bareStatus.badRequest.code, bareStatus.badRequest.reason);
  }
}

async function register(svc: RegistrarService, params: Params) {
  requireParams(params, "agent_id");
  const body = RegisterBody.parse(params);
  return await registerAgent(svc, body.agent_id!, body);
}

function activate(svc: RegistrarService, params: Params) {
  requireParams(params, "agent_id", "auth_tag");
  activateAgent(svc, agentIdOf(params), ActivateBody.parse(params));
  return {};
}

/** The path parameter, checked like the body's (a uuid with path characters is refused, naming agent_id). */
function agentIdOf(params: Params): string {
  return parseField("agent_id", agentId, params.agent_id);
}

export const registrarHandlers: Record<RegistrarRouteName, Handler> = {
  version: () => ({
    current_version: REGISTRAR_CURRENT_VERSION,
    supported_versions: [...REGISTRAR_SUPPORTED_VERSIONS],
  }),
  register,
  registerByBody: register,
  activate,
  activatePut: activate,
  activatePost: activate,
  list: (svc) => ({ uuids: listAgents(svc) }),
  show: (svc, p) => showAgent(svc, agentIdOf(p)),
  delete: (svc, p) => {
    deleteAgent(svc, agentIdOf(p));
    return {};
  },
};

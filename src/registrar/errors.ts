/**
 * What the registrar refuses, beyond malformed input (ProtocolInputError, 400). The app's error funnel
 * maps each class to its status and upstream's envelope (app.ts).
 */
import { registrarStatus } from "../protocol/registrar_api.ts";

/** A registration that would change the TPM identity (EK, EK certificate or AK) of a known agent: 403. */
export class IdentityChangedError extends Error {
  readonly code = "ERR_REGISTRAR_IDENTITY";
  constructor(readonly agentId: string, readonly fields: string[]) {
    super(registrarStatus.identityChanged);
    this.name = "IdentityChangedError";
  }
}

/** No such agent (or, for the tenant view, not activated): 404. */
export class AgentNotFoundError extends Error {
  readonly code = "ERR_REGISTRAR_NOT_FOUND";
  constructor(readonly agentId: string, readonly inactive = false) {
    super(inactive ? registrarStatus.notActive(agentId) : registrarStatus.notFound(agentId));
    this.name = "AgentNotFoundError";
  }
}

/** The auth_tag did not match; the record has been deleted: 400. */
export class AuthTagMismatchError extends Error {
  readonly code = "ERR_REGISTRAR_AUTH_TAG";
  constructor(readonly agentId: string, tag: string) {
    super(registrarStatus.authTagMismatch(tag, agentId));
    this.name = "AuthTagMismatchError";
  }
}

/**
 * Authorization sessions as the client uses them (Part 1 §19). A session builds its entry of the
 * command's authorization area and checks its entry of the response. HMAC and policy sessions plug
 * in through the same interface (they also transform the parameter area for encryption).
 */
import type { AnyCommand } from "./command.ts";
import { TPM_RS_PW } from "./constants.ts";
import { MarshalError } from "./errors.ts";
import type { AuthCommand, AuthResponse } from "./frame.ts";
import { TPMA_SESSION } from "./structures.ts";

/** What a session sees of a command before it is framed. */
export interface CommandContext {
  readonly def: AnyCommand;
  readonly handles: readonly number[];
  /** The marshalled parameter area as it will be sent. */
  readonly parameters: Uint8Array;
}

/** What a session sees of a successful response. */
export interface ResponseContext {
  readonly def: AnyCommand;
  readonly parameters: Uint8Array;
}

export interface Session {
  /** The session handle placed in the authorization area. */
  readonly handle: number;
  /** This session's TPMS_AUTH_COMMAND for the command. */
  authorize(ctx: CommandContext): AuthCommand;
  /** Check this session's TPMS_AUTH_RESPONSE; throws when it does not verify. */
  verify(ctx: ResponseContext, auth: AuthResponse): void;
}

const EMPTY = new Uint8Array(0);
const CONTINUE = TPMA_SESSION.of("continueSession");

/** A password authorization (TPM_RS_PW): the authValue travels in clear as the "hmac". */
export class PasswordSession implements Session {
  readonly handle = TPM_RS_PW;
  readonly #authValue: Uint8Array;

  constructor(authValue: Uint8Array = EMPTY) {
    this.#authValue = authValue;
  }

  authorize(): AuthCommand {
    return { sessionHandle: TPM_RS_PW, nonce: EMPTY, sessionAttributes: CONTINUE, hmac: this.#authValue };
  }

  /** The TPM answers a password session with an empty nonce, continueSession and an empty hmac (Part 1 §19.8.5). */
  verify(_ctx: ResponseContext, auth: AuthResponse): void {
    if (auth.nonce.length !== 0 || auth.hmac.length !== 0 || auth.sessionAttributes !== CONTINUE) {
      throw new MarshalError("a password session must be answered with 0000 01 0000", "value")
        .at("TPMS_AUTH_RESPONSE");
    }
  }
}

/** Password session with an empty authValue: what most hierarchy and PCR handles need. */
export const EMPTY_PASSWORD: Session = new PasswordSession();

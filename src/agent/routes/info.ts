/**
 * agent/info (API 2.2 and newer): the agent's UUID, the TPM algorithms it quotes with and the AK's handle.
 * Upstream: keylime/rust-keylime keylime-agent/src/agent_handler.rs.
 */
import { encAlgName } from "../../protocol/agent_api.ts";
import type { QuoteAlgorithms } from "../quoter.ts";
import type { RouteHandlers } from "./handler.ts";

export interface InfoRouteDeps {
  uuid: string;
  algorithms: QuoteAlgorithms;
  /** The AK's handle (the last one it was loaded at). */
  akHandle(): number;
}

export function infoHandlers(deps: InfoRouteDeps): RouteHandlers<"info"> {
  return {
    info({ version }) {
      const a = deps.algorithms;
      return Promise.resolve({
        agent_uuid: deps.uuid,
        tpm_hash_alg: a.hashAlg,
        tpm_enc_alg: encAlgName(a.encKind, a.encSize, version),
        tpm_sign_alg: a.signAlg,
        ak_handle: deps.akHandle(),
      });
    },
  };
}

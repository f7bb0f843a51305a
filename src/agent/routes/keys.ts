/**
 * keys/ukey, keys/vkey, keys/pubkey, keys/verify (keylime.md §8), answered from the bootstrap key service
 * (keys.ts: decryption, pairing, the payload in the background). keys/verify never touches the TPM.
 * Upstream: keylime/rust-keylime keylime-agent/src/keys_handler.rs.
 */
import { agentStatus } from "../../protocol/agent_api.ts";
import type { BootstrapKeys } from "../keys.ts";
import { RouteError, type RouteHandlers } from "./handler.ts";

export interface KeyRouteDeps {
  keys: Pick<BootstrapKeys, "ukey" | "vkey" | "verify">;
  /** The NK's SubjectPublicKeyInfo PEM. */
  nkPem: string;
}

export function keyHandlers(deps: KeyRouteDeps): RouteHandlers<"ukey" | "vkey" | "pubkey" | "verify"> {
  return {
    async ukey({ body }) {
      await deps.keys.ukey(body);
      return {};
    },
    async vkey({ body }) {
      await deps.keys.vkey(body);
      return {};
    },
    pubkey() {
      return Promise.resolve({ pubkey: deps.nkPem });
    },
    verify({ query }) {
      const hmac = deps.keys.verify(query.challenge);
      if (hmac === undefined) throw new RouteError(400, agentStatus.bootstrapKeyNotAvailable);
      return Promise.resolve({ hmac });
    },
  };
}

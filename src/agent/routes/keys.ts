/**
 * keys/ukey, keys/vkey, keys/pubkey, keys/verify (keylime.md §8): U and V decrypted with the NK and paired
 * until HMAC-SHA384(K, uuid) matches a U's auth_tag; what happens with K and the payload (payload_store.ts)
 * runs after the answer, as upstream's keys worker does. keys/verify never touches the TPM.
 * Upstream: keylime/rust-keylime keylime-agent/src/keys_handler.rs.
 */
import { agentStatus } from "../../protocol/agent_api.ts";
import { decryptKeyShare, type DerivedKey, type KeyPairing, parseAuthTag, verifyHmac } from "../../protocol/payload.ts";
import { RouteError, type RouteHandlers } from "./handler.ts";

export interface KeyRouteDeps {
  /** The NK's private key for RSA-OAEP-SHA1 (importNkPrivateKey). */
  nk: CryptoKey;
  nkPem: string;
  pairing: KeyPairing;
  /** U and V paired up: store and run the payload. Not awaited by the answer; must not throw. */
  onKey(derived: DerivedKey): void;
}

export function keyHandlers(deps: KeyRouteDeps): RouteHandlers<"ukey" | "vkey" | "pubkey" | "verify"> {
  return {
    async ukey({ body }) {
      const authTag = parseAuthTag(body.auth_tag);
      const share = await decryptKeyShare(deps.nk, body.encrypted_key);
      const derived = deps.pairing.addU(body.payload ? { share, authTag, payload: body.payload } : { share, authTag });
      if (derived) deps.onKey(derived);
      return {};
    },
    async vkey({ body }) {
      const derived = deps.pairing.addV(await decryptKeyShare(deps.nk, body.encrypted_key));
      if (derived) deps.onKey(derived);
      return {};
    },
    pubkey() {
      return Promise.resolve({ pubkey: deps.nkPem });
    },
    verify({ query }) {
      const k = deps.pairing.key;
      if (!k) throw new RouteError(400, agentStatus.bootstrapKeyNotAvailable);
      return Promise.resolve({ hmac: verifyHmac(k, query.challenge) });
    },
  };
}

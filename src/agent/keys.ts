/**
 * The agent's bootstrap key service behind keys/ukey, keys/vkey and keys/verify (keylime.md §8), as
 * rust-keylime's keys worker runs it (keylime-agent/src/keys_handler.rs): U and V are decrypted with the NK
 * when they arrive and paired in either order; once K is derived keys/verify answers, and a payload that came
 * with the winning U is decrypted, stored and run in the background, one payload at a time. The HTTP answer
 * to keys/ukey does not wait for the payload (upstream answers 200 at once).
 */
import type { webcrypto } from "node:crypto";
import type { UKeyBody } from "../protocol/agent_api.ts";
import { decryptKeyShare, KeyPairing, parseAuthTag, verifyHmac } from "../protocol/payload.ts";
import { type PayloadStoreOptions, storeDerivedPayload, type StoredPayload } from "./payload_store.ts";
import { type AgentLog, MSG } from "./messages.ts";
import { SerialWork } from "./serial.ts";

export interface BootstrapKeysOptions {
  uuid: string;
  /** The NK's private key for RSA-OAEP-SHA1 (payload.ts importNkPrivateKey). */
  nk: webcrypto.CryptoKey;
  /** mTLS on, or enable_insecure_payload: only then are payloads run. */
  runPayloads: boolean;
  store: PayloadStoreOptions;
  log: AgentLog;
  /** Called after a payload was stored (e.g. to load the revocation certificate it brought). */
  onPayloadStored?: (stored: StoredPayload) => void;
}

export class BootstrapKeys {
  readonly #o: BootstrapKeysOptions;
  readonly #pairing: KeyPairing;
  readonly #payloads = new SerialWork();

  constructor(o: BootstrapKeysOptions) {
    this.#o = o;
    this.#pairing = new KeyPairing(o.uuid);
  }

  /** K, once derived. */
  get key(): Uint8Array | undefined {
    return this.#pairing.key;
  }

  /** keys/ukey. Throws PayloadError (a 400) when U does not decrypt or the auth_tag is not 48 bytes of hex. */
  async ukey(body: UKeyBody): Promise<void> {
    const share = await decryptKeyShare(this.#o.nk, body.encrypted_key);
    const authTag = parseAuthTag(body.auth_tag);
    this.#derived(this.#pairing.addU(body.payload ? { share, authTag, payload: body.payload } : { share, authTag }));
  }

  /** keys/vkey. Throws PayloadError (a 400) when V does not decrypt. */
  async vkey(body: { encrypted_key: Uint8Array }): Promise<void> {
    this.#derived(this.#pairing.addV(await decryptKeyShare(this.#o.nk, body.encrypted_key)));
  }

  /** keys/verify: the HMAC of the challenge with K, or undefined before K ("Bootstrap key not yet available."). */
  verify(challenge: string): string | undefined {
    const k = this.#pairing.key;
    return k ? verifyHmac(k, challenge) : undefined;
  }

  /** Resolves when the payloads queued so far have been handled (tests, shutdown). */
  idle(): Promise<void> {
    return this.#payloads.idle();
  }

  #derived(derived: ReturnType<KeyPairing["addU"]>): void {
    if (!derived) return;
    this.#o.log.info(MSG.keyDerived);
    if (!derived.payload) return;
    if (!this.#o.runPayloads) {
      this.#o.log.warn(MSG.payloadsDisabled);
      return;
    }
    void this.#payloads.run(async () => {
      try {
        const stored = await storeDerivedPayload(this.#o.store, derived);
        if (stored) this.#o.onPayloadStored?.(stored);
      } catch (e) {
        this.#o.log.warn(MSG.payloadFailed((e as Error).message));
      }
    });
  }
}

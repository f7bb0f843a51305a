/** Test helpers for payload delivery: the store options with rust-keylime's defaults, and a whole U/V delivery. */
import type { BootstrapKeys } from "../../src/agent/keys.ts";
import type { PayloadStoreOptions } from "../../src/agent/payload_store.ts";
import type { AgentLog } from "../../src/agent/messages.ts";
import type { UKeyRequest } from "../../src/protocol/payload.ts";

/** enc_keyname, dec_payload_file, extract_payload_zip and payload_script at their defaults. */
export function defaultStoreOptions(secureDir: string, log: AgentLog): PayloadStoreOptions {
  return {
    secureDir,
    encKeyname: "derived_tci_key",
    decPayloadFile: "decrypted_payload",
    extractPayloadZip: true,
    payloadScript: "autorun.sh",
    log,
  };
}

/** keys/ukey then keys/vkey, and wait for the payload work they started. */
export async function deliverKeys(
  keys: BootstrapKeys,
  requests: { ukey: UKeyRequest; vkey: { encrypted_key: Uint8Array } },
): Promise<void> {
  await keys.ukey(requests.ukey);
  await keys.vkey(requests.vkey);
  await keys.idle();
}

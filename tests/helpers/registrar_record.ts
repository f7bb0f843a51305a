/** A registrar record with every field at a plain value, for tests and benches of the store. */
import type { AgentRecord } from "../../src/registrar/store.ts";

export const sampleAgentRecord = (id: string, over: Partial<AgentRecord> = {}): AgentRecord => ({
  agent_id: id,
  aik_tpm: new Uint8Array([1, 2, 3]),
  ek_tpm: new Uint8Array([4, 5]),
  ekcert: null,
  ek_trust: "absent",
  key: "a2V5",
  active: false,
  ip: "127.0.0.1",
  port: 9002,
  mtls_cert: "disabled",
  regcount: 1,
  transport_key: null,
  certify_nonce: null,
  nk_binding: null,
  ...over,
});

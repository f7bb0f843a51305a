/**
 * The NK binding check with a fresh nonce, two ways: TPM2_Certify of the NK by the AK
 * (`quotes/identity?binding=certify`, spec/nk-certify.md) when the registrar holds certify evidence or the
 * agent answers only that way, else upstream's identity quote whose PCR 16 holds H(NK PEM) (keylime.md §6).
 * Either way the NK must also be the one attest saw bound before (the state's pin).
 */
import { createHash, createPublicKey, type KeyObject } from "node:crypto";
import { checkNkPcr16 } from "../protocol/nk_pcr16.ts";
import { verifyQuote } from "../protocol/quote.ts";
import { identityNonceBytes, verifyNkCertification } from "../protocol/nk_certify.ts";
import { algByName, sameKey } from "../tpm/crypto.ts";
import { agentStatus } from "../protocol/agent_api.ts";
import { type AgentPeer, PeerError, type RegistrarRecord } from "./peers.ts";

export class NkBindingError extends Error {
  readonly code = "ERR_NK_BINDING";
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "NkBindingError";
  }
}

export interface NkBinding {
  readonly mode: "certify" | "pcr16";
  /** SHA-256 (hex) of the NK's SubjectPublicKeyInfo DER: what the state pins. */
  readonly nk: string;
  readonly detail: string;
}

const fingerprint = (key: KeyObject) =>
  createHash("sha256").update(key.export({ format: "der", type: "spki" })).digest("hex");

function hashAlgOf(name: string): number {
  const alg = algByName(name);
  if (alg === undefined) throw new NkBindingError(`the agent's hash_alg "${name}" is not a hash algorithm`);
  return alg;
}

/** Upstream's binding: a quote of PCR 16 with the nonce, signed by the registered AK, PCR 16 = H(0 ‖ H(pubkey)). */
async function pcr16Binding(agent: AgentPeer, record: RegistrarRecord, nonce: string): Promise<NkBinding> {
  const q = await agent.identityQuote(nonce);
  if (!q.pubkey) throw new NkBindingError("the identity quote carries no pubkey (the NK)");
  const hashAlg = hashAlgOf(q.hash_alg);
  const v = verifyQuote({ quote: q.quote, nonce, hashAlg, aikTpm: record.aik_tpm });
  const why = checkNkPcr16(q.pubkey, hashAlg, v.pcrs);
  if (why) throw new NkBindingError(why);
  let key: KeyObject;
  try {
    key = createPublicKey(q.pubkey);
  } catch (e) {
    throw new NkBindingError(`the identity quote's pubkey is not a PEM public key: ${(e as Error).message}`);
  }
  return { mode: "pcr16", nk: fingerprint(key), detail: `identity quote by the AK, PCR 16 = H(0 ‖ H(NK))` };
}

/**
 * The registrar's record of the binding (nk-certify.md: stored "so that a tenant or verifier can check the
 * binding again"), then a fresh certification over our nonce of the same NK.
 */
async function certifyBinding(agent: AgentPeer, record: RegistrarRecord, nonce: string): Promise<NkBinding> {
  const mtls = record.mtls_cert && record.mtls_cert !== "disabled" ? record.mtls_cert : undefined;
  const expectedKey = mtls ?? record.transport_key;
  if (!expectedKey) throw new NkBindingError("the registrar record has neither an mtls_cert nor a transport_key");
  let registered: KeyObject | undefined;
  if (record.nk_tpm && record.nk_attest && record.nk_sign && record.certify_nonce) {
    registered = verifyNkCertification({
      nkTpm: record.nk_tpm,
      nkAttest: record.nk_attest,
      nkSign: record.nk_sign,
      akTpm: record.aik_tpm,
      nonce: record.certify_nonce,
      expectedKey,
    }).nkKey;
  }
  const a = await agent.certifyIdentity(nonce);
  const fresh = verifyNkCertification({
    nkTpm: a.nk_tpm,
    nkAttest: a.nk_attest,
    nkSign: a.nk_sign,
    akTpm: record.aik_tpm,
    nonce: identityNonceBytes(nonce),
    expectedKey,
  });
  if (registered && !sameKey(fresh.nkKey, registered)) {
    throw new NkBindingError("the NK certified now is not the one certified at registration (nk_tpm)");
  }
  const key = mtls ? "the registered mtls_cert's key" : "the registered transport_key";
  const stored = registered
    ? `; the registration's certification${record.nk_verified_at ? ` (${record.nk_verified_at})` : ""} verifies too`
    : "";
  return { mode: "certify", nk: fingerprint(fresh.nkKey), detail: `TPM2_Certify of ${key} by the AK${stored}` };
}

/** An agent's refusal of one proof: its nk_binding gives only the other (spec/nk-certify.md). */
const refuses = (e: unknown, by: "certify" | "pcr16") =>
  e instanceof PeerError && e.message.includes(agentStatus.identityBindingIs(by === "certify" ? "pcr16" : "certify"));

/**
 * Prove the binding with `nonce`: by TPM2_Certify when the registrar holds a certification, else by PCR 16;
 * the other way when the agent gives only that one. `pinned`: the NK fingerprints of the last run by
 * binding (with PCR 16 the NK is the payload key, with TPM2_Certify the mTLS or transport key).
 */
export async function proveNkBinding(
  agent: AgentPeer,
  record: RegistrarRecord,
  nonce: string,
  pinned: NkPins | undefined,
): Promise<NkBinding> {
  const first = record.nk_tpm ? "certify" : "pcr16";
  const by = (mode: "certify" | "pcr16") =>
    mode === "certify" ? certifyBinding(agent, record, nonce) : pcr16Binding(agent, record, nonce);
  let b: NkBinding;
  try {
    b = await by(first);
  } catch (e) {
    if (!refuses(e, first)) throw e;
    const other = first === "certify" ? "pcr16" : "certify";
    b = await by(other);
    b = { ...b, detail: `${b.detail} (the agent gives no ${first} proof)` };
  }
  const before = pinned?.[b.mode];
  if (before !== undefined && before !== b.nk) {
    throw new NkBindingError(
      `the agent's NK changed: it is sha256:${b.nk.slice(0, 16)}…, the last run saw sha256:${before.slice(0, 16)}…`,
    );
  }
  return { ...b, detail: `${b.detail}; NK sha256:${b.nk.slice(0, 16)}…${before ? " (as before)" : " (pinned)"}` };
}

/** The NK fingerprint (SHA-256 of its SPKI, hex) seen last, per binding. */
export type NkPins = { readonly [K in NkBinding["mode"]]?: string };

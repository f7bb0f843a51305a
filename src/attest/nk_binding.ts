/**
 * The NK binding check with a fresh nonce, two ways: TPM2_Certify of the NK by the AK
 * (`quotes/identity?binding=certify`, spec/nk-certify.md) when the registrar holds certify evidence or the
 * agent answers only that way, else upstream's identity quote whose PCR 16 holds H(NK PEM) (keylime.md §6).
 * Either way the NK must also be the one attest saw bound before (the state's pin).
 */
import { createHash, createPublicKey, type KeyObject, X509Certificate } from "node:crypto";
import { checkNkPcr16 } from "../protocol/nk_pcr16.ts";
import { verifyQuote } from "../protocol/quote.ts";
import { binary, object, text } from "../protocol/schema.ts";
import { checkCertifyAttest } from "../tpm/attest.ts";
import { algByName, objectName, publicKeyOf, sameKey } from "../tpm/crypto.ts";
import { decode } from "../tpm/marshal.ts";
import { TPM2B_PUBLIC, TPMT_SIGNATURE } from "../tpm/structures.ts";
import { type AgentPeer, type NkEvidence, PeerError, type RegistrarRecord, routeResults } from "./peers.ts";

/** The answer of `quotes/identity?binding=certify` (spec/nk-certify.md, Identity proof). */
export const CertifyResults = object({
  nk_tpm: binary({ maxBytes: 2048 }),
  nk_attest: binary({ maxBytes: 4096 }),
  nk_sign: binary({ maxBytes: 4096 }),
  hash_alg: text({ max: 32 }),
  enc_alg: text({ max: 32 }),
  sign_alg: text({ max: 32 }),
  pubkey: text({ max: 16 * 1024, expect: "a PEM public key" }),
});

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
 * The certify evidence checked with our nonce: the attestation names nk_tpm and is signed by the registered
 * AK, and nk_tpm is the NK the agent registered (its mTLS key, or the registrar's stored nk_tpm).
 */
export function verifyCertifiedNk(input: {
  nkTpm: Uint8Array;
  nkAttest: Uint8Array;
  nkSign: Uint8Array;
  akTpm: Uint8Array;
  nonce: Uint8Array;
  expectedKeys: readonly { what: string; key: KeyObject }[];
}): KeyObject {
  let nk, ak, sig;
  try {
    nk = decode(TPM2B_PUBLIC, input.nkTpm);
    ak = decode(TPM2B_PUBLIC, input.akTpm);
    sig = decode(TPMT_SIGNATURE, input.nkSign);
  } catch (e) {
    throw new NkBindingError(`malformed certify evidence: ${(e as Error).message}`, { cause: e });
  }
  try {
    checkCertifyAttest({
      attest: input.nkAttest,
      signature: sig,
      signer: ak,
      qualifyingData: input.nonce,
      certifiedName: objectName(nk),
    });
  } catch (e) {
    throw new NkBindingError((e as Error).message, { cause: e });
  }
  const key = publicKeyOf(nk);
  for (const { what, key: expected } of input.expectedKeys) {
    if (!sameKey(key, expected)) throw new NkBindingError(`the certified NK is not ${what}`);
  }
  return key;
}

async function certifyBinding(
  agent: AgentPeer,
  record: RegistrarRecord,
  registered: NkEvidence,
  nonce: string,
): Promise<NkBinding> {
  const a = routeResults(agent.who, await agent.certifyIdentity(nonce), CertifyResults);
  const expectedKeys: { what: string; key: KeyObject }[] = [];
  if (record.mtls_cert && record.mtls_cert !== "disabled") {
    expectedKeys.push({
      what: "the key of the registered mtls_cert",
      key: new X509Certificate(record.mtls_cert).publicKey,
    });
  }
  if (registered.nk_tpm) {
    expectedKeys.push({
      what: "the NK certified at registration (nk_tpm)",
      key: publicKeyOf(decode(TPM2B_PUBLIC, registered.nk_tpm)),
    });
  }
  const key = verifyCertifiedNk({
    nkTpm: a.nk_tpm,
    nkAttest: a.nk_attest,
    nkSign: a.nk_sign,
    akTpm: record.aik_tpm,
    nonce: new TextEncoder().encode(nonce),
    expectedKeys,
  });
  return {
    mode: "certify",
    nk: fingerprint(key),
    detail: `TPM2_Certify of the NK by the AK${
      expectedKeys.length ? `; it is ${expectedKeys.map((k) => k.what).join(" and ")}` : ""
    }`,
  };
}

/** Prove the binding with `nonce`; `pinned` is the NK fingerprint of the last run, if any. */
export async function proveNkBinding(
  agent: AgentPeer,
  record: RegistrarRecord,
  registered: NkEvidence,
  nonce: string,
  pinned: string | undefined,
): Promise<NkBinding> {
  let b: NkBinding;
  if (registered.nk_tpm) {
    b = await certifyBinding(agent, record, registered, nonce);
  } else {
    try {
      b = await pcr16Binding(agent, record, nonce);
    } catch (e) {
      // An agent with nk_binding = "certify" refuses the PCR 16 quote (spec/nk-certify.md).
      if (!(e instanceof PeerError && /certify/i.test(e.message))) throw e;
      b = await certifyBinding(agent, record, registered, nonce);
    }
  }
  if (pinned !== undefined && pinned !== b.nk) {
    throw new NkBindingError(
      `the agent's NK changed: it is sha256:${b.nk.slice(0, 16)}…, the last run saw sha256:${pinned.slice(0, 16)}…`,
    );
  }
  return { ...b, detail: `${b.detail}; NK sha256:${b.nk.slice(0, 16)}…${pinned ? " (as before)" : " (pinned)"}` };
}

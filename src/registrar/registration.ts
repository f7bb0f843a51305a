/**
 * Registration and activation as the reference registrar performs them, pure of HTTP (keylime.md §2).
 * Upstream: keylime/keylime keylime/models/registrar/registrar_agent.py and
 * keylime/web/registrar/agents_controller.py. Beyond upstream: the AK must be a restricted signing key,
 * and the EK certificate must chain to the trust store (unless allowUntrustedEk).
 */
import { createPublicKey, type KeyObject, randomBytes } from "node:crypto";
import { checkAuthTag, makeKeylimeChallenge } from "../protocol/credential.ts";
import { NkCertifyError, verifyNkCertification } from "../protocol/nk_certify.ts";
import {
  type ActivateBody,
  CERTIFY_NONCE_BYTES,
  type RegisterBody,
  type RegisterResults,
  type TpmPublicBytes,
} from "../protocol/registrar_api.ts";
import { type Infer, ProtocolInputError } from "../protocol/schema.ts";
import type { ShowResults } from "../protocol/registrar_api.ts";
import { sameBytes } from "../tpm/bytes.ts";
import { TPM_ALG } from "../tpm/constants.ts";
import { algName, publicKeyOf, sameKey } from "../tpm/crypto.ts";
import { TPMA_OBJECT } from "../tpm/structures.ts";
import { CertificateInputError, type EkTrustStore, parseCertificates, type X509Certificate } from "./ek_trust.ts";
import { AgentNotFoundError, AuthTagMismatchError, IdentityChangedError } from "./errors.ts";
import type { AgentRecord, CertifyNonce, EkTrust, RegistrarStore } from "./store.ts";
import { fromBase64 } from "../util/encoding.ts";

export interface RegistrarService {
  store: RegistrarStore;
  ekTrust: EkTrustStore;
  /** Store EK certificates that do not chain to the trust store (flagged `untrusted`) instead of refusing them. */
  allowUntrustedEk: boolean;
  /** Operator log lines; never given secrets. */
  log: (line: string) => void;
  /** The NK certify extension (spec/nk-certify.md); spoken whenever an agent asks for it. */
  nkCertify?: {
    /** Refuse registrations without nk_certify (default false). */
    require?: boolean;
    /** Seconds a certify nonce stays valid (default DEFAULT_CERTIFY_NONCE_TTL). */
    nonceTtl?: number;
  };
  /** The clock, ms since the epoch (default Date.now); tests move it to expire nonces. */
  now?: () => number;
}

/** Seconds a certify nonce stays valid by default (spec/nk-certify.md step 2). */
export const DEFAULT_CERTIFY_NONCE_TTL = 300;

/** What makes an AK a restricted signing key (TPM 2.0 Part 1 §25.2.3 attestation keys). */
const AK_REQUIRED = ["fixedTPM", "fixedParent", "sensitiveDataOrigin", "restricted", "sign"] as const;

const refuse = (field: string, reason: string) => ProtocolInputError.at(field, reason);

/** An AK must be a restricted signing key: an RSA or ECC key that the TPM keeps and only signs what it made. */
export function checkAk(ak: TpmPublicBytes): void {
  const pub = ak.public;
  if (pub.type !== TPM_ALG.RSA && pub.type !== TPM_ALG.ECC) {
    throw refuse("aik_tpm", `an AK must be an RSA or ECC key, not ${algName(pub.type)}`);
  }
  const attrs = pub.objectAttributes;
  const missing = AK_REQUIRED.filter((n) => !TPMA_OBJECT.has(attrs, n));
  if (missing.length) {
    throw refuse(
      "aik_tpm",
      `not a restricted signing key: ${missing.join(", ")} ${missing.length === 1 ? "is" : "are"} clear ` +
        `(objectAttributes 0x${attrs.toString(16).padStart(8, "0")})`,
    );
  }
  if (TPMA_OBJECT.has(attrs, "decrypt")) {
    throw refuse("aik_tpm", "not a restricted signing key: decrypt is set");
  }
}

interface CheckedEk {
  /** The EK's public key, made once: the challenge is encrypted to it. */
  ekKey: KeyObject;
  ekcert: X509Certificate | null;
  trust: EkTrust;
}

/** The EK and its certificate: the same key, and a chain to the trust store. */
function checkEk(svc: RegistrarService, agentId: string, body: RegisterBody): CheckedEk {
  const ek = body.ek_tpm;
  // Without the EK there is nothing to encrypt the challenge to (upstream: produce_ak_challenge fails).
  if (!ek) throw refuse("ek_tpm", "is required: the challenge is encrypted to the EK");
  let ekKey: KeyObject;
  try {
    if (ek.public.type !== TPM_ALG.RSA && ek.public.type !== TPM_ALG.ECC) throw new Error("not RSA or ECC");
    ekKey = publicKeyOf(ek.public);
  } catch {
    throw refuse("ek_tpm", "must contain a valid RSA or EC public key");
  }
  if (!body.ekcert) {
    // Upstream's registrar registers an agent without an EK certificate; its tenant decides (require_ek_cert).
    svc.log(`agent ${agentId}: no EK certificate sent; registered with ek_trust=absent`);
    return { ekKey, ekcert: null, trust: "absent" };
  }
  let chain: X509Certificate[];
  try {
    chain = parseCertificates(body.ekcert);
  } catch (e) {
    throw refuse("ekcert", e instanceof CertificateInputError ? e.message : String(e));
  }
  const [cert, ...intermediates] = chain as [X509Certificate, ...X509Certificate[]];
  if (!sameKey(ekKey, cert.publicKey)) throw refuse("ek_tpm", "must contain the same public key found in ekcert");
  const verdict = svc.ekTrust.check(cert, intermediates);
  if (verdict.trusted) return { ekKey, ekcert: cert, trust: "trusted" };
  if (!svc.allowUntrustedEk) {
    throw refuse(
      "ekcert",
      `issued by '${verdict.issuer}', which is not a TPM manufacturer CA in the trust store (add its CA with ` +
        `--tpm-ca-dir, or accept unverified EKs with --allow-untrusted-ek)`,
    );
  }
  svc.log(
    `agent ${agentId}: EK certificate issued by '${verdict.issuer}' does not chain to the trust store; ` +
      `stored as untrusted (--allow-untrusted-ek)`,
  );
  return { ekKey, ekcert: cert, trust: "untrusted" };
}

function checkMtlsCert(text: string | undefined): string | null {
  if (text === undefined) return null;
  if (text === "disabled") return text;
  try {
    return parseCertificates(text)[0]!.toString();
  } catch (e) {
    throw refuse("mtls_cert", `not "disabled" nor a certificate: ${(e as Error).message}`);
  }
}

/** The NK's keys that certification may prove: RSA-2048 and EC P-256 (spec/nk-certify.md, Terms). */
function checkTransportKey(pem: string): string {
  let key;
  try {
    key = createPublicKey(pem);
  } catch (e) {
    throw refuse("transport_key", `not a PEM public key: ${(e as Error).message}`);
  }
  const d = key.asymmetricKeyDetails;
  const ok = (key.asymmetricKeyType === "rsa" && d?.modulusLength === 2048) ||
    (key.asymmetricKeyType === "ec" && d?.namedCurve === "prime256v1");
  if (!ok) throw refuse("transport_key", "must be an RSA-2048 or EC P-256 public key");
  return key.export({ format: "pem", type: "spki" }).toString();
}

interface NkRequest {
  /** The key the NK must be when mTLS is off. */
  transportKey: string | null;
  nonce: CertifyNonce;
}

/** With nk_certify: the key the certification will be checked against, and a fresh nonce. */
function nkRequest(svc: RegistrarService, body: RegisterBody, mtls: string | null): NkRequest | null {
  if (!body.nk_certify) {
    if (svc.nkCertify?.require) throw refuse("nk_certify", "is required by this registrar (require_nk_certify)");
    return null;
  }
  if (mtls === null) throw refuse("mtls_cert", 'is required with nk_certify (a certificate, or "disabled")');
  let transportKey = null;
  if (mtls === "disabled") {
    if (!body.transport_key) throw refuse("transport_key", 'is required with nk_certify when mtls_cert is "disabled"');
    transportKey = checkTransportKey(body.transport_key);
  }
  const now = (svc.now ?? Date.now)();
  return {
    transportKey,
    nonce: { nonce: new Uint8Array(randomBytes(CERTIFY_NONCE_BYTES)), issued_at: now, used: false },
  };
}

/** The identity fields of a stored record that a registration would change (7.14: refused with 403). */
function changedIdentity(old: AgentRecord, ek: Uint8Array, ekcert: Uint8Array | null, aik: Uint8Array): string[] {
  const changed: string[] = [];
  if (!sameBytes(old.ek_tpm, ek)) changed.push("ek_tpm");
  if (ekcert && (!old.ekcert || !sameBytes(old.ekcert, ekcert))) changed.push("ekcert");
  if (!sameBytes(old.aik_tpm, aik)) changed.push("aik_tpm");
  return changed;
}

/**
 * POST /agents/:agent_id: check everything, bind a fresh challenge to the AK with the EK, store the record
 * (inactive until activation) and return the MakeCredential blob.
 */
export async function registerAgent(
  svc: RegistrarService,
  agentId: string,
  body: RegisterBody,
): Promise<Infer<typeof RegisterResults["fields"]>> {
  if (body.iak_tpm || body.idevid_tpm || body.iak_cert || body.idevid_cert) {
    throw refuse(body.iak_tpm ? "iak_tpm" : "idevid_tpm", "IAK/IDevID registration is not supported by this registrar");
  }
  checkAk(body.aik_tpm);
  const mtls = checkMtlsCert(body.mtls_cert);
  const nk = nkRequest(svc, body, mtls);
  const { ekKey, ekcert, trust } = checkEk(svc, agentId, body);
  const ek = body.ek_tpm!.bytes;
  const aik = body.aik_tpm.bytes;
  const ekcertDer = ekcert ? new Uint8Array(ekcert.raw) : null;
  const before = svc.store.get(agentId);
  const changed = before && changedIdentity(before, ek, ekcertDer, aik);
  if (changed?.length) {
    svc.log(`agent ${agentId}: re-registration with a different TPM identity refused (changed: ${changed.join(", ")})`);
    throw new IdentityChangedError(agentId, changed);
  }

  let challenge;
  try {
    challenge = await makeKeylimeChallenge(body.ek_tpm!, body.aik_tpm, { ekKey });
  } catch (e) {
    throw refuse("ek_tpm", `cannot make a credential for this EK and AK: ${(e as Error).message}`);
  }
  svc.store.transaction((tx) => {
    // Checked again inside the transaction: another registration of this id may have landed meanwhile.
    const old = tx.get(agentId);
    const raced = old && changedIdentity(old, ek, ekcertDer, aik);
    if (raced?.length) throw new IdentityChangedError(agentId, raced);
    tx.put({
      agent_id: agentId,
      aik_tpm: aik,
      ek_tpm: ek,
      ekcert: ekcertDer ?? old?.ekcert ?? null,
      ek_trust: ekcertDer ? trust : old?.ek_trust ?? trust,
      key: challenge.key,
      // Upstream resets `active` only when ek_tpm or aik_tpm change, which is refused above.
      active: old?.active ?? false,
      ip: body.ip ?? old?.ip ?? null,
      port: body.port ?? old?.port ?? null,
      mtls_cert: mtls ?? old?.mtls_cert ?? null,
      regcount: (old?.regcount ?? 0) + 1,
      // Each registration starts the NK's proof afresh: an earlier binding may be of another key.
      transport_key: nk?.transportKey ?? null,
      certify_nonce: nk?.nonce ?? null,
      nk_binding: null,
    });
  });
  svc.log(
    `agent ${agentId}: registered (EK certificate ${trust}${nk ? ", NK to be certified" : ""}); waiting for activation`,
  );
  return { blob: fromBase64(challenge.blob), ...(nk ? { certify_nonce: nk.nonce.nonce } : {}) };
}

type ActivateBody = Infer<typeof ActivateBody["fields"]>;

/**
 * PUT /agents/:agent_id: the checks of spec/nk-certify.md step 5 in order (auth_tag; after a registration
 * with nk_certify, the nonce and the NK's certification). All pass: the agent is active. One fails: its
 * record is deleted, in the same transaction that read it, and the failure names the check.
 */
export function activateAgent(svc: RegistrarService, agentId: string, body: ActivateBody): void {
  const now = (svc.now ?? Date.now)();
  const failure = svc.store.transaction((tx) => {
    const rec = tx.get(agentId);
    if (!rec) throw new AgentNotFoundError(agentId);
    const fail = checkActivation(svc, rec, body, now);
    if (fail) tx.delete(agentId);
    else tx.update(rec, activated(rec, body, now));
    return fail;
  });
  if (failure instanceof NkCertifyError) {
    svc.log(`agent ${agentId}: NK certification refused (${failure.check}); record deleted, it must register again`);
    throw failure;
  }
  if (failure) {
    svc.log(`agent ${agentId}: wrong auth_tag; record deleted, the agent must register again`);
    throw new AuthTagMismatchError(agentId, body.auth_tag);
  }
  svc.log(`agent ${agentId}: activated${activatedWithNk(body) ? " with a certified NK" : ""}`);
}

const activatedWithNk = (body: ActivateBody) => body.nk_tpm !== undefined;

/** The first failed check of an activation: "auth_tag", or an NkCertifyError naming a later one. */
function checkActivation(
  svc: RegistrarService,
  rec: AgentRecord,
  body: ActivateBody,
  now: number,
): "auth_tag" | NkCertifyError | null {
  if (!checkAuthTag(rec.key, rec.agent_id, body.auth_tag)) return "auth_tag";
  const sent = [body.nk_tpm, body.nk_attest, body.nk_sign];
  // The classic flow: no nonce was issued and no certification sent.
  if (rec.certify_nonce === null && sent.every((f) => f === undefined)) return null;
  try {
    const nonce = checkNonce(svc, rec.certify_nonce, now);
    const [nkTpm, nkAttest, nkSign] = sent;
    if (!nkTpm || !nkAttest || !nkSign) {
      throw new NkCertifyError("attest", "nk_tpm, nk_attest and nk_sign are required after certify_nonce");
    }
    const expectedKey = rec.mtls_cert === "disabled" ? rec.transport_key : rec.mtls_cert;
    if (!expectedKey) throw new NkCertifyError("key", "the registration carried no mtls_cert nor transport_key");
    verifyNkCertification({ nkTpm, nkAttest, nkSign, akTpm: rec.aik_tpm, nonce, expectedKey });
    return null;
  } catch (e) {
    if (e instanceof NkCertifyError) return e;
    throw e;
  }
}

/** Known for this agent, unexpired and unused (spec/nk-certify.md step 5.2). */
function checkNonce(svc: RegistrarService, n: CertifyNonce | null, now: number): Uint8Array {
  if (n === null) {
    throw new NkCertifyError("nonce", "no certify nonce was issued to this agent (register with nk_certify)");
  }
  if (n.used) throw new NkCertifyError("nonce", "the certify nonce was already used");
  const ttl = svc.nkCertify?.nonceTtl ?? DEFAULT_CERTIFY_NONCE_TTL;
  if (now - n.issued_at > ttl * 1000) {
    throw new NkCertifyError(
      "nonce",
      `the certify nonce expired (issued ${Math.round((now - n.issued_at) / 1000)} s ago, valid ${ttl} s)`,
    );
  }
  return n.nonce;
}

function activated(rec: AgentRecord, body: ActivateBody, now: number): AgentRecord {
  if (!rec.certify_nonce) return { ...rec, active: true };
  return {
    ...rec,
    active: true,
    certify_nonce: { ...rec.certify_nonce, used: true },
    nk_binding: {
      nk_tpm: body.nk_tpm!,
      nk_attest: body.nk_attest!,
      nk_sign: body.nk_sign!,
      nonce: rec.certify_nonce.nonce,
      verified_at: new Date(now).toISOString(),
    },
  };
}

/** GET /agents/:agent_id (tenant): only active agents are shown. */
export function showAgent(svc: RegistrarService, agentId: string): Infer<typeof ShowResults["fields"]> {
  const rec = svc.store.get(agentId);
  if (!rec) throw new AgentNotFoundError(agentId);
  if (!rec.active) throw new AgentNotFoundError(agentId, true);
  return {
    agent_id: rec.agent_id,
    aik_tpm: rec.aik_tpm,
    ek_tpm: rec.ek_tpm,
    ...(rec.ekcert ? { ekcert: rec.ekcert } : {}),
    ...(rec.mtls_cert !== null ? { mtls_cert: rec.mtls_cert } : {}),
    ...(rec.ip !== null ? { ip: rec.ip } : {}),
    ...(rec.port !== null ? { port: rec.port } : {}),
    regcount: rec.regcount,
    ...(rec.transport_key !== null ? { transport_key: rec.transport_key } : {}),
    ...(rec.nk_binding
      ? {
        nk_tpm: rec.nk_binding.nk_tpm,
        nk_attest: rec.nk_binding.nk_attest,
        nk_sign: rec.nk_binding.nk_sign,
        certify_nonce: rec.nk_binding.nonce,
        nk_verified_at: rec.nk_binding.verified_at,
      }
      : {}),
  };
}

export function listAgents(svc: RegistrarService): string[] {
  return svc.store.listIds();
}

/** DELETE /agents/:agent_id (tenant). */
export function deleteAgent(svc: RegistrarService, agentId: string): void {
  const deleted = svc.store.transaction((tx) => tx.delete(agentId));
  if (!deleted) throw new AgentNotFoundError(agentId);
  svc.log(`agent ${agentId}: deleted`);
}

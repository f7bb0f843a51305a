/**
 * Registration and activation as the reference registrar performs them, pure of HTTP (keylime.md §2).
 * Upstream: keylime/keylime keylime/models/registrar/registrar_agent.py and
 * keylime/web/registrar/agents_controller.py. Beyond upstream: the AK must be a restricted signing key,
 * and the EK certificate must chain to the trust store (unless allowUntrustedEk).
 */
import { checkAuthTag, makeKeylimeChallenge } from "../protocol/credential.ts";
import type { RegisterBody, TpmPublicBytes } from "../protocol/registrar_api.ts";
import { type Infer, ProtocolInputError } from "../protocol/schema.ts";
import type { ShowResults } from "../protocol/registrar_api.ts";
import { sameBytes } from "../tpm/bytes.ts";
import { TPM_ALG } from "../tpm/constants.ts";
import { algName, publicKeyOf, sameKey } from "../tpm/crypto.ts";
import { TPMA_OBJECT } from "../tpm/structures.ts";
import { CertificateInputError, type EkTrustStore, parseCertificates, type X509Certificate } from "./ek_trust.ts";
import { AgentNotFoundError, AuthTagMismatchError, IdentityChangedError } from "./errors.ts";
import type { AgentRecord, EkTrust, RegistrarStore } from "./store.ts";
import { fromBase64 } from "../util/encoding.ts";

export interface RegistrarService {
  store: RegistrarStore;
  ekTrust: EkTrustStore;
  /** Store EK certificates that do not chain to the trust store (flagged `untrusted`) instead of refusing them. */
  allowUntrustedEk: boolean;
  /** Operator log lines; never given secrets. */
  log: (line: string) => void;
}

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
  ekcert: X509Certificate | null;
  trust: EkTrust;
}

/** The EK and its certificate: the same key, and a chain to the trust store. */
function checkEk(svc: RegistrarService, agentId: string, body: RegisterBody): CheckedEk {
  const ek = body.ek_tpm;
  // Without the EK there is nothing to encrypt the challenge to (upstream: produce_ak_challenge fails).
  if (!ek) throw refuse("ek_tpm", "is required: the challenge is encrypted to the EK");
  let ekKey;
  try {
    if (ek.public.type !== TPM_ALG.RSA && ek.public.type !== TPM_ALG.ECC) throw new Error("not RSA or ECC");
    ekKey = publicKeyOf(ek.public);
  } catch {
    throw refuse("ek_tpm", "must contain a valid RSA or EC public key");
  }
  if (!body.ekcert) {
    // Upstream's registrar registers an agent without an EK certificate; its tenant decides (require_ek_cert).
    svc.log(`agent ${agentId}: no EK certificate sent; registered with ek_trust=absent`);
    return { ekcert: null, trust: "absent" };
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
  if (verdict.trusted) return { ekcert: cert, trust: "trusted" };
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
  return { ekcert: cert, trust: "untrusted" };
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
export async function registerAgent(svc: RegistrarService, agentId: string, body: RegisterBody): Promise<Uint8Array> {
  if (body.iak_tpm || body.idevid_tpm || body.iak_cert || body.idevid_cert) {
    throw refuse(body.iak_tpm ? "iak_tpm" : "idevid_tpm", "IAK/IDevID registration is not supported by this registrar");
  }
  checkAk(body.aik_tpm);
  const mtls = checkMtlsCert(body.mtls_cert);
  const { ekcert, trust } = checkEk(svc, agentId, body);
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
    challenge = await makeKeylimeChallenge(ek, aik);
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
    });
  });
  svc.log(`agent ${agentId}: registered (EK certificate ${trust}); waiting for activation`);
  return fromBase64(challenge.blob);
}

/** PUT /agents/:agent_id: a matching auth_tag activates the agent; a wrong one deletes its record. */
export function activateAgent(svc: RegistrarService, agentId: string, authTag: string): void {
  const ok = svc.store.transaction((tx) => {
    const rec = tx.get(agentId);
    if (!rec) throw new AgentNotFoundError(agentId);
    if (checkAuthTag(rec.key, agentId, authTag)) {
      tx.put({ ...rec, active: true });
      return true;
    }
    tx.delete(agentId);
    return false;
  });
  if (!ok) {
    svc.log(`agent ${agentId}: wrong auth_tag; record deleted, the agent must register again`);
    throw new AuthTagMismatchError(agentId, authTag);
  }
  svc.log(`agent ${agentId}: activated`);
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

/**
 * Registration end to end (keylime.md §1.3-§1.5): send the identity, check and activate the
 * MakeCredential blob with the AK and EK, answer with the auth_tag, and the registrar marks the agent
 * active. Upstream: keylime/rust-keylime keylime/src/agent_registration.rs (register_agent).
 */
import { AGENT_SUPPORTED_VERSIONS, type ApiVersion } from "../protocol/api_version.ts";
import { authTag, decodeKeylimeBlob } from "../protocol/credential.ts";
import { NK_CERTIFY_VERSION, tpmPublicFromBytes } from "../protocol/registrar_api.ts";
import { activateCredential } from "../tpm/activate.ts";
import type { Tpm } from "../tpm/client.ts";
import { type AgentConfig, type AgentPaths, enabledApiVersions } from "./config.ts";
import { type AgentIdentity, certifiedNk, closeIdentity, openIdentity } from "./identity.ts";
import { certifyNk } from "./nk_certification.ts";
import { type AgentLog, MSG } from "./messages.ts";
import { RegistrarClient, type RetryPolicy } from "./registrar_client.ts";

export interface RegistrationOptions {
  /** A client whose negotiation may already run (openAndRegister starts it before the TPM work). */
  client?: RegistrarClient;
  /** Overrides the exponential_backoff_* keys. */
  retry?: RetryPolicy;
  /** Changes the auth_tag before it is sent; only tests use it, to play a broken agent. */
  alterAuthTag?: (tag: string) => string;
  /** false: register as a classic agent, without nk_certify (benchmarks compare the two flows). */
  offerNkCertify?: boolean;
}

export interface RegistrationResult {
  readonly uuid: string;
  readonly registrar: string;
  readonly apiVersion: ApiVersion | undefined;
}

export function retryPolicy(c: AgentConfig): RetryPolicy {
  return {
    maxRetries: c.exponential_backoff_max_retries,
    initialDelayMs: c.exponential_backoff_initial_delay,
    maxDelayMs: c.exponential_backoff_max_delay,
  };
}

export function registrarClient(c: AgentConfig, log: AgentLog, retry: RetryPolicy = retryPolicy(c)): RegistrarClient {
  return new RegistrarClient({
    ip: c.registrar_ip,
    port: c.registrar_port,
    enabledVersions: enabledApiVersions(c, AGENT_SUPPORTED_VERSIONS, (m) => log.warn(m)) as ApiVersion[],
    retry,
    log,
  });
}

/**
 * An agent start: open the identity and register it, the registrar's /version asked while the TPM
 * makes the EK and loads the AK. The EK and AK are flushed again before this returns.
 */
export async function openAndRegister(
  tpm: Tpm,
  c: AgentConfig,
  paths: AgentPaths,
  log: AgentLog,
  options: RegistrationOptions = {},
): Promise<RegistrationResult & { akCreated: boolean }> {
  const client = options.client ?? registrarClient(c, log, options.retry);
  client.negotiate().catch(() => {}); // its error, if any, comes again from register()
  const id = await openIdentity(tpm, c, paths, log);
  try {
    return { ...await registerAgent(tpm, id, c, log, { ...options, client }), akCreated: id.akCreated };
  } finally {
    await closeIdentity(tpm, id).catch(() => {});
  }
}

/** Register and activate the agent; resolves once the registrar has it active. */
export async function registerAgent(
  tpm: Tpm,
  id: AgentIdentity,
  c: AgentConfig,
  log: AgentLog,
  options: RegistrationOptions = {},
): Promise<RegistrationResult> {
  const client = options.client ?? registrarClient(c, log, options.retry);
  const nk = certifiedNk(id);
  // The NK certify extension is offered (spec/nk-certify.md); an upstream registrar ignores it.
  const offer = options.offerNkCertify ?? true;
  const { blob, certify_nonce } = await client.register(id.uuid, {
    aik_tpm: tpmPublicFromBytes(id.akTpm),
    ek_tpm: tpmPublicFromBytes(id.ekTpm),
    ekcert: id.ekCertPem,
    mtls_cert: id.mtls?.certPem ?? "disabled",
    ip: c.contact_ip,
    port: c.contact_port,
    ...(offer ? { nk_certify: NK_CERTIFY_VERSION, ...(id.mtls ? {} : { transport_key: nk.pem }) } : {}),
  });
  log.info(MSG.registered(id.uuid));

  const { credentialBlob, secret } = decodeKeylimeBlob(blob);
  const certInfo = await activateCredential(tpm, id.ak, id.ek, credentialBlob, secret);
  const tag = authTag(certInfo, id.uuid);
  // The registrar speaks the extension: the AK certifies the NK over its nonce (LoadExternal, Certify, flush).
  const certification = certify_nonce ? await certifyNk(tpm, nk, id.ak, certify_nonce) : {};
  await client.activate(id.uuid, {
    auth_tag: options.alterAuthTag ? options.alterAuthTag(tag) : tag,
    ...certification,
  });
  log.info(MSG.activated(id.uuid));
  if (certify_nonce) log.info(MSG.nkCertified(id.uuid));
  return { uuid: id.uuid, registrar: client.base, apiVersion: client.version };
}

/**
 * The agent as a service (keylime.md §3-§10): identity from the TPM and the configuration, registration with
 * the registrar, PCR 16 bound to the NK, then the API served over mTLS (or HTTP when mTLS is off) until
 * close(). What runs after an answer (payloads, revocation actions) is tracked so close() can wait for it.
 * Receives its Tpm; never chooses one. Upstream: keylime/rust-keylime keylime-agent/src/main.rs.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import type { NkBindingMode } from "../protocol/agent_api.ts";
import { AGENT_SUPPORTED_VERSIONS, type ApiVersion } from "../protocol/api_version.ts";
import { importNkPrivateKey } from "../protocol/payload.ts";
import { parseActionList } from "../protocol/revocation.ts";
import type { Tpm } from "../tpm/client.ts";
import { algByName } from "../tpm/crypto.ts";
import { fromBase64 } from "../util/encoding.ts";
import { createAgentApp } from "./app.ts";
import { type AgentConfig, agentPaths, enabledApiVersions, resolvePath } from "./config.ts";
import { certifiedNk, closeIdentity, openEk, openIdentity } from "./identity.ts";
import { type CertificateMaker, loadAgentData } from "./state.ts";
import { sharedAk } from "./tpm_access.ts";
import { loadAk } from "../tpm/ak.ts";
import { releaseEk } from "../tpm/ek.ts";
import type { LoadedKey } from "../tpm/objects.ts";
import { ImaMeasurementList, readMeasuredBootLog } from "./measurements.ts";
import { type AgentLog, MSG } from "./messages.ts";
import { prepareSecureDir, SECURE_DIR, UNZIPPED_DIR } from "./payload_store.ts";
import { keptAk, Quoter } from "./quoter.ts";
import { registerAgent, registrarClient, type RegistrationOptions } from "./registration.ts";
import { RevocationWorker } from "./revocation.ts";
import { BootstrapKeys } from "./keys.ts";
import type { MeasurementSource } from "./routes/quotes.ts";
import { startAgentServer } from "./server.ts";
import {
  agentTlsOptions,
  checkPayloadTransport,
  loadTrustedClientCas,
  payloadsAllowed,
  trustedClientCaPaths,
} from "./tls.ts";

/** The agent's log with a debug level (one line per request). */
export interface ServiceLog extends AgentLog {
  debug(message: string): void;
}

export interface AgentServiceOptions {
  config: AgentConfig;
  log: ServiceLog;
  registration?: RegistrationOptions;
  /** Without a resource manager: release the TPM connection after this many ms without a request. */
  tpmIdleMs?: number;
  /** Makes the mTLS certificate on a first start (default: in this process, selfSignedCertificate). */
  makeCertificate?: CertificateMaker;
  /** Mount a tmpfs on the secure directory when it is not one (default: as root); the demo never does. */
  mountSecureDir?: boolean;
}

export const DEFAULT_TPM_IDLE_MS = 200;

/** The AK of agent_data.json loaded again under the EK (after a TPM Reset refused its saved context). */
async function reloadAk(tpm: Tpm, c: AgentConfig, agentData: string): Promise<LoadedKey> {
  const saved = await loadAgentData(agentData);
  if (!saved) throw new Error(`${agentData} is gone; restart the agent to create a new AK`);
  const ek = await openEk(tpm, c);
  try {
    return await loadAk(tpm, ek, saved.ak);
  } finally {
    await releaseEk(tpm, ek);
  }
}

export interface RunningAgent {
  readonly uuid: string;
  readonly url: string;
  readonly port: number;
  /** Stop accepting, finish requests and pending payload/revocation work, release the TPM objects. */
  close(graceMs?: number): Promise<void>;
}

const DEFAULT_IMA = "/sys/kernel/security/ima/ascii_runtime_measurements";
const DEFAULT_MB = "/sys/kernel/security/tpm0/binary_bios_measurements";
const REVOCATION_CERT = "RevocationNotifier-cert.crt";

/** The IMA and UEFI logs, when their files exist at start (as rust-keylime decides once). */
function measurementSource(c: AgentConfig, log: AgentLog): MeasurementSource | undefined {
  const ima = c.ima_ml_path === "default" || c.ima_ml_path === "" ? DEFAULT_IMA : c.ima_ml_path;
  const mb = c.measuredboot_ml_path === "default" || c.measuredboot_ml_path === ""
    ? DEFAULT_MB
    : c.measuredboot_ml_path;
  const list = existsSync(ima) ? new ImaMeasurementList(ima) : undefined;
  if (!list) log.warn(MSG.imaUnavailable(ima));
  const haveMb = existsSync(mb);
  if (!haveMb) log.warn(MSG.mbUnavailable(mb));
  if (!list && !haveMb) return undefined;
  return {
    async ima(entry) {
      if (!list) return undefined;
      const slice = await list.locate(entry);
      return { entry: slice.entry, chunks: () => list.chunks(slice) };
    },
    async measuredBoot() {
      if (!haveMb) return undefined;
      const b64 = await readMeasuredBootLog(mb);
      return b64 === undefined ? undefined : fromBase64(b64);
    },
  };
}

export async function startAgentService(tpm: Tpm, o: AgentServiceOptions): Promise<RunningAgent> {
  const c = o.config;
  const log = o.log;
  checkPayloadTransport(c);
  const hashAlg = algByName(c.tpm_hash_alg);
  if (hashAlg === undefined) throw new Error(`tpm_hash_alg ${c.tpm_hash_alg} is not a hash algorithm`);
  const versions = enabledApiVersions(c, AGENT_SUPPORTED_VERSIONS, (m) => log.warn(m)) as ApiVersion[];
  const paths = agentPaths(c);
  const secure = await prepareSecureDir({
    keylimeDir: paths.keylimeDir,
    secureSize: c.secure_size,
    log,
    ...(o.mountSecureDir !== undefined ? { mount: o.mountSecureDir } : {}),
  });
  const unzipped = join(secure.path, UNZIPPED_DIR);
  const clientCas = c.enable_agent_mtls
    ? await loadTrustedClientCas(trustedClientCaPaths(c.trusted_client_ca, paths.keylimeDir))
    : [];

  // The registrar's /version is asked while the TPM makes the EK and loads the AK (as openAndRegister does).
  const client = o.registration?.client ?? registrarClient(c, log, o.registration?.retry);
  client.negotiate().catch(() => {}); // its error, if any, comes again from register()
  const id = await openIdentity(tpm, c, paths, log, { makeCertificate: o.makeCertificate });
  try {
    await registerAgent(tpm, id, c, log, { ...o.registration, client });
    const nkPem = id.nk.publicKey.export({ format: "pem", type: "spki" }).toString();
    // Without a resource manager others share the TPM: hold nothing of ours between requests.
    const shared = tpm.transport.resourceManaged ? undefined : await sharedAk(tpm, id.ak, {
      idleMs: o.tpmIdleMs ?? DEFAULT_TPM_IDLE_MS,
      reload: (t) => reloadAk(t, c, paths.agentData),
      warn: (m) => log.warn(m),
    });
    if (shared) await releaseEk(tpm, id.ek);
    const quoter = new Quoter(shared ?? keptAk(tpm, id.ak), hashAlg);
    const binding = c.nk_binding as NkBindingMode;
    // With the certify binding alone PCR 16 is never reset nor extended (spec/nk-certify.md).
    if (binding !== "certify") await quoter.bindNk(nkPem);

    const keys = new BootstrapKeys({
      uuid: id.uuid,
      nk: await importNkPrivateKey(id.nk.privateKey),
      runPayloads: payloadsAllowed(c),
      store: {
        secureDir: secure.path,
        encKeyname: c.enc_keyname,
        decPayloadFile: c.dec_payload_file,
        extractPayloadZip: c.extract_payload_zip,
        payloadScript: c.payload_script,
        log,
      },
      log,
    });
    const revocations = new RevocationWorker({
      certPath: c.revocation_cert === "default" || c.revocation_cert === ""
        ? join(unzipped, REVOCATION_CERT)
        : resolvePath(c.revocation_cert, join(paths.keylimeDir, SECURE_DIR, UNZIPPED_DIR), REVOCATION_CERT),
      actionsDir: c.revocation_actions_dir,
      actions: parseActionList(c.revocation_actions),
      allowPayloadActions: c.allow_payload_revocation_actions,
      unzippedDir: unzipped,
      workDir: paths.keylimeDir,
      log,
    });
    const measurements = measurementSource(c, log);
    const app = createAgentApp({
      versions,
      quotes: {
        quoter,
        nkPem,
        identity: { binding, nk: certifiedNk(id) },
        ...(measurements ? { measurements } : {}),
      },
      keys: { keys, nkPem },
      info: { uuid: id.uuid, algorithms: quoter.algorithms, akHandle: () => quoter.ak.handle },
      notifications: { revocations },
      log,
    });

    log.info(MSG.startingServer(versions));
    const server = await startAgentServer(app.fetch, {
      ip: c.ip,
      port: c.port,
      onError: (line) => log.error(line),
      ...(c.enable_agent_mtls
        ? {
          tls: agentTlsOptions({
            cert: id.mtls!.certPem,
            key: id.mtls!.key.privateKey.export({ format: "pem", type: "pkcs8" }).toString(),
            clientCas,
          }),
        }
        : {}),
    });
    log.info(MSG.listening(server.url));
    let closing: Promise<void> | undefined;
    return {
      uuid: id.uuid,
      url: server.url,
      port: server.port,
      close(graceMs = 8_000) {
        closing ??= (async () => {
          await server.close(graceMs);
          await Promise.all([keys.idle(), revocations.idle()]);
          shared?.close();
          if (!shared) await quoter.exclusive(() => closeIdentity(tpm, id)).catch((e) => log.warn(MSG.flushFailed(e)));
        })();
        return closing;
      },
    };
  } catch (e) {
    await closeIdentity(tpm, id).catch(() => {});
    throw e;
  }
}

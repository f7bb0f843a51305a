/**
 * The agent's TLS server settings (keylime.md §7): TLS 1.2 or newer with Mozilla's intermediate cipher list,
 * the agent's mTLS certificate and key, and client certificates required and verified against
 * `trusted_client_ca` alone (one or several PEM files, `default` = cv_ca/cacert.crt under keylime_dir). No
 * hostname or CN check on clients, as upstream. Also the rule that mTLS off and a payload script refuse to
 * start unless enable_insecure_payload.
 * Upstream: keylime/rust-keylime keylime/src/crypto.rs (generate_tls_context), keylime-agent/src/main.rs.
 */
import { readFile } from "node:fs/promises";
import type { ServerOptions } from "node:https";
import { isAbsolute, join } from "node:path";

/** Where `trusted_client_ca = "default"` points, under keylime_dir. */
export const DEFAULT_TRUSTED_CLIENT_CA = "cv_ca/cacert.crt";

/** Mozilla intermediate (v5) TLS 1.2 suites; TLS 1.3 uses OpenSSL's defaults, which are the same. */
const INTERMEDIATE_CIPHERS = [
  "ECDHE-ECDSA-AES128-GCM-SHA256",
  "ECDHE-RSA-AES128-GCM-SHA256",
  "ECDHE-ECDSA-AES256-GCM-SHA384",
  "ECDHE-RSA-AES256-GCM-SHA384",
  "ECDHE-ECDSA-CHACHA20-POLY1305",
  "ECDHE-RSA-CHACHA20-POLY1305",
  "DHE-RSA-AES128-GCM-SHA256",
  "DHE-RSA-AES256-GCM-SHA384",
].join(":");

/** A TLS setting that cannot work; the message names the option and the file. */
export class AgentTlsError extends Error {
  readonly code = "ERR_CONFIG";
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "AgentTlsError";
  }
}

/** The CA files of `trusted_client_ca`: a list (comma, space or TOML-array text) of paths; `default` as above. */
export function trustedClientCaPaths(value: string | readonly string[], keylimeDir: string): string[] {
  const items = typeof value === "string" ? value.replace(/^\s*\[|\]\s*$/g, "").split(/[,\s]+/) : [...value];
  const names = items.map((s) => s.trim().replace(/^["']|["']$/g, "")).filter((s) => s !== "");
  if (names.length === 0) names.push("default");
  return names.map((n) => {
    if (n === "default") return join(keylimeDir, DEFAULT_TRUSTED_CLIENT_CA);
    return isAbsolute(n) ? n : join(keylimeDir, n);
  });
}

/** The PEM certificates of the CA files; a missing file or one without a certificate is AgentTlsError. */
export async function loadTrustedClientCas(paths: readonly string[]): Promise<string[]> {
  const out: string[] = [];
  for (const path of paths) {
    let pem: string;
    try {
      pem = await readFile(path, "utf8");
    } catch (e) {
      throw new AgentTlsError(
        `trusted_client_ca: cannot read ${path} (${(e as Error).message}); it must hold the CA certificate ` +
          `that issued the verifier's and tenant's client certificates`,
        { cause: e },
      );
    }
    if (!pem.includes("-----BEGIN CERTIFICATE-----")) {
      throw new AgentTlsError(`trusted_client_ca: ${path} holds no PEM certificate`);
    }
    out.push(pem);
  }
  return out;
}

export interface AgentTlsMaterial {
  /** The mTLS certificate the agent registered (PEM). */
  cert: string;
  /** Its private key (PEM, unencrypted or with `passphrase`). */
  key: string;
  passphrase?: string;
  /** The trusted client CAs (PEM), nothing else. */
  clientCas: readonly string[];
}

/** node:https options: our certificate, client certificates required and checked against clientCas only. */
export function agentTlsOptions(m: AgentTlsMaterial): ServerOptions {
  if (m.clientCas.length === 0) throw new AgentTlsError("trusted_client_ca: no CA certificate given");
  return {
    cert: m.cert,
    key: m.key,
    ...(m.passphrase ? { passphrase: m.passphrase } : {}),
    ca: [...m.clientCas],
    requestCert: true,
    rejectUnauthorized: true,
    minVersion: "TLSv1.2",
    ciphers: INTERMEDIATE_CIPHERS,
    honorCipherOrder: false,
    // A client that stalls in the handshake holds a socket: not for node's default two minutes.
    handshakeTimeout: 10_000,
  };
}

/** rust-keylime's refusal to run a payload script over plain HTTP (main.rs), word for word. */
export const INSECURE_PAYLOAD_MESSAGE =
  "The agent mTLS is disabled and 'payload_script' is not empty. To allow the agent to run, " +
  "'enable_insecure_payload' has to be set to 'True'";

/** Throws AgentTlsError when mTLS is off, a payload script is set and insecure payloads are not allowed. */
export function checkPayloadTransport(
  c: { enable_agent_mtls: boolean; payload_script: string; enable_insecure_payload: boolean },
): void {
  if (!c.enable_agent_mtls && !c.enable_insecure_payload && c.payload_script !== "") {
    throw new AgentTlsError(INSECURE_PAYLOAD_MESSAGE);
  }
}

/** Payloads are decrypted and run only over mTLS, or when enable_insecure_payload says so. */
export function payloadsAllowed(c: { enable_agent_mtls: boolean; enable_insecure_payload: boolean }): boolean {
  return c.enable_agent_mtls || c.enable_insecure_payload;
}

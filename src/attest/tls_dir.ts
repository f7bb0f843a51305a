/**
 * The tenant's TLS material in upstream's layout (keylime/keylime keylime/ca_util.py; the registrar's
 * generated tls_dir has it): cacert.crt (the CA of the registrar's server certificate and of the client
 * certificate the agent's trusted_client_ca accepts), client-cert.crt and client-private.pem.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";

export const TENANT_TLS_FILES = {
  ca: "cacert.crt",
  cert: "client-cert.crt",
  key: "client-private.pem",
} as const;

export interface TenantTls {
  readonly ca: string;
  readonly cert: string;
  readonly key: string;
}

export class TlsDirError extends Error {
  readonly code = "ERR_TLS_DIR";
  constructor(message: string) {
    super(message);
    this.name = "TlsDirError";
  }
}

export async function readTenantTls(dir: string): Promise<TenantTls> {
  const read = async (name: string, label: string) => {
    let text: string;
    try {
      text = await readFile(join(dir, name), "utf8");
    } catch (e) {
      throw new TlsDirError(`--tls-dir ${dir}: cannot read ${name}: ${(e as Error).message}`);
    }
    if (!text.includes(`-----BEGIN ${label}`)) throw new TlsDirError(`--tls-dir ${dir}: ${name} is not PEM (${label})`);
    return text;
  };
  return {
    ca: await read(TENANT_TLS_FILES.ca, "CERTIFICATE"),
    cert: await read(TENANT_TLS_FILES.cert, "CERTIFICATE"),
    key: await read(TENANT_TLS_FILES.key, ""),
  };
}

/**
 * The registrar as a process: the store, the EK trust store, and two listeners over one service, as
 * upstream runs it: plain HTTP (`port`) for agents, HTTPS (`tls_port`) requiring a client certificate
 * from the TLS directory's CA for tenants. node:http/node:https through fetch_listener.ts.
 */
import { createServer as createHttpServer, type Server } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { dirname, join, resolve } from "node:path";
import { createRegistrarApp } from "./app.ts";
import type { RegistrarConfig } from "./config.ts";
import { defaultTpmCaFiles } from "./default_tpm_ca.ts";
import { EkTrustStore, readCaFiles } from "./ek_trust.ts";
import type { RegistrarService } from "./registration.ts";
import { openSqliteStore, type RegistrarStore } from "./store.ts";
import { ensureTlsDir } from "./tls.ts";
import { MAX_BODY_BYTES } from "../protocol/registrar_api.ts";
import { fetchListener } from "../util/fetch_listener.ts";

export interface RunningRegistrar {
  port: number;
  tlsPort: number;
  tlsDir: string;
  service: RegistrarService;
  close(): Promise<void>;
}

function listen(server: Server, port: number, host: string): Promise<number> {
  return new Promise((ok, fail) => {
    server.once("error", fail);
    server.listen(port, host, () => {
      server.off("error", fail);
      ok((server.address() as AddressInfo).port);
    });
  });
}

function closeServer(server: Server): Promise<void> {
  return new Promise((ok) => {
    server.close(() => ok());
    server.closeAllConnections();
  });
}

export interface StartOptions {
  log: (line: string) => void;
  /** A store to use instead of opening `config.database` (benchmarks). */
  store?: RegistrarStore;
}

export async function startRegistrar(config: RegistrarConfig, opts: StartOptions): Promise<RunningRegistrar> {
  const tlsDir = resolve(config.tls_dir || join(dirname(resolve(config.database)), "tls"));
  const caFiles = [...await defaultTpmCaFiles(), ...await readCaFiles(config.tpm_ca_dir.map((d) => resolve(d)))];
  const ekTrust = EkTrustStore.fromFiles(caFiles);
  const tls = await ensureTlsDir(tlsDir, ["localhost", "127.0.0.1", "::1", config.ip]);
  if (tls.generated) opts.log(`generated a CA, server and client certificates in ${tlsDir}`);
  const store = opts.store ?? await openSqliteStore(config.database, config.database_sync);
  const service: RegistrarService = {
    store,
    ekTrust,
    allowUntrustedEk: config.allow_untrusted_ek,
    log: opts.log,
    nkCertify: { require: config.require_nk_certify, nonceTtl: config.certify_nonce_ttl },
  };

  const serve = (tls: boolean) =>
    fetchListener(createRegistrarApp(service, { tls }).fetch, {
      maxBodyBytes: MAX_BODY_BYTES,
      onError: opts.log,
    });
  const http = createHttpServer(serve(false));
  const https: Server = createHttpsServer(
    { key: tls.key, cert: tls.cert, ca: tls.ca, requestCert: true, rejectUnauthorized: true },
    serve(true),
  );
  let port: number, tlsPort: number;
  try {
    port = await listen(http, config.port, config.ip);
    tlsPort = await listen(https, config.tls_port, config.ip);
  } catch (e) {
    await Promise.all([closeServer(http), closeServer(https)]);
    store.close();
    throw e;
  }
  opts.log(
    `registrar listening on http://${config.ip}:${port} (agents) and https://${config.ip}:${tlsPort} ` +
      `(tenants, client certificates from ${tlsDir}); database ${resolve(config.database)} ` +
      `(sync ${config.database_sync}); ` +
      `EK trust store: ${ekTrust.size} certificates${config.allow_untrusted_ek ? ", untrusted EKs allowed" : ""}` +
      (config.require_nk_certify ? "; NK certification required" : ""),
  );
  return {
    port,
    tlsPort,
    tlsDir,
    service,
    close: async () => {
      await Promise.all([closeServer(http), closeServer(https)]);
      store.close();
    },
  };
}

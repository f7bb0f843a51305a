/**
 * `keylime-ts registrar`: the reference registrar (plain HTTP for agents, HTTPS with client certificates
 * for tenants, SQLite records). Loaded lazily: node:sqlite exists only in newer runtimes, and nothing else
 * of the program needs it.
 */
import type { Command } from "commander";

interface RegistrarCliOptions {
  host?: string;
  port?: string;
  tlsPort?: string;
  db?: string;
  dbSync?: string;
  tlsDir?: string;
  tpmCaDir?: string[];
  allowUntrustedEk?: boolean;
  requireNkCertify?: boolean;
  certifyNonceTtl?: string;
  config?: string;
}

const collect = (v: string, prev: string[] = []) => [...prev, v];

export function registrarCommand(program: Command): void {
  const registrar = program
    .command("registrar")
    .description("run the reference Keylime registrar (API v2.x)")
    .option("--host <ip>", "address to listen on (default 127.0.0.1)")
    .option("--port <port>", "plain HTTP port for agents: /version, register, activate (default 8890; 0: any)")
    .option("--tls-port <port>", "HTTPS port for tenants, client certificate required (default 8891; 0: any)")
    .option("--db <file>", "SQLite file of the records (default registrar.sqlite)")
    .option(
      "--db-sync <mode>",
      "normal: commits survive a crash or restart of the registrar (default); full: also a power loss, one fsync each",
    )
    .option(
      "--tls-dir <dir>",
      "cacert.crt, server-cert.crt, server-private.pem (upstream's tls_dir); generated with ca-private.pem, client-cert.crt " +
        "and client-private.pem when absent (default: tls/ beside the database)",
    )
    .option("--tpm-ca-dir <dir>", "more TPM manufacturer CA certificates (repeatable)", collect)
    .option("--allow-untrusted-ek", "store EK certificates that do not chain to the trust store, flagged untrusted")
    .option("--require-nk-certify", "refuse registrations whose NK is not certified by the AK (nk_certify)")
    .option("--certify-nonce-ttl <seconds>", "how long a certify nonce stays valid (default 300)")
    .option("--config <file>", "TOML file with a [registrar] table (options given here override it)")
    .action(async (o: RegistrarCliOptions) => {
      // Before anything is written (TLS directory, database): can the registrar run in this build at all?
      await (await import("../registrar/store.ts")).loadSqlite();
      const { loadRegistrarConfig } = await import("../registrar/config.ts");
      const { startRegistrar } = await import("../registrar/server.ts");
      const config = await loadRegistrarConfig(o.config, {
        ...(o.host !== undefined ? { ip: o.host } : {}),
        ...(o.port !== undefined ? { port: Number(o.port) } : {}),
        ...(o.tlsPort !== undefined ? { tls_port: Number(o.tlsPort) } : {}),
        ...(o.db !== undefined ? { database: o.db } : {}),
        ...(o.dbSync !== undefined ? { database_sync: o.dbSync as "normal" } : {}),
        ...(o.tlsDir !== undefined ? { tls_dir: o.tlsDir } : {}),
        ...(o.tpmCaDir !== undefined ? { tpm_ca_dir: o.tpmCaDir } : {}),
        ...(o.allowUntrustedEk ? { allow_untrusted_ek: true } : {}),
        ...(o.requireNkCertify ? { require_nk_certify: true } : {}),
        ...(o.certifyNonceTtl !== undefined ? { certify_nonce_ttl: Number(o.certifyNonceTtl) } : {}),
      });
      const log = (line: string) => process.stdout.write(`${new Date().toISOString()} registrar: ${line}\n`);
      // This process serves and never fetches (fetch_subset.ts: less memory, no stream per answer).
      (await import("../util/fetch_subset.ts")).installFetchSubset();
      const running = await startRegistrar(config, { log });
      await new Promise<void>((done) => {
        const stop = () => {
          log("stopping");
          void running.close().then(
            () => log("stopped; every record is in the database"),
            (e) => log(`stopping failed: ${(e as Error).message}`),
          ).then(() => done());
        };
        process.once("SIGINT", stop);
        process.once("SIGTERM", stop);
      });
      // A clean stop is exit status 0 (Deno would otherwise report the signal that asked for it).
      process.exit(0);
    });
  registrar
    .command("client-cert")
    .description(
      "issue one more client certificate from the CA of a TLS directory the registrar generated: " +
        "<name>-cert.crt and <name>-private.pem (0600), for another tenant or verifier",
    )
    .requiredOption("--tls-dir <dir>", "the registrar's TLS directory (with cacert.crt and ca-private.pem)")
    .requiredOption("--name <name>", "the certificate's name: its files and its subject CN")
    .action(async (o: { tlsDir: string; name: string }) => {
      const { issueClientCert } = await import("../registrar/tls.ts");
      const files = await issueClientCert(o.tlsDir, o.name);
      process.stdout.write(`${files.cert}\n${files.key}\n`);
    });
}

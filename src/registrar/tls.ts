/**
 * The registrar's TLS material, laid out as upstream's `tls_dir` (keylime/keylime keylime/ca_util.py,
 * as the verifier generates it): cacert.crt (the CA that issues server and client certificates and that
 * client certificates must chain to), server-cert.crt, server-private.pem, and for tenants client-cert.crt
 * and client-private.pem. Given a directory without them, a CA and both certificates are generated there
 * (ECDSA P-256; keys 0600, each file written atomically, cacert.crt last to mark the set complete). The CA's
 * key is kept as ca-private.pem (upstream keeps it in its password-protected private.yml, beside
 * ca-public.pem) so that more client certificates, `<name>-cert.crt` and `<name>-private.pem` as upstream's
 * `keylime_ca -c mkcert` names them, can be issued later (issueClientCert).
 */
import { webcrypto } from "node:crypto";
import { createPrivateKey } from "node:crypto";
import { mkdir, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { writeFileAtomic } from "../util/atomic_file.ts";
import { X509Certificate, x509lib as x509 } from "../tpm/x509.ts";
import { toHex, toPem } from "../util/encoding.ts";

/** A certificate's files in the TLS directory: upstream's `<name>-cert.crt` and `<name>-private.pem`. */
export const clientFiles = (name: string) => ({ cert: `${name}-cert.crt`, key: `${name}-private.pem` });

/** The client certificate generated with the directory, for the tenant. */
const GENERATED_CLIENT = "client";

export const TLS_FILES = {
  ca: "cacert.crt",
  caKey: "ca-private.pem",
  cert: clientFiles("server").cert,
  key: clientFiles("server").key,
  clientCert: clientFiles(GENERATED_CLIENT).cert,
  clientKey: clientFiles(GENERATED_CLIENT).key,
} as const;

export interface TlsMaterial {
  ca: string;
  cert: string;
  key: string;
  /** Whether this call generated the files. */
  generated: boolean;
}

const ECDSA = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;
const DAY = 86_400_000;

export interface Issuer {
  cert: X509Certificate;
  privateKey: CryptoKey;
  publicKey: CryptoKey;
}

function provider(): void {
  x509.cryptoProvider.set(webcrypto as unknown as Crypto);
}

const RSA = {
  name: "RSASSA-PKCS1-v1_5",
  modulusLength: 2048,
  publicExponent: new Uint8Array([1, 0, 1]),
  hash: "SHA-256",
};

/** ECDSA P-256 (the default) or RSA-2048 with PKCS#1 v1.5 signatures, as most TPM manufacturer CAs use. */
export async function newKeyPair(alg: "ecdsa" | "rsa" = "ecdsa"): Promise<CryptoKeyPair> {
  return await webcrypto.subtle.generateKey(alg === "rsa" ? RSA : ECDSA, true, ["sign", "verify"]) as CryptoKeyPair;
}

/** What the issuer's key signs with. */
function signingAlgorithm(key: CryptoKey) {
  return key.algorithm.name === "ECDSA" ? ECDSA : { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" };
}

const serial = () => toHex(webcrypto.getRandomValues(new Uint8Array(8))).replace(/^[89a-f]/, "1");

/** A self-signed CA certificate valid for `days`, with a new key (ECDSA P-256 unless `keys` are given). */
export async function createCa(subject: string, days = 3650, keys?: CryptoKeyPair): Promise<Issuer> {
  provider();
  const pair = keys ?? await newKeyPair();
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: subject,
    notBefore: new Date(now - DAY),
    notAfter: new Date(now + days * DAY),
    keys: pair,
    signingAlgorithm: signingAlgorithm(pair.privateKey),
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(pair.publicKey),
    ],
  });
  return { cert: new X509Certificate(cert.rawData), privateKey: pair.privateKey, publicKey: pair.publicKey };
}

export interface IssueOptions {
  subject: string;
  /** The certified key: a WebCrypto key, or SubjectPublicKeyInfo DER. */
  publicKey: CryptoKey | Uint8Array;
  days?: number;
  /** serverAuth with these DNS names and IP addresses as subjectAltName. */
  serverNames?: string[];
  clientAuth?: boolean;
  /** An intermediate CA (pathLen 0) instead of an end entity. */
  ca?: boolean;
  /** Further extended key usages (e.g. the TCG's EK certificate OID 2.23.133.8.1). */
  extendedKeyUsages?: string[];
}

export async function issueCertificate(issuer: Issuer, o: IssueOptions): Promise<X509Certificate> {
  provider();
  const now = Date.now();
  const eku = [
    ...(o.serverNames ? ["1.3.6.1.5.5.7.3.1"] : []),
    ...(o.clientAuth ? ["1.3.6.1.5.5.7.3.2"] : []),
    ...(o.extendedKeyUsages ?? []),
  ];
  const names = (o.serverNames ?? []).map((n) =>
    /^[0-9.]+$|:/.test(n) ? { type: "ip" as const, value: n } : { type: "dns" as const, value: n }
  );
  const publicKey = o.publicKey instanceof Uint8Array ? new x509.PublicKey(new Uint8Array(o.publicKey)) : o.publicKey;
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: o.subject,
    issuer: issuer.cert.subject,
    notBefore: new Date(now - DAY),
    notAfter: new Date(now + (o.days ?? 3650) * DAY),
    signingAlgorithm: signingAlgorithm(issuer.privateKey),
    publicKey,
    signingKey: issuer.privateKey,
    extensions: [
      new x509.BasicConstraintsExtension(o.ca === true, o.ca ? 0 : undefined, true),
      new x509.KeyUsagesExtension(
        o.ca
          ? x509.KeyUsageFlags.keyCertSign
          : x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment,
        true,
      ),
      ...(eku.length ? [new x509.ExtendedKeyUsageExtension(eku)] : []),
      ...(names.length ? [new x509.SubjectAlternativeNameExtension(names)] : []),
      await x509.AuthorityKeyIdentifierExtension.create(issuer.publicKey),
    ],
  });
  return new X509Certificate(cert.rawData);
}

export async function privateKeyPem(key: CryptoKey): Promise<string> {
  return toPem("PRIVATE KEY", new Uint8Array(await webcrypto.subtle.exportKey("pkcs8", key)));
}

const exists = (p: string) => stat(p).then(() => true, () => false);

/** Read the TLS directory's server material, generating the whole set first when cacert.crt is missing. */
export async function ensureTlsDir(dir: string, serverNames: string[]): Promise<TlsMaterial> {
  const path = (f: string) => join(dir, f);
  const generated = !(await exists(path(TLS_FILES.ca)));
  if (generated) await generateTlsDir(dir, serverNames);
  const read = async (f: string) => {
    try {
      return await readFile(path(f), "utf8");
    } catch (e) {
      throw new Error(
        `TLS directory ${dir}: cannot read ${f} (${(e as Error).message}); it needs ` +
          `${TLS_FILES.ca}, ${TLS_FILES.cert} and ${TLS_FILES.key}`,
      );
    }
  };
  return { ca: await read(TLS_FILES.ca), cert: await read(TLS_FILES.cert), key: await read(TLS_FILES.key), generated };
}

async function generateTlsDir(dir: string, serverNames: string[]): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const ca = await createCa("CN=keylime-ts registrar CA");
  const server = await newKeyPair();
  const serverCert = await issueCertificate(ca, {
    subject: "CN=keylime-ts registrar",
    publicKey: server.publicKey,
    serverNames,
  });
  await writeFileAtomic(join(dir, TLS_FILES.caKey), await privateKeyPem(ca.privateKey));
  await writeFileAtomic(join(dir, TLS_FILES.key), await privateKeyPem(server.privateKey));
  await writeFileAtomic(join(dir, TLS_FILES.cert), serverCert.toString("pem") + "\n", 0o644);
  await writeClientCert(dir, ca, GENERATED_CLIENT, "CN=keylime-ts tenant");
  // Last: its presence says the set is complete.
  await writeFileAtomic(join(dir, TLS_FILES.ca), ca.cert.toString("pem") + "\n", 0o644);
}

async function writeClientCert(dir: string, ca: Issuer, name: string, subject: string): Promise<ClientCertFiles> {
  const keys = await newKeyPair();
  const cert = await issueCertificate(ca, { subject, publicKey: keys.publicKey, clientAuth: true });
  const files = clientFiles(name);
  const paths = { cert: join(dir, files.cert), key: join(dir, files.key) };
  await writeFileAtomic(paths.key, await privateKeyPem(keys.privateKey));
  await writeFileAtomic(paths.cert, cert.toString("pem") + "\n", 0o644);
  return paths;
}

export interface ClientCertFiles {
  cert: string;
  key: string;
}

/** The CA of a generated TLS directory, from cacert.crt and ca-private.pem. */
async function loadIssuer(dir: string): Promise<Issuer> {
  const read = async (f: string, why: string) => {
    try {
      return await readFile(join(dir, f), "utf8");
    } catch (e) {
      throw new TlsDirError(`TLS directory ${dir}: cannot read ${f} (${(e as Error).message}); ${why}`);
    }
  };
  const certPem = await read(TLS_FILES.ca, "start the registrar with --tls-dir first to generate it");
  const keyPem = await read(
    TLS_FILES.caKey,
    "only directories generated by `keylime-ts registrar` keep the CA key (older ones or upstream's do not)",
  );
  provider();
  const cert = new X509Certificate(certPem);
  const der = createPrivateKey(keyPem).export({ format: "der", type: "pkcs8" });
  const publicKey = await cert.publicKey.export(webcrypto as unknown as Crypto);
  const alg = publicKey.algorithm.name === "ECDSA" ? ECDSA : RSA;
  const privateKey = await webcrypto.subtle.importKey("pkcs8", der, alg, false, ["sign"]);
  return { cert, privateKey, publicKey };
}

/** A client certificate was refused: a bad name, one that exists, or a TLS directory without its CA key. */
export class TlsDirError extends Error {
  readonly code = "ERR_TLS_DIR";
  constructor(message: string) {
    super(message);
    this.name = "TlsDirError";
  }
}

/**
 * Issue one more client certificate (clientAuth, for a tenant or a verifier) from the TLS directory's CA:
 * `<name>-cert.crt` and `<name>-private.pem` (0600). Refuses a name that would overwrite existing files.
 */
export async function issueClientCert(dir: string, name: string): Promise<ClientCertFiles> {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(name) || name === "ca" || name === "server") {
    throw new TlsDirError(
      `client certificate name ${JSON.stringify(name)}: use 1 to 64 characters from A-Z a-z 0-9 . _ - ` +
        `(not "ca" or "server")`,
    );
  }
  const files = clientFiles(name);
  for (const f of [files.cert, files.key]) {
    if (await exists(join(dir, f))) throw new TlsDirError(`${join(dir, f)} exists; choose another --name`);
  }
  const ca = await loadIssuer(dir);
  return await writeClientCert(dir, ca, name, `CN=${name}`);
}

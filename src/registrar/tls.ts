/**
 * The registrar's TLS material, laid out as upstream's `tls_dir` (keylime/keylime keylime/ca_util.py,
 * as the verifier generates it): cacert.crt (the CA that issues server and client certificates and that
 * client certificates must chain to), server-cert.crt, server-private.pem, and for tenants client-cert.crt
 * and client-private.pem. Given a directory without them, a CA and both certificates are generated there
 * (ECDSA P-256; keys 0600, each file written atomically, cacert.crt last to mark the set complete).
 */
import { webcrypto } from "node:crypto";
import { mkdir, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { writeFileAtomic } from "../util/atomic_file.ts";
import { X509Certificate, x509lib as x509 } from "../tpm/x509.ts";
import { toHex, toPem } from "../util/encoding.ts";

export const TLS_FILES = {
  ca: "cacert.crt",
  cert: "server-cert.crt",
  key: "server-private.pem",
  clientCert: "client-cert.crt",
  clientKey: "client-private.pem",
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
  const client = await newKeyPair();
  const serverCert = await issueCertificate(ca, {
    subject: "CN=keylime-ts registrar",
    publicKey: server.publicKey,
    serverNames,
  });
  const clientCert = await issueCertificate(ca, {
    subject: "CN=keylime-ts tenant",
    publicKey: client.publicKey,
    clientAuth: true,
  });
  await writeFileAtomic(join(dir, TLS_FILES.key), await privateKeyPem(server.privateKey));
  await writeFileAtomic(join(dir, TLS_FILES.clientKey), await privateKeyPem(client.privateKey));
  await writeFileAtomic(join(dir, TLS_FILES.cert), serverCert.toString("pem") + "\n", 0o644);
  await writeFileAtomic(join(dir, TLS_FILES.clientCert), clientCert.toString("pem") + "\n", 0o644);
  // Last: its presence says the set is complete.
  await writeFileAtomic(join(dir, TLS_FILES.ca), ca.cert.toString("pem") + "\n", 0o644);
}

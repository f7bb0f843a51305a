/**
 * EK certificates against a store of TPM manufacturer CAs. Upstream's rule (keylime/keylime
 * keylime/cert_utils.py, verify_cert; data/tpm-ca/README.md): a certificate is trusted when a store
 * certificate's subject equals its issuer and that certificate's key verifies its signature; validity dates
 * are not checked (EK certificates outlive their CAs). Beyond upstream's registrar, which leaves this to the
 * tenant: intermediates the agent sent after its EK certificate (from NV 0x01c00100-0x01c001ff) may link
 * the EK certificate to the store, each link checked the same way.
 *
 * Parsing and signature checks use node:crypto's X509Certificate (OpenSSL in Node, native in Deno): on the
 * registration path it costs a fraction of @peculiar/x509's JavaScript ASN.1 parse (bench/registrar.ts), and
 * it needs no DER of ours either. @peculiar/x509 still makes certificates (tls.ts).
 */
import { type KeyObject, X509Certificate } from "node:crypto";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { fromBase64, fromPem } from "../util/encoding.ts";

/** Longest chain followed from the EK certificate to a store certificate. */
const MAX_DEPTH = 8;
const CERT_FILE = /\.(pem|crt|cer|der)$/i;

export class CertificateInputError extends Error {
  readonly code = "ERR_CERTIFICATE_INPUT";
  constructor(message: string) {
    super(message);
    this.name = "CertificateInputError";
  }
}

export { X509Certificate };

function parseDer(der: Uint8Array, what: string): X509Certificate {
  try {
    return new X509Certificate(der);
  } catch (e) {
    throw new CertificateInputError(`${what} is not an X.509 certificate: ${(e as Error).message}`);
  }
}

/**
 * The certificates of an `ekcert` field: PEM blocks (the EK certificate first, then its chain), or one
 * base64 DER certificate, as upstream's Certificate type accepts them.
 */
export function parseCertificates(text: string): X509Certificate[] {
  let blocks: Uint8Array[];
  try {
    blocks = fromPem(text, "CERTIFICATE");
  } catch (e) {
    throw new CertificateInputError((e as Error).message);
  }
  if (blocks.length) return blocks.map((der, i) => parseDer(der, `PEM certificate ${i + 1}`));
  const b64 = text.replace(/\s/g, "");
  let der: Uint8Array;
  try {
    der = fromBase64(b64, { canonical: false });
  } catch {
    throw new CertificateInputError("neither PEM nor base64 DER");
  }
  if (der.length === 0) throw new CertificateInputError("neither PEM nor base64 DER");
  return [parseDer(der, "base64 DER")];
}

export type ChainVerdict =
  | { trusted: true; anchor: string }
  /** `issuer`: the issuer of the last certificate reached, which nothing in the store (or chain) signed. */
  | { trusted: false; issuer: string };

/** Issuer name and signature, nothing else (no validity dates, as upstream). `key`: the issuer's, when known. */
function signedBy(cert: X509Certificate, issuer: X509Certificate, key?: KeyObject): boolean {
  if (issuer.subject !== cert.issuer) return false;
  try {
    return cert.verify(key ?? issuer.publicKey);
  } catch {
    return false; // a key or algorithm the crypto library does not know verifies nothing
  }
}

/** A distinguished name on one line, as people read it: `CN=swtpm-localca, O=...`. */
export function oneLineName(name: string): string {
  return name.split("\n").join(", ");
}

/** A certificate file of a trust store: where it came from (for messages) and its bytes. */
export interface CaFile {
  path: string;
  bytes: Uint8Array;
}

/** Every certificate file (.pem/.crt/.cer/.der) in the given directories, by name. */
export async function readCaFiles(dirs: readonly string[]): Promise<CaFile[]> {
  const files: CaFile[] = [];
  for (const dir of dirs) {
    let names: string[];
    try {
      names = (await readdir(dir)).filter((n) => CERT_FILE.test(n)).sort();
    } catch (e) {
      throw new CertificateInputError(`cannot read the TPM CA directory ${dir}: ${(e as Error).message}`);
    }
    for (const name of names) files.push({ path: join(dir, name), bytes: await readFile(join(dir, name)) });
  }
  return files;
}

export class EkTrustStore {
  private readonly bySubject = new Map<string, X509Certificate[]>();
  /** The store certificates' keys, made once: X509Certificate.publicKey makes a new KeyObject per read. */
  private readonly keys = new Map<X509Certificate, KeyObject>();

  constructor(readonly certificates: readonly X509Certificate[]) {
    for (const c of certificates) {
      const list = this.bySubject.get(c.subject) ?? [];
      list.push(c);
      this.bySubject.set(c.subject, list);
    }
  }

  /** The certificates in PEM texts. */
  static fromPem(...texts: string[]): EkTrustStore {
    return new EkTrustStore(texts.flatMap(parseCertificates));
  }

  /** Certificates from files (PEM files may hold several). */
  static fromFiles(files: readonly CaFile[]): EkTrustStore {
    const certs: X509Certificate[] = [];
    for (const { path, bytes } of files) {
      const text = new TextDecoder("latin1").decode(bytes);
      try {
        certs.push(...(text.includes("-----BEGIN") ? parseCertificates(text) : [parseDer(bytes, path)]));
      } catch (e) {
        throw new CertificateInputError(`${path}: ${(e as Error).message}`);
      }
    }
    return new EkTrustStore(certs);
  }

  get size(): number {
    return this.certificates.length;
  }

  /**
   * Does `ek` chain to the store, directly or through `intermediates`? Checked afresh each time: a verdict
   * remembered by the chain's digest would cost the common case (a new agent) more than the signature
   * checks it saves a re-registration.
   */
  check(ek: X509Certificate, intermediates: readonly X509Certificate[] = []): ChainVerdict {
    let current = ek;
    const used = new Set<X509Certificate>();
    for (let depth = 0; depth < MAX_DEPTH; depth++) {
      for (const anchor of this.bySubject.get(current.issuer) ?? []) {
        if (signedBy(current, anchor, this.keyOf(anchor))) {
          return { trusted: true, anchor: oneLineName(anchor.subject) };
        }
      }
      let next: X509Certificate | undefined;
      for (const c of intermediates) {
        if (!used.has(c) && c !== current && signedBy(current, c)) {
          next = c;
          break;
        }
      }
      if (!next) break;
      used.add(next);
      current = next;
    }
    return { trusted: false, issuer: oneLineName(current.issuer) };
  }

  private keyOf(anchor: X509Certificate): KeyObject | undefined {
    let key = this.keys.get(anchor);
    if (!key) {
      try {
        key = anchor.publicKey;
      } catch {
        return undefined; // a key node:crypto cannot load: signedBy tries again and verifies nothing
      }
      this.keys.set(anchor, key);
    }
    return key;
  }
}

/**
 * X.509 through @peculiar/x509, with the reflect polyfill its dependency injection needs loaded
 * first. Import X.509 classes from here, never from the package directly.
 */
import "reflect-metadata";
import { X509Certificate as PeculiarCertificate } from "@peculiar/x509";
import { createPublicKey, type KeyObject } from "node:crypto";

export class X509Certificate extends PeculiarCertificate {
  /** The SubjectPublicKeyInfo as a Node KeyObject. */
  get publicKeyObject(): KeyObject {
    return createPublicKey({ key: Buffer.from(this.publicKey.rawData), format: "der", type: "spki" });
  }
}

/** The whole @peculiar/x509 API (certificate generation ...), loaded after the polyfill above. */
export * as x509lib from "@peculiar/x509";

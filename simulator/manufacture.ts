/**
 * Manufacturing a simulated TPM: hierarchy seeds, a CA that stands in for the TPM vendor, and EK
 * certificates for the RSA-2048 (L-1) and NIST P-256 (L-2) EKs in NV 0x01C00002 / 0x01C0000A, as the
 * TCG EK Credential Profile places them. The vendor is software: the CA says so, and so does the
 * TPM's vendor string ("SW").
 */
import { webcrypto } from "node:crypto";

import { EK_NV, EK_PERSISTENT, TPM_ALG, TPM_ECC_CURVE, TPM_RH } from "../src/tpm/constants.ts";
import { publicKeyOf } from "../src/tpm/crypto.ts";
import { EK_TEMPLATES, type EkAlg } from "../src/tpm/templates.ts";
import { TPMA_NV } from "../src/tpm/structures.ts";
import { X509Certificate, x509lib as x509 } from "../src/tpm/x509.ts";
import { KdfStream } from "./drbg.ts";
import { deriveEccScalar, eccJwk } from "./ecc_keygen.ts";
import { makeMaterial } from "./keys.ts";
import { handleBytes, makeObject } from "./object.ts";
import { freshPersistent, type Persistent } from "./state.ts";
import { randomBytes } from "node:crypto";

/** EK certificate NV attributes as swtpm_setup writes them (0x62072001, spec/tpm.md §1.7). */
const EK_CERT_NV_ATTRIBUTES = TPMA_NV.of(
  "PPWRITE",
  "WRITEDEFINE",
  "PPREAD",
  "OWNERREAD",
  "AUTHREAD",
  "NO_DA",
  "WRITTEN",
  "PLATFORMCREATE",
);

const CA_SUBJECT = "CN=keylime-ts simulated TPM CA (software TPM: proves nothing),O=keylime-ts";
const EK_CERT: Readonly<Record<"rsa" | "ecc", number>> = { rsa: EK_NV.RSA2048_CERT, ecc: EK_NV.ECC_P256_CERT };
const EK_PERSISTENT_HANDLE: Readonly<Record<"rsa" | "ecc", number>> = {
  rsa: EK_PERSISTENT.RSA2048,
  ecc: EK_PERSISTENT.ECC_P256,
};
const VALIDITY_MS = 100 * 365 * 24 * 3600 * 1000;

export interface ManufactureOptions {
  /** Makes the TPM reproducible: seeds, EKs and the CA key derive from it. */
  seed?: Uint8Array;
  /** Certificate validity start (defaults to now). */
  now?: Date;
}

/** A random source: the crypto RNG, or a stream derived from a fixed seed. */
function randomSource(seed?: Uint8Array): (n: number) => Uint8Array {
  if (!seed) return (n) => new Uint8Array(randomBytes(n));
  const stream = new KdfStream(TPM_ALG.SHA256, seed, "keylime-ts simulator manufacture", new Uint8Array(0));
  return (n) => stream.next(n);
}

/** A factory-new TPM: fresh seeds, the CA, and EK certificates in NV. */
export async function manufacture(options: ManufactureOptions = {}): Promise<Persistent> {
  const random = randomSource(options.seed);
  const p = freshPersistent(random);
  x509.cryptoProvider.set(webcrypto as unknown as Crypto);

  const caStream = new KdfStream(TPM_ALG.SHA256, random(32), "keylime-ts simulator CA", new Uint8Array(0));
  const caJwk = eccJwk(TPM_ECC_CURVE.NIST_P256, deriveEccScalar(caStream, TPM_ECC_CURVE.NIST_P256));
  const ecdsa = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" };
  const caPrivate = await webcrypto.subtle.importKey("jwk", caJwk, ecdsa, false, ["sign"]);
  const { d: _d, ...caPublicJwk } = caJwk;
  const caPublic = await webcrypto.subtle.importKey("jwk", caPublicJwk, ecdsa, true, ["verify"]);
  const notBefore = options.now ?? new Date();
  const notAfter = new Date(notBefore.getTime() + VALIDITY_MS);
  const ca = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: "01",
    name: CA_SUBJECT,
    notBefore,
    notAfter,
    signingAlgorithm: ecdsa,
    keys: { privateKey: caPrivate, publicKey: caPublic },
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(caPublic),
    ],
  });
  p.manufacturer = { caCert: new Uint8Array(ca.rawData), caKey: caJwk };

  for (const alg of ["rsa", "ecc"] as const satisfies readonly EkAlg[]) {
    const ek = makeMaterial(EK_TEMPLATES[alg], {
      kind: "primary",
      seed: p.endorsement.seed,
      sensitiveData: new Uint8Array(0),
      persistent: p,
    });
    // Provisioned as persistent objects too, at the TCG's EK handles (as swtpm_setup does for RSA).
    const ekObject = makeObject(
      { ...ek, hierarchy: TPM_RH.ENDORSEMENT, authValue: new Uint8Array(0) },
      handleBytes(TPM_RH.ENDORSEMENT),
    );
    p.persistent.set(EK_PERSISTENT_HANDLE[alg], { ...ekObject });
    const spki = publicKeyOf(ek.public).export({ format: "der", type: "spki" });
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: alg === "rsa" ? "02" : "03",
      subject: `CN=keylime-ts simulated EK (${alg === "rsa" ? "RSA-2048" : "NIST P-256"})`,
      issuer: ca.subject,
      notBefore,
      notAfter,
      signingAlgorithm: ecdsa,
      publicKey: new x509.PublicKey(new Uint8Array(spki)),
      signingKey: caPrivate,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(
          alg === "rsa" ? x509.KeyUsageFlags.keyEncipherment : x509.KeyUsageFlags.keyAgreement,
          true,
        ),
        // tcg-kp-EKCertificate (TCG EK Credential Profile §3.2.16).
        new x509.ExtendedKeyUsageExtension(["2.23.133.8.1"]),
        await x509.AuthorityKeyIdentifierExtension.create(caPublic),
      ],
    });
    const der = new Uint8Array(cert.rawData);
    p.nv.set(EK_CERT[alg], {
      public: {
        nvIndex: EK_CERT[alg],
        nameAlg: TPM_ALG.SHA256,
        attributes: EK_CERT_NV_ATTRIBUTES,
        authPolicy: new Uint8Array(0),
        dataSize: der.length,
      },
      authValue: new Uint8Array(0),
      data: der,
    });
  }
  return p;
}

/** The simulator CA certificate (PEM), to tell a registrar to trust this simulated TPM's EKs. */
export function caCertificatePem(p: Persistent): string {
  if (!p.manufacturer) throw new Error("this simulator state has no manufacturer CA");
  return new X509Certificate(p.manufacturer.caCert.slice().buffer).toString("pem") + "\n";
}

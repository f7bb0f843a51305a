/**
 * Test agents for the registrar: what an agent sends (EK, EK certificate, AK) and how it answers the
 * challenge. `softAgent` keeps its EK in software (node:crypto) and activates the credential in software
 * (recoverSeed + unwrapCredential); `tpmAgent` creates its EK and AK in a real TPM (the simulator or swtpm)
 * and activates with TPM2_ActivateCredential.
 */
import { generateKeyPairSync, type KeyObject } from "node:crypto";
import { authTag, decodeKeylimeBlob } from "../../src/protocol/credential.ts";
import { RegisterBody, tpmPublicFromBytes } from "../../src/protocol/registrar_api.ts";
import { activateCredential } from "../../src/tpm/activate.ts";
import { createAk, loadAk } from "../../src/tpm/ak.ts";
import type { Tpm } from "../../src/tpm/client.ts";
import { recoverSeed, unwrapCredential } from "../../src/tpm/credential.ts";
import { objectName } from "../../src/tpm/crypto.ts";
import { createEk, readEkCertificate } from "../../src/tpm/ek.ts";
import { EK_TEMPLATES, type EkAlg } from "../../src/tpm/templates.ts";
import { encode } from "../../src/tpm/marshal.ts";
import { flush } from "../../src/tpm/objects.ts";
import { TPM2B_PUBLIC, type TPMT_PUBLIC, TPMT_SIGNATURE } from "../../src/tpm/structures.ts";
import { certifySoftwareKey } from "../../src/tpm/certify.ts";
import type { ExternalKeyUse } from "../../src/tpm/external_key.ts";
import { createCa, issueCertificate, type Issuer } from "../../src/registrar/tls.ts";
import { softKey } from "./soft_key.ts";
import { fromBase64url, toBase64, toPem } from "../../src/util/encoding.ts";

export interface TestAgent {
  ekTpm: Uint8Array;
  akTpm: Uint8Array;
  akPublic: TPMT_PUBLIC;
  /** PEM of the EK certificate (and chain), or undefined. */
  ekcert: string | undefined;
  /** The JSON body of a registration. */
  body(extra?: Record<string, unknown>): Record<string, unknown>;
  /** The auth_tag for a registrar's blob. */
  answer(blob: Uint8Array, uuid: string): Promise<string>;
  /** TPM agents: the AK certifies `nk` over `nonce` (nk-certify.md step 3); the activation's nk_* fields. */
  certifyNk?(nk: KeyObject, nonce: Uint8Array, use?: ExternalKeyUse): Promise<NkFields>;
  close(): Promise<void>;
}

/** The activation's NK certification, base64 as sent. */
export interface NkFields {
  nk_tpm: string;
  nk_attest: string;
  nk_sign: string;
}

function bodyOf(ekTpm: Uint8Array, akTpm: Uint8Array, ekcert: string | undefined) {
  return (extra: Record<string, unknown> = {}) => ({
    ...RegisterBody.toJson({
      aik_tpm: tpmPublicFromBytes(akTpm),
      ek_tpm: tpmPublicFromBytes(ekTpm),
      ...(ekcert ? { ekcert } : {}),
      mtls_cert: "disabled",
      ip: "127.0.0.1",
      port: 9002,
    }),
    ...extra,
  });
}

let testCa: Promise<Issuer> | undefined;
/** One CA per test process for software EK certificates ("CN=keylime-ts test TPM CA"). */
export function softEkCa(): Promise<Issuer> {
  return testCa ??= createCa("CN=keylime-ts test TPM CA");
}

const b64url = (s: unknown) => fromBase64url(String(s));

export interface SoftKeyPair {
  publicKey: KeyObject;
  privateKey: KeyObject;
}

export function softEkKeys(kind: "rsa" | "ecc"): SoftKeyPair {
  return kind === "rsa"
    ? generateKeyPairSync("rsa", { modulusLength: 2048 })
    : generateKeyPairSync("ec", { namedCurve: "P-256" });
}

function softEk(kind: "rsa" | "ecc", keys = softEkKeys(kind)): { pub: TPMT_PUBLIC; priv: KeyObject; spki: Uint8Array } {
  const { publicKey, privateKey } = keys;
  const jwk = publicKey.export({ format: "jwk" });
  const template = EK_TEMPLATES[kind];
  const pub: TPMT_PUBLIC = kind === "rsa"
    ? { ...template, unique: b64url(jwk.n) }
    : { ...template, unique: { x: b64url(jwk.x), y: b64url(jwk.y) } };
  return { pub, priv: privateKey, spki: new Uint8Array(publicKey.export({ format: "der", type: "spki" })) };
}

export interface SoftAgentOptions {
  ek?: "rsa" | "ecc";
  /** Who signs the EK certificate (default: softEkCa()); null: no EK certificate. */
  ca?: Issuer | null;
  /** Override the AK's public area (e.g. attributes an AK must not have). */
  akPublic?: TPMT_PUBLIC;
  /** Certificates sent after the EK certificate (PEM), as an agent sends its NV chain. */
  chain?: string[];
  /** The EK's key pair, of kind `ek` (default: a new one); each agent still gets its own certificate. */
  ekKeys?: SoftKeyPair;
}

/** A software EK's auth_tag for a registrar's blob: TPM2_ActivateCredential done in software. */
export function softAuthTag(
  ekPrivate: KeyObject,
  ekPublic: TPMT_PUBLIC,
  akName: Uint8Array,
  blob: Uint8Array,
  uuid: string,
): string {
  const { credentialBlob, secret } = decodeKeylimeBlob(blob);
  const seed = recoverSeed(ekPrivate, ekPublic, secret);
  return authTag(unwrapCredential(ekPublic, seed, akName, credentialBlob), uuid);
}

export async function softAgent(o: SoftAgentOptions = {}): Promise<TestAgent> {
  const ek = softEk(o.ek ?? "ecc", o.ekKeys);
  const akPublic = o.akPublic ?? softKey("ecc").pub;
  const ca = o.ca === undefined ? await softEkCa() : o.ca;
  const ekcert = ca
    ? (await issueCertificate(ca, {
      subject: "CN=keylime-ts test EK",
      publicKey: ek.spki,
      extendedKeyUsages: ["2.23.133.8.1"],
    })).toString("pem") + (o.chain ?? []).map((c) => "\n" + c).join("")
    : undefined;
  const ekTpm = encode(TPM2B_PUBLIC, ek.pub);
  const akTpm = encode(TPM2B_PUBLIC, akPublic);
  return {
    ekTpm,
    akTpm,
    akPublic,
    ekcert,
    body: bodyOf(ekTpm, akTpm, ekcert),
    answer: (blob, uuid) => Promise.resolve(softAuthTag(ek.priv, ek.pub, objectName(akPublic), blob, uuid)),
    close: () => Promise.resolve(),
  };
}

/** EK (from the TPM's template, with the certificate in its NV) and a new AK under it. */
export async function tpmAgent(tpm: Tpm, alg: EkAlg = "rsa"): Promise<TestAgent> {
  const ek = await createEk(tpm, alg);
  const der = await readEkCertificate(tpm, alg);
  const ekcert = der ? toPem("CERTIFICATE", der) : undefined;
  const made = await createAk(tpm, ek);
  const ak = await loadAk(tpm, ek, made);
  const ekTpm = encode(TPM2B_PUBLIC, ek.public);
  const akTpm = encode(TPM2B_PUBLIC, made.public);
  return {
    ekTpm,
    akTpm,
    akPublic: made.public,
    ekcert,
    body: bodyOf(ekTpm, akTpm, ekcert),
    answer: async (blob, uuid) => {
      const { credentialBlob, secret } = decodeKeylimeBlob(blob);
      return authTag(await activateCredential(tpm, ak, ek, credentialBlob, secret), uuid);
    },
    certifyNk: async (nk, nonce, use) => {
      const c = await certifySoftwareKey(tpm, nk, ak, nonce, use);
      return {
        nk_tpm: toBase64(encode(TPM2B_PUBLIC, c.public)),
        nk_attest: toBase64(c.attest),
        nk_sign: toBase64(encode(TPMT_SIGNATURE, c.signature)),
      };
    },
    close: async () => {
      await flush(tpm, ak.handle).catch(() => {});
      await flush(tpm, ek.handle).catch(() => {});
    },
  };
}

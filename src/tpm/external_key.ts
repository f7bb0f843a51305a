/**
 * A software key pair as TPM objects (Part 2 §12.2, §12.3): the TPMT_PUBLIC and TPMT_SENSITIVE that
 * TPM2_LoadExternal takes, e.g. to have the AK certify the agent's key (spec/nk-certify.md).
 */
import type { KeyObject } from "node:crypto";
import { TPM_ALG, TPM_ECC_CURVE } from "./constants.ts";
import { TpmUsageError } from "./errors.ts";
import { fromBase64url } from "../util/encoding.ts";
import { TPMA_OBJECT, type TPMT_PUBLIC, type TPMT_SENSITIVE } from "./structures.ts";

const CURVES: Readonly<Record<string, number>> = {
  "P-256": TPM_ECC_CURVE.NIST_P256,
  "P-384": TPM_ECC_CURVE.NIST_P384,
  "P-521": TPM_ECC_CURVE.NIST_P521,
};
const NULL_SYM = { algorithm: TPM_ALG.NULL, keyBits: null, mode: null, details: null };
const NULL_SCHEME = { scheme: TPM_ALG.NULL, details: null };
const b64 = (s: string | undefined, what: string): Uint8Array => {
  if (!s) throw new TpmUsageError(`the key has no ${what}`);
  return fromBase64url(s);
};

export type ExternalKeyUse = "sign" | "decrypt";

/**
 * TPMT_PUBLIC of a software key: not fixedTPM, not fixedParent, userWithAuth, and `sign` or `decrypt`;
 * unrestricted with scheme NULL, so the TPM accepts any scheme the key type allows.
 */
export function externalPublic(
  key: KeyObject,
  use: ExternalKeyUse = "sign",
  nameAlg: number = TPM_ALG.SHA256,
): TPMT_PUBLIC {
  const jwk = key.export({ format: "jwk" });
  const objectAttributes = TPMA_OBJECT.of("userWithAuth", use);
  if (jwk.kty === "RSA") {
    const n = b64(jwk.n, "modulus");
    const e = b64(jwk.e, "exponent").reduce((v, byte) => v * 256 + byte, 0);
    return {
      type: TPM_ALG.RSA,
      nameAlg,
      objectAttributes,
      authPolicy: new Uint8Array(0),
      // An exponent of 0 means the default 65537 (Part 2 §12.2.3.5); it is what TPMs report for it.
      parameters: { symmetric: NULL_SYM, scheme: NULL_SCHEME, keyBits: n.length * 8, exponent: e === 65537 ? 0 : e },
      unique: n,
    };
  }
  if (jwk.kty === "EC") {
    const curveID = CURVES[jwk.crv ?? ""];
    if (curveID === undefined) throw new TpmUsageError(`EC curve ${jwk.crv} is not supported (P-256, P-384, P-521)`);
    return {
      type: TPM_ALG.ECC,
      nameAlg,
      objectAttributes,
      authPolicy: new Uint8Array(0),
      parameters: { symmetric: NULL_SYM, scheme: NULL_SCHEME, curveID, kdf: NULL_SCHEME },
      unique: { x: b64(jwk.x, "x"), y: b64(jwk.y, "y") },
    };
  }
  throw new TpmUsageError(`a ${jwk.kty} key cannot be loaded into a TPM`);
}

/** TPMT_SENSITIVE of a private software key: RSA carries one prime, ECC the scalar (Part 2 §12.3.2.3). */
export function externalSensitive(privateKey: KeyObject): TPMT_SENSITIVE {
  if (privateKey.type !== "private") throw new TpmUsageError("a private key is needed for the sensitive area");
  const jwk = privateKey.export({ format: "jwk" });
  const common = { authValue: new Uint8Array(0), seedValue: new Uint8Array(0) };
  if (jwk.kty === "RSA") return { sensitiveType: TPM_ALG.RSA, ...common, sensitive: b64(jwk.p, "prime p") };
  if (jwk.kty === "EC") return { sensitiveType: TPM_ALG.ECC, ...common, sensitive: b64(jwk.d, "private scalar") };
  throw new TpmUsageError(`a ${jwk.kty} key cannot be loaded into a TPM`);
}

/**
 * TPM2_Sign and TPM2_VerifySignature (Part 3 §20): signatures over a digest the caller supplies. A
 * restricted key signs only digests the TPM computed itself (a TPM2_Hash ticket), so it cannot be made
 * to sign something that looks like a TPMS_ATTEST.
 *
 * The digest arrives already hashed, so RSASSA pads it into a DigestInfo by hand and ECDSA signs it
 * with @noble/curves; node:crypto and WebCrypto only sign messages they hash themselves. RSA-PSS over a
 * given digest has no such route here and answers TPM_RC_SCHEME.
 */
import { constants, createPublicKey, privateEncrypt, publicDecrypt, timingSafeEqual } from "node:crypto";
import { p256, p384, p521 } from "@noble/curves/nist";
import { hmac } from "@noble/hashes/hmac";
import { sha256 } from "@noble/hashes/sha2";
import { DIGEST_SIZE, TPM_ALG, TPM_ECC_CURVE, TPM_RC, TPM_RH, TPM_ST } from "../../src/tpm/constants.ts";
import { concat } from "../../src/tpm/crypto.ts";
import { signatureHashAlg } from "../../src/tpm/signature.ts";
import type { CommandArgs, ResponseArgs } from "../../src/tpm/command.ts";
import { Sign, VerifySignature } from "../../src/tpm/commands.ts";
import {
  publicAsym,
  publicEcc,
  signatureEcc,
  signatureRsa,
  TPMA_OBJECT,
  type TPMT_SIG_SCHEME,
  uniqueEcc,
  uniqueRsa,
} from "../../src/tpm/structures.ts";
import { privateKeyOf, type SimObject } from "../object.ts";
import { rcHandle, rcParam } from "../rc.ts";
import type { SimTpm } from "../sim_tpm.ts";
import { handle } from "./index.ts";
import { hierarchyState } from "./objects.ts";
import { hashCheckTicket } from "./pcr.ts";
import { u16be } from "../../src/tpm/bytes.ts";

/** DER DigestInfo prefixes (RFC 8017 §9.2 note 1). */
const DIGEST_INFO: Readonly<Record<number, string>> = {
  [TPM_ALG.SHA1]: "3021300906052b0e03021a05000414",
  [TPM_ALG.SHA256]: "3031300d060960864801650304020105000420",
  [TPM_ALG.SHA384]: "3041300d060960864801650304020205000430",
  [TPM_ALG.SHA512]: "3051300d060960864801650304020305000440",
};
const CURVES: Readonly<Record<number, typeof p256 | typeof p384 | typeof p521>> = {
  [TPM_ECC_CURVE.NIST_P256]: p256,
  [TPM_ECC_CURVE.NIST_P384]: p384,
  [TPM_ECC_CURVE.NIST_P521]: p521,
};
const b64u = (s: string | undefined) => new Uint8Array(Buffer.from(s ?? "", "base64url"));

function curveOf(key: SimObject) {
  const c = CURVES[publicEcc(key.public).curveID];
  if (!c) throw rcHandle(TPM_RC.CURVE, 1);
  return c;
}

/** The scheme: the key's own, or the caller's for a key without one (as for Quote). */
function scheme(key: SimObject, inScheme: TPMT_SIG_SCHEME): { scheme: number; hashAlg: number } {
  const own = publicAsym(key.public).scheme;
  const chosen = own.scheme !== TPM_ALG.NULL ? own : inScheme.scheme !== TPM_ALG.NULL ? inScheme : undefined;
  if (!chosen) throw rcParam(TPM_RC.SCHEME, 2);
  if (own.scheme !== TPM_ALG.NULL && inScheme.scheme !== TPM_ALG.NULL && inScheme.scheme !== own.scheme) {
    throw rcParam(TPM_RC.SCHEME, 2);
  }
  const hashAlg = chosen.details?.hashAlg;
  if (hashAlg === undefined) throw rcParam(TPM_RC.SCHEME, 2);
  return { scheme: chosen.scheme, hashAlg };
}

function sign(tpm: SimTpm, args: CommandArgs<typeof Sign>): ResponseArgs<typeof Sign> {
  const key = tpm.object(args.keyHandle, 1);
  if (!TPMA_OBJECT.has(key.public.objectAttributes, "sign") || !key.privateJwk) throw rcHandle(TPM_RC.KEY, 1);
  const s = scheme(key, args.inScheme);
  if (args.digest.length !== DIGEST_SIZE[s.hashAlg]) throw rcParam(TPM_RC.SIZE, 1);
  if (TPMA_OBJECT.has(key.public.objectAttributes, "restricted")) {
    // Only a digest the TPM made, with a ticket from a hierarchy other than NULL.
    const t = args.validation;
    const expected = t.hierarchy === TPM_RH.NULL
      ? undefined
      : hashCheckTicket(tpm, t.hierarchy, s.hashAlg, args.digest);
    if (
      !expected || t.tag !== TPM_ST.HASHCHECK || t.digest.length !== expected.digest.length ||
      !timingSafeEqual(t.digest, expected.digest)
    ) {
      throw rcParam(TPM_RC.TICKET, 3);
    }
  }
  if (s.scheme === TPM_ALG.RSASSA) {
    const info = concat(new Uint8Array(Buffer.from(DIGEST_INFO[s.hashAlg]!, "hex")), args.digest);
    const sig = privateEncrypt({ key: privateKeyOf(key), padding: constants.RSA_PKCS1_PADDING }, info);
    return { signature: { sigAlg: s.scheme, signature: { hash: s.hashAlg, sig: new Uint8Array(sig) } } };
  }
  if (s.scheme === TPM_ALG.ECDSA) {
    const curve = curveOf(key);
    const sig = curve.sign(args.digest, b64u(key.privateJwk.d), { prehash: false, lowS: false });
    const size = Math.ceil(curve.CURVE.n.toString(16).length / 2);
    const fixed = (v: bigint) => new Uint8Array(Buffer.from(v.toString(16).padStart(size * 2, "0"), "hex"));
    return {
      signature: {
        sigAlg: s.scheme,
        signature: { hash: s.hashAlg, signatureR: fixed(sig.r), signatureS: fixed(sig.s) },
      },
    };
  }
  throw rcParam(TPM_RC.SCHEME, 2);
}

function verify(tpm: SimTpm, args: CommandArgs<typeof VerifySignature>): ResponseArgs<typeof VerifySignature> {
  const key = tpm.object(args.keyHandle, 1);
  if (!TPMA_OBJECT.has(key.public.objectAttributes, "sign")) throw rcHandle(TPM_RC.ATTRIBUTES, 1);
  const sig = args.signature;
  const hashAlg = signatureHashAlg(sig);
  if (args.digest.length !== DIGEST_SIZE[hashAlg]) throw rcParam(TPM_RC.SIZE, 1);
  let ok = false;
  if (sig.sigAlg === TPM_ALG.RSASSA && key.public.type === TPM_ALG.RSA && DIGEST_INFO[hashAlg]) {
    const expected = concat(new Uint8Array(Buffer.from(DIGEST_INFO[hashAlg]!, "hex")), args.digest);
    try {
      const pub = key.privateJwk ? createPublicKey(privateKeyOf(key)) : createPublicKey({
        key: { kty: "RSA", n: Buffer.from(uniqueRsa(key.public)).toString("base64url"), e: "AQAB" },
        format: "jwk",
      });
      const recovered = publicDecrypt(
        { key: pub, padding: constants.RSA_PKCS1_PADDING },
        signatureRsa(sig).sig,
      );
      ok = recovered.length === expected.length && timingSafeEqual(recovered, expected);
    } catch {
      ok = false;
    }
  } else if (sig.sigAlg === TPM_ALG.ECDSA && key.public.type === TPM_ALG.ECC) {
    const { signatureR, signatureS } = signatureEcc(sig);
    const point = uniqueEcc(key.public);
    const curve = curveOf(key);
    const pub = concat(Uint8Array.of(4), point.x, point.y);
    try {
      ok = curve.verify(concat(signatureR, signatureS), args.digest, pub, { prehash: false, lowS: false });
    } catch {
      ok = false;
    }
  } else {
    throw rcParam(TPM_RC.SCHEME, 2);
  }
  if (!ok) throw rcParam(TPM_RC.SIGNATURE, 2);
  // TPMT_TK_VERIFIED: HMAC(proof, TPM_ST_VERIFIED ‖ digest ‖ keyName) (Part 3 §20.1).
  const hierarchy = key.hierarchy;
  const digest = hierarchy === TPM_RH.NULL
    ? new Uint8Array(0)
    : hmac(sha256, hierarchyState(tpm, hierarchy).proof, concat(u16be(TPM_ST.VERIFIED), args.digest, key.name));
  return { validation: { tag: TPM_ST.VERIFIED, hierarchy, digest } };
}

export const signing = [handle(Sign, sign), handle(VerifySignature, verify)];

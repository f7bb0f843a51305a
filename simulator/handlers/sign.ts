/**
 * TPM2_Sign and TPM2_VerifySignature (Part 3 §20): signatures over a digest the caller supplies. A
 * restricted key signs only digests the TPM computed itself (a TPM2_Hash ticket), so it cannot be made
 * to sign something that looks like a TPMS_ATTEST.
 */
import { hmac } from "@noble/hashes/hmac";
import { sha256 } from "@noble/hashes/sha2";
import { sameSecret, u16be } from "../../src/tpm/bytes.ts";
import { DIGEST_SIZE, TPM_RC, TPM_RH, TPM_ST } from "../../src/tpm/constants.ts";
import { concat } from "../../src/tpm/crypto.ts";
import type { CommandArgs, ResponseArgs } from "../../src/tpm/command.ts";
import { Sign, VerifySignature } from "../../src/tpm/commands.ts";
import { TPMA_OBJECT } from "../../src/tpm/structures.ts";
import { rcHandle, rcParam, TpmRc } from "../rc.ts";
import { signatureHashAlg } from "../../src/tpm/signature.ts";
import { selectSignScheme, signDigest, verifyDigest } from "../signing.ts";
import type { SimTpm } from "../sim_tpm.ts";
import { handle } from "./index.ts";
import { hierarchyState } from "./objects.ts";
import { hashCheckTicket } from "./pcr.ts";

function sign(tpm: SimTpm, args: CommandArgs<typeof Sign>): ResponseArgs<typeof Sign> {
  const key = tpm.object(args.keyHandle, 1);
  const s = selectSignScheme(key, args.inScheme, 1);
  if (args.digest.length !== DIGEST_SIZE[s.hashAlg]) throw rcParam(TPM_RC.SIZE, 1);
  if (TPMA_OBJECT.has(key.public.objectAttributes, "restricted")) {
    // Only a digest the TPM made, with a ticket from a hierarchy other than NULL.
    const t = args.validation;
    const expected = t.hierarchy === TPM_RH.NULL
      ? undefined
      : hashCheckTicket(tpm, t.hierarchy, s.hashAlg, args.digest);
    if (
      !expected || t.tag !== TPM_ST.HASHCHECK || !sameSecret(t.digest, expected.digest)
    ) {
      throw rcParam(TPM_RC.TICKET, 3);
    }
  }
  return { signature: signDigest(key, s, args.digest) };
}

function verify(tpm: SimTpm, args: CommandArgs<typeof VerifySignature>): ResponseArgs<typeof VerifySignature> {
  const key = tpm.object(args.keyHandle, 1);
  if (!TPMA_OBJECT.has(key.public.objectAttributes, "sign")) throw rcHandle(TPM_RC.ATTRIBUTES, 1);
  if (args.digest.length !== DIGEST_SIZE[signatureHashAlg(args.signature)]) throw rcParam(TPM_RC.SIZE, 1);
  let ok: boolean;
  try {
    ok = verifyDigest(key, args.digest, args.signature);
  } catch (e) {
    // CryptValidateSignature's codes are about the signature, parameter 2 (RcSafeAddToResult).
    if (e instanceof TpmRc && e.rc === TPM_RC.SCHEME) throw rcParam(TPM_RC.SCHEME, 2);
    throw e;
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

/**
 * Attestation and credentials (Part 3 §12.5-12.6, §18.2, §18.4): TPMS_ATTEST built and signed by
 * the signing key, and the credential protection of MakeCredential/ActivateCredential.
 */
import { DIGEST_SIZE, TPM_ALG, TPM_GENERATED_VALUE, TPM_RC, TPM_RH, TPM_ST } from "../../src/tpm/constants.ts";
import { hash } from "../../src/tpm/crypto.ts";
import { CredentialError, makeCredential, unwrapCredential } from "../../src/tpm/credential.ts";
import { kdfa } from "../../src/tpm/kdf.ts";
import { encode } from "../../src/tpm/marshal.ts";
import { secretDecrypt, SecretError } from "../../src/tpm/secret.ts";
import type { CommandArgs, ResponseArgs } from "../../src/tpm/command.ts";
import { ActivateCredential, Certify, MakeCredential, Quote } from "../../src/tpm/commands.ts";
import {
  publicAsym,
  TPMA_OBJECT,
  TPMS_ATTEST,
  type TPMS_ATTEST as Attest,
  type TPMT_SIG_SCHEME,
} from "../../src/tpm/structures.ts";
import { privateKeyOf, signWith, type SimObject } from "../object.ts";
import { rcHandle, rcParam, TpmRc } from "../rc.ts";
import type { SimTpm } from "../sim_tpm.ts";
import { FIRMWARE_VERSION } from "./firmware.ts";
import { handle } from "./index.ts";
import { hierarchyState, selectedPcrValues } from "./objects.ts";

/** The scheme a signature uses: the key's own, or the caller's when the key has none (Part 3 §18.2). */
function signingScheme(key: SimObject, inScheme: TPMT_SIG_SCHEME, n: number): { scheme: number; hashAlg: number } {
  const a = key.public.objectAttributes;
  if (!TPMA_OBJECT.has(a, "sign")) throw rcHandle(TPM_RC.KEY, n);
  if (!key.privateJwk) throw rcHandle(TPM_RC.KEY, n);
  const own = publicAsym(key.public).scheme;
  const given = inScheme.scheme === TPM_ALG.NULL ? undefined : inScheme;
  if (
    own.scheme !== TPM_ALG.NULL && given &&
    (given.scheme !== own.scheme || given.details?.hashAlg !== own.details?.hashAlg)
  ) {
    throw rcParam(TPM_RC.SCHEME, 2);
  }
  const chosen = own.scheme !== TPM_ALG.NULL ? own : given;
  const hashAlg = chosen?.details?.hashAlg;
  if (!chosen || hashAlg === undefined) throw rcParam(TPM_RC.SCHEME, 2);
  return { scheme: chosen.scheme, hashAlg };
}

/**
 * Clock, counters and firmware version; obfuscated for signers outside the endorsement and platform
 * hierarchies, so their quotes do not reveal reboots (Part 3 §18.1).
 */
function attestHeader(tpm: SimTpm, signer: SimObject, hashAlg: number, extraData: Uint8Array) {
  let resetCount = tpm.persistent.resetCount;
  let restartCount = tpm.persistent.restartCount;
  let firmwareVersion = FIRMWARE_VERSION;
  if (signer.hierarchy !== TPM_RH.ENDORSEMENT && signer.hierarchy !== TPM_RH.PLATFORM) {
    const proof = hierarchyState(tpm, signer.hierarchy).proof;
    const o = kdfa(hashAlg, proof, "OBFUSCATE", signer.name, new Uint8Array(0), 128);
    const v = new DataView(o.buffer, o.byteOffset);
    resetCount = (resetCount + v.getUint32(0)) >>> 0;
    restartCount = (restartCount + v.getUint32(4)) >>> 0;
    firmwareVersion = (firmwareVersion + v.getBigUint64(8)) & 0xffff_ffff_ffff_ffffn;
  }
  return {
    magic: TPM_GENERATED_VALUE,
    qualifiedSigner: signer.qualifiedName,
    extraData,
    clockInfo: { clock: tpm.tickClock(), resetCount, restartCount, safe: tpm.volatile.safe },
    firmwareVersion,
  };
}

function checkQualifyingData(data: Uint8Array, hashAlg: number): void {
  // extraData may hold at most a digest of the signing hash plus its algorithm id (TPMT_HA).
  if (data.length > DIGEST_SIZE[hashAlg]! + 2) throw rcParam(TPM_RC.SIZE, 1);
}

function sign(signer: SimObject, s: { scheme: number; hashAlg: number }, attest: Attest) {
  const bytes = encode(TPMS_ATTEST, attest);
  return { attest, signature: signWith(signer, s.scheme, s.hashAlg, bytes) };
}

function quote(tpm: SimTpm, args: CommandArgs<typeof Quote>): ResponseArgs<typeof Quote> {
  const signer = tpm.object(args.signHandle, 1);
  const s = signingScheme(signer, args.inScheme, 1);
  checkQualifyingData(args.qualifyingData, s.hashAlg);
  for (const sel of args.PCRselect) if (!tpm.volatile.pcrs.has(sel.hash)) throw rcParam(TPM_RC.VALUE, 3);
  const attest: Attest = {
    ...attestHeader(tpm, signer, s.hashAlg, args.qualifyingData),
    type: TPM_ST.ATTEST_QUOTE,
    attested: { pcrSelect: args.PCRselect, pcrDigest: hash(s.hashAlg, ...selectedPcrValues(tpm, args.PCRselect)) },
  };
  const r = sign(signer, s, attest);
  return { quoted: r.attest, signature: r.signature };
}

function certify(tpm: SimTpm, args: CommandArgs<typeof Certify>): ResponseArgs<typeof Certify> {
  const object = tpm.object(args.objectHandle, 1);
  const signer = tpm.object(args.signHandle, 2);
  const s = signingScheme(signer, args.inScheme, 2);
  checkQualifyingData(args.qualifyingData, s.hashAlg);
  const attest: Attest = {
    ...attestHeader(tpm, signer, s.hashAlg, args.qualifyingData),
    type: TPM_ST.ATTEST_CERTIFY,
    attested: { name: object.name, qualifiedName: object.qualifiedName },
  };
  const r = sign(signer, s, attest);
  return { certifyInfo: r.attest, signature: r.signature };
}

/** A credential library error as the TPM's own response code (they carry the same rc). */
function asRc(e: unknown, param: number): never {
  if (e instanceof CredentialError || e instanceof SecretError) {
    const base = e.rc;
    throw base & 0x80 ? rcParam(base, param) : new TpmRc(base);
  }
  throw e;
}

async function makeCredentialCmd(
  tpm: SimTpm,
  args: CommandArgs<typeof MakeCredential>,
): Promise<ResponseArgs<typeof MakeCredential>> {
  const key = tpm.object(args.handle, 1);
  try {
    return await makeCredential(key.public, args.objectName, args.credential);
  } catch (e) {
    return asRc(e, 1);
  }
}

function activateCredential(
  tpm: SimTpm,
  args: CommandArgs<typeof ActivateCredential>,
): ResponseArgs<typeof ActivateCredential> {
  const activate = tpm.object(args.activateHandle, 1);
  const key = tpm.object(args.keyHandle, 2);
  if (!TPMA_OBJECT.has(key.public.objectAttributes, "decrypt") || !key.privateJwk) throw rcHandle(TPM_RC.TYPE, 2);
  let seed: Uint8Array;
  try {
    seed = secretDecrypt(privateKeyOf(key), key.public, "IDENTITY", args.secret);
  } catch (e) {
    return asRc(e, 2);
  }
  try {
    return { certInfo: unwrapCredential(key.public, seed, activate.name, args.credentialBlob) };
  } catch (e) {
    return asRc(e, 1);
  }
}

export const attest = [
  handle(Quote, quote),
  handle(Certify, certify),
  handle(MakeCredential, makeCredentialCmd),
  handle(ActivateCredential, activateCredential),
];

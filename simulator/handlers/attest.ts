/**
 * Attestation and credentials (Part 3 §12.5-12.6, §18.2, §18.4): TPMS_ATTEST built and signed by
 * the signing key, and the credential protection of MakeCredential/ActivateCredential.
 */
import { TPM_GENERATED_VALUE, TPM_RC, TPM_RH, TPM_ST } from "../../src/tpm/constants.ts";
import { hash } from "../../src/tpm/crypto.ts";
import { CredentialError, makeCredential, unwrapCredential } from "../../src/tpm/credential.ts";
import { kdfa } from "../../src/tpm/kdf.ts";
import { encode } from "../../src/tpm/marshal.ts";
import { secretDecrypt, SecretError } from "../../src/tpm/secret.ts";
import type { CommandArgs, ResponseArgs } from "../../src/tpm/command.ts";
import { ActivateCredential, Certify, MakeCredential, Quote } from "../../src/tpm/commands.ts";
import { TPMA_OBJECT, TPMS_ATTEST, type TPMS_ATTEST as Attest } from "../../src/tpm/structures.ts";
import { privateKeyOf, type SimObject } from "../object.ts";
import { selectSignScheme, signMessage, type SignScheme } from "../signing.ts";
import { rcHandle, rcParam, TpmRc } from "../rc.ts";
import type { SimTpm } from "../sim_tpm.ts";
import { FIRMWARE_VERSION } from "./firmware.ts";
import { handle } from "./index.ts";
import { hierarchyState, selectedPcrValues } from "./objects.ts";

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

/** TPMS_ATTEST signed by `signer` (H_scheme(attest), as CryptSign is given it). */
function sign(signer: SimObject, s: SignScheme, attest: Attest) {
  return { attest, signature: signMessage(signer, s, encode(TPMS_ATTEST, attest)) };
}

function quote(tpm: SimTpm, args: CommandArgs<typeof Quote>): ResponseArgs<typeof Quote> {
  const signer = tpm.object(args.signHandle, 1);
  // qualifyingData needs no check of its own: TPM2B_DATA holds at most sizeof(TPMT_HA) bytes.
  const s = selectSignScheme(signer, args.inScheme, 1);
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
  const s = selectSignScheme(signer, args.inScheme, 2);
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

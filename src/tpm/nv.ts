/** NV index reading (Part 3 §31): public area, and data in chunks of TPM_PT_NV_BUFFER_MAX. */
import type { Tpm } from "./client.ts";
import { NV_DefineSpace, NV_Read, NV_ReadPublic, NV_UndefineSpace, NV_Write } from "./commands.ts";
import { TPM_ALG, TPM_PT, TPM_RH } from "./constants.ts";
import { TpmProtocolError } from "./errors.ts";
import { nvName } from "./crypto.ts";
import { getProperty } from "./capabilities.ts";
import { TPMA_NV, type TPMS_NV_PUBLIC } from "./structures.ts";
import type { Session } from "./sessions.ts";
import { sameBytes } from "./bytes.ts";

export interface NvPublic {
  readonly nvPublic: TPMS_NV_PUBLIC;
  readonly name: Uint8Array;
}

/** The public area and Name of an index; the Name is checked against the public area. */
export async function nvReadPublic(tpm: Tpm, index: number): Promise<NvPublic> {
  const r = await tpm.execute(NV_ReadPublic, { nvIndex: index });
  const expected = nvName(r.nvPublic);
  if (!sameBytes(expected, r.nvName)) {
    throw new TpmProtocolError(
      `TPM2_NV_ReadPublic(0x${index.toString(16)}) returned a Name that does not match its public area`,
    );
  }
  return { nvPublic: r.nvPublic, name: r.nvName };
}

/** Who authorizes a read: the index itself when AUTHREAD, else owner, else platform. */
export function readAuthHandle(pub: TPMS_NV_PUBLIC): number {
  if (TPMA_NV.has(pub.attributes, "AUTHREAD")) return pub.nvIndex;
  if (TPMA_NV.has(pub.attributes, "OWNERREAD")) return TPM_RH.OWNER;
  if (TPMA_NV.has(pub.attributes, "PPREAD")) return TPM_RH.PLATFORM;
  return pub.nvIndex;
}

export interface NvReadOptions {
  /** Chunk size; defaults to the TPM's TPM_PT_NV_BUFFER_MAX. */
  chunkSize?: number;
  authHandle?: number;
  /** The session authorizing the reads (default: empty password); an encrypt session hides the data. */
  session?: Session;
}

/** The whole content of an NV index. */
export async function nvRead(tpm: Tpm, index: number, options: NvReadOptions = {}): Promise<Uint8Array> {
  const { nvPublic, name } = await nvReadPublic(tpm, index);
  const chunk = options.chunkSize ?? (await getProperty(tpm, TPM_PT.NV_BUFFER_MAX)) ?? 512;
  const authHandle = options.authHandle ?? readAuthHandle(nvPublic);
  const authName = authHandle === index ? name : handleName(authHandle);
  const out = new Uint8Array(nvPublic.dataSize);
  for (let offset = 0; offset < out.length; offset += chunk) {
    const size = Math.min(chunk, out.length - offset);
    const r = await tpm.execute(
      NV_Read,
      { authHandle, nvIndex: index, size, offset },
      options.session ? { sessions: [options.session], names: [authName, name] } : {},
    );
    if (r.data.length !== size) {
      throw new TpmProtocolError(`TPM2_NV_Read returned ${r.data.length} bytes, asked for ${size}`);
    }
    out.set(r.data, offset);
  }
  return out;
}

/** The Name of a permanent handle: the handle itself (Part 1 §16). */
function handleName(h: number): Uint8Array {
  return Uint8Array.of(h >>> 24, (h >>> 16) & 0xff, (h >>> 8) & 0xff, h & 0xff);
}

export interface NvDefineOptions {
  /** Who defines and authorizes the index (default: owner, by empty password). */
  authHandle?: number;
  nameAlg?: number;
  /** TPMA_NV value; default OWNERWRITE | OWNERREAD | AUTHREAD | AUTHWRITE | NO_DA. */
  attributes?: number;
}

/** TPM2_NV_DefineSpace of an ordinary index of `size` bytes with an empty authValue. */
export async function nvDefine(tpm: Tpm, index: number, size: number, options: NvDefineOptions = {}): Promise<void> {
  await tpm.execute(NV_DefineSpace, {
    authHandle: options.authHandle ?? TPM_RH.OWNER,
    auth: new Uint8Array(0),
    publicInfo: {
      nvIndex: index,
      nameAlg: options.nameAlg ?? TPM_ALG.SHA256,
      attributes: options.attributes ??
        TPMA_NV.of("OWNERWRITE", "OWNERREAD", "AUTHREAD", "AUTHWRITE", "NO_DA"),
      authPolicy: new Uint8Array(0),
      dataSize: size,
    },
  });
}

/** Write `data` at offset 0 in chunks of TPM_PT_NV_BUFFER_MAX, authorized by the index itself. */
export async function nvWrite(tpm: Tpm, index: number, data: Uint8Array): Promise<void> {
  const chunk = (await getProperty(tpm, TPM_PT.NV_BUFFER_MAX)) ?? 512;
  for (let offset = 0; offset < data.length; offset += chunk) {
    await tpm.execute(NV_Write, {
      authHandle: index,
      nvIndex: index,
      data: data.subarray(offset, offset + chunk),
      offset,
    });
  }
}

/** TPM2_NV_UndefineSpace by the owner. */
export async function nvUndefine(tpm: Tpm, index: number, authHandle: number = TPM_RH.OWNER): Promise<void> {
  await tpm.execute(NV_UndefineSpace, { authHandle, nvIndex: index });
}

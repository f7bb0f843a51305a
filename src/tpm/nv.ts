/** NV index reading (Part 3 §31): public area, and data in chunks of TPM_PT_NV_BUFFER_MAX. */
import type { Tpm } from "./client.ts";
import { NV_Read, NV_ReadPublic } from "./commands.ts";
import { TPM_PT, TPM_RH } from "./constants.ts";
import { TransportError } from "./errors.ts";
import { nvName } from "./crypto.ts";
import { getProperty } from "./capabilities.ts";
import { TPMA_NV, type TPMS_NV_PUBLIC } from "./structures.ts";

export interface NvPublic {
  readonly nvPublic: TPMS_NV_PUBLIC;
  readonly name: Uint8Array;
}

/** The public area and Name of an index; the Name is checked against the public area. */
export async function nvReadPublic(tpm: Tpm, index: number): Promise<NvPublic> {
  const r = await tpm.execute(NV_ReadPublic, { nvIndex: index });
  const expected = nvName(r.nvPublic);
  if (!sameBytes(expected, r.nvName)) {
    throw new TransportError(
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
}

/** The whole content of an NV index. */
export async function nvRead(tpm: Tpm, index: number, options: NvReadOptions = {}): Promise<Uint8Array> {
  const { nvPublic } = await nvReadPublic(tpm, index);
  const chunk = options.chunkSize ?? (await getProperty(tpm, TPM_PT.NV_BUFFER_MAX)) ?? 512;
  const authHandle = options.authHandle ?? readAuthHandle(nvPublic);
  const out = new Uint8Array(nvPublic.dataSize);
  for (let offset = 0; offset < out.length; offset += chunk) {
    const size = Math.min(chunk, out.length - offset);
    const r = await tpm.execute(NV_Read, { authHandle, nvIndex: index, size, offset });
    if (r.data.length !== size) {
      throw new TransportError(`TPM2_NV_Read returned ${r.data.length} bytes, asked for ${size}`);
    }
    out.set(r.data, offset);
  }
  return out;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

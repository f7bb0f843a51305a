/**
 * The tpm2-tools PCR file (`tpm2_quote -o`, `tpm2_pcrread -o`, default "serialized" format): the
 * in-memory C structs TPML_PCR_SELECTION and tpm2_pcrs written little-endian (tpm2-software/tpm2-tools:
 * lib/pcr.c `pcr_fwrite_serialized`). Keylime carries this file as the third part of a quote.
 *
 * ```
 * u32le count ‖ 16 × { u16le hash, u8 sizeofSelect, u8 pcrSelect[4], u8 pad }      132 bytes
 * u32le n     ‖ n × { u32le count, 8 × { u16le size, u8 buffer[64] } }            4 + 532·n bytes
 * ```
 * Values follow the selection order (bank by bank, PCRs ascending), at most 8 per TPML_DIGEST, which
 * is how TPM2_PCR_Read returns them; a group may hold fewer than 8 when a TPM returned fewer per call.
 */
import { DIGEST_SIZE, hex, LIMITS } from "./constants.ts";
import { algName } from "./crypto.ts";
import { TpmLibraryError } from "./errors.ts";
import { selectedPcrs } from "./pcrs.ts";
import type { TPMS_PCR_SELECTION } from "./structures.ts";

/** A PCR file that cannot be read or written; `field` names the offending part. */
export class PcrFileError extends TpmLibraryError {
  readonly code = "ERR_PCR_FILE";
  readonly field: string;
  constructor(field: string, message: string) {
    super(`Invalid tpm2-tools PCR file: ${field}: ${message}`);
    this.name = "PcrFileError";
    this.field = field;
  }
}

/** Selection and values of a PCR file. */
export interface PcrFile {
  /** One entry per bank, in file order; pcrSelect is 3 bytes (0 if sizeofSelect was 0), bit i of byte j = PCR 8j+i. */
  readonly selections: TPMS_PCR_SELECTION[];
  /** values[i][k]: the k-th selected PCR (ascending) of selections[i]. */
  readonly values: Uint8Array[][];
}

/** sizeof(TPML_PCR_SELECTION) on every ABI tpm2-tools runs on. */
const SELECTION_SIZE = 4 + LIMITS.MAX_PCR_BANKS * 8;
/** sizeof(TPML_DIGEST): u32 count + 8 × (u16 size + 64-byte buffer). */
const DIGEST_LIST_SIZE = 4 + 8 * (2 + 64);
/** tpm2-tools and Keylime always use 3 select bytes (24 PCRs); Keylime rejects any other non-zero size. */
const SELECT_SIZE = 3;

/** Byte length of a file holding `n` TPML_DIGEST groups. */
export function pcrFileSize(n: number): number {
  return SELECTION_SIZE + 4 + n * DIGEST_LIST_SIZE;
}

/** Write a PCR file byte-compatible with tpm2-tools. `values[i]` lists selections[i]'s PCRs in ascending order. */
export function encodePcrFile(
  selections: readonly TPMS_PCR_SELECTION[],
  values: readonly (readonly Uint8Array[])[],
): Uint8Array {
  if (selections.length > LIMITS.MAX_PCR_BANKS) {
    throw new PcrFileError("TPML_PCR_SELECTION.count", `${selections.length} banks exceed ${LIMITS.MAX_PCR_BANKS}`);
  }
  if (values.length !== selections.length) {
    throw new PcrFileError("values", `${values.length} value lists for ${selections.length} selections`);
  }
  const flat: Uint8Array[] = [];
  selections.forEach((sel, i) => {
    const at = `pcrSelections[${i}]`;
    sel.pcrSelect.forEach((b, j) => {
      if (j >= SELECT_SIZE && b !== 0) throw new PcrFileError(`${at}.pcrSelect`, "selects a PCR above 23");
    });
    const pcrs = selectedPcrs(sel);
    const vs = values[i]!;
    if (vs.length !== pcrs.length) {
      throw new PcrFileError(
        `values[${i}]`,
        `${vs.length} values for ${pcrs.length} selected ${algName(sel.hash)} PCRs`,
      );
    }
    const size = DIGEST_SIZE[sel.hash];
    if (size === undefined) throw new PcrFileError(`${at}.hash`, `unknown hash algorithm ${hex(sel.hash)}`);
    vs.forEach((v, k) => {
      if (v.length !== size) {
        throw new PcrFileError(
          `values[${i}][${k}]`,
          `PCR ${pcrs[k]} value is ${v.length} bytes for ${algName(sel.hash)}`,
        );
      }
      flat.push(v);
    });
  });

  const groups = Math.ceil(flat.length / 8);
  const out = new Uint8Array(pcrFileSize(groups));
  const view = new DataView(out.buffer);
  view.setUint32(0, selections.length, true);
  selections.forEach((sel, i) => {
    const at = 4 + i * 8;
    view.setUint16(at, sel.hash, true);
    // An empty bitmap keeps sizeofSelect 0, so a decoded file encodes back to the same bytes.
    out[at + 2] = sel.pcrSelect.length === 0 ? 0 : SELECT_SIZE;
    out.set(sel.pcrSelect.subarray(0, SELECT_SIZE), at + 3);
  });
  view.setUint32(SELECTION_SIZE, groups, true);
  for (let g = 0; g < groups; g++) {
    const at = SELECTION_SIZE + 4 + g * DIGEST_LIST_SIZE;
    const chunk = flat.slice(g * 8, g * 8 + 8);
    view.setUint32(at, chunk.length, true);
    chunk.forEach((v, k) => {
      view.setUint16(at + 4 + k * 66, v.length, true);
      out.set(v, at + 6 + k * 66);
    });
  }
  return out;
}

/**
 * Read a PCR file strictly: exact length, 0 or 3 select bytes, known banks, digest sizes of the bank,
 * TPML_DIGEST counts that match the filled slots, zeros in unused space, and as many values as selected
 * PCRs. Only the C struct padding byte after pcrSelect is ignored (it is not always initialised).
 */
export function decodePcrFile(bytes: Uint8Array): PcrFile {
  if (!(bytes instanceof Uint8Array)) throw new PcrFileError("file", "not a byte array");
  if (bytes.length < SELECTION_SIZE + 4) {
    throw new PcrFileError("file", `${bytes.length} bytes, at least ${SELECTION_SIZE + 4} needed`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const count = view.getUint32(0, true);
  if (count > LIMITS.MAX_PCR_BANKS) {
    throw new PcrFileError("TPML_PCR_SELECTION.count", `${count} exceeds ${LIMITS.MAX_PCR_BANKS}`);
  }
  const n = view.getUint32(SELECTION_SIZE, true);
  // Checked before reading any group, so a huge count cannot make us loop or allocate.
  if ((bytes.length - SELECTION_SIZE - 4) / DIGEST_LIST_SIZE !== n) {
    throw new PcrFileError(
      "TPML_DIGEST count",
      `${n} digest lists need ${pcrFileSize(n)} bytes, the file has ${bytes.length}`,
    );
  }

  const selections: TPMS_PCR_SELECTION[] = [];
  const wanted: number[] = [];
  for (let i = 0; i < LIMITS.MAX_PCR_BANKS; i++) {
    const at = 4 + i * 8;
    const field = `pcrSelections[${i}]`;
    const hash = view.getUint16(at, true);
    const sizeofSelect = bytes[at + 2]!;
    const select = bytes.subarray(at + 3, at + 7);
    if (i >= count) {
      if (hash !== 0 || sizeofSelect !== 0 || select.some((b) => b !== 0)) {
        throw new PcrFileError(field, `unused entry (count is ${count}) is not zero`);
      }
      continue;
    }
    if (sizeofSelect !== 0 && sizeofSelect !== SELECT_SIZE) {
      throw new PcrFileError(`${field}.sizeofSelect`, `${sizeofSelect}, expected 0 or ${SELECT_SIZE}`);
    }
    if (select.subarray(sizeofSelect).some((b) => b !== 0)) {
      throw new PcrFileError(`${field}.pcrSelect`, `bytes beyond sizeofSelect ${sizeofSelect} are not zero`);
    }
    if (DIGEST_SIZE[hash] === undefined) throw new PcrFileError(`${field}.hash`, `unknown hash algorithm ${hex(hash)}`);
    if (selections.some((s) => s.hash === hash)) {
      throw new PcrFileError(`${field}.hash`, `bank ${algName(hash)} appears twice`);
    }
    const sel = { hash, pcrSelect: bytes.slice(at + 3, at + 3 + sizeofSelect) };
    selections.push(sel);
    wanted.push(selectedPcrs(sel).length);
  }

  const flat: Uint8Array[] = [];
  for (let g = 0; g < n; g++) {
    const at = SELECTION_SIZE + 4 + g * DIGEST_LIST_SIZE;
    const field = `pcrValues[${g}]`;
    const used = view.getUint32(at, true);
    if (used === 0 || used > 8) throw new PcrFileError(`${field}.count`, `${used}, expected 1 to 8`);
    for (let k = 0; k < 8; k++) {
      const slot = at + 4 + k * 66;
      const size = view.getUint16(slot, true);
      const buffer = bytes.subarray(slot + 2, slot + 66);
      if (k >= used) {
        if (size !== 0 || buffer.some((b) => b !== 0)) {
          throw new PcrFileError(`${field}.digests[${k}]`, `unused slot (count is ${used}) is not zero`);
        }
        continue;
      }
      if (size === 0 || size > 64) throw new PcrFileError(`${field}.digests[${k}].size`, `${size}, expected 1 to 64`);
      if (buffer.subarray(size).some((b) => b !== 0)) {
        throw new PcrFileError(`${field}.digests[${k}].buffer`, `bytes beyond size ${size} are not zero`);
      }
      flat.push(bytes.slice(slot + 2, slot + 2 + size));
    }
  }

  const total = wanted.reduce((a, b) => a + b, 0);
  if (flat.length !== total) {
    throw new PcrFileError("pcrValues", `${flat.length} values for ${total} selected PCRs`);
  }
  let next = 0;
  const values = selections.map((sel, i) => {
    const size = DIGEST_SIZE[sel.hash]!;
    const pcrs = selectedPcrs(sel);
    return Array.from({ length: wanted[i]! }, (_, k) => {
      const v = flat[next++]!;
      if (v.length !== size) {
        throw new PcrFileError(
          `pcrValues`,
          `${algName(sel.hash)} PCR ${pcrs[k]} value is ${v.length} bytes, expected ${size}`,
        );
      }
      return v;
    });
  });
  return { selections, values };
}

/** The values of a PCR file by bank and PCR index. */
export function pcrFileValues(file: PcrFile): Map<number, Map<number, Uint8Array>> {
  return new Map(
    file.selections.map((sel, i) => {
      const vs = file.values[i]!;
      return [sel.hash, new Map(selectedPcrs(sel).map((pcr, k) => [pcr, vs[k]!]))];
    }),
  );
}

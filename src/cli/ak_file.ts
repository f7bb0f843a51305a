/**
 * The AK as `keylime-ts tpm ak --ak-file` keeps it: JSON with the public and TPM-wrapped private parts
 * and the EK it was created under. The file is untrusted input when read: every field is checked.
 */
import { readFile } from "node:fs/promises";
import type { SavedAk } from "../tpm/ak.ts";
import { EK_ALGS, type EkAlg } from "../tpm/templates.ts";
import { decode, encode } from "../tpm/marshal.ts";
import { TPM2B_PRIVATE, TPMT_PUBLIC } from "../tpm/structures.ts";
import { writeFileAtomic } from "../util/atomic_file.ts";
import { fromHex, toHex } from "../util/encoding.ts";

export interface AkFile extends SavedAk {
  /** The EK template, or the persistent EK handle, the AK lives under. */
  readonly ek: EkAlg | number;
}

const VERSION = 1;

export class AkFileError extends Error {
  readonly code = "ERR_AK_FILE";
  constructor(path: string, why: string, options?: { cause?: unknown }) {
    super(`AK file ${path}: ${why}`, options);
    this.name = "AkFileError";
  }
}

export async function saveAkFile(path: string, ak: AkFile): Promise<void> {
  const doc = {
    version: VERSION,
    ek: ak.ek,
    public: toHex(encode(TPMT_PUBLIC, ak.public)),
    private: toHex(ak.private),
  };
  await writeFileAtomic(path, JSON.stringify(doc, null, 2) + "\n");
}

/** The AK file at `path`, or null when there is none. */
export async function loadAkFile(path: string): Promise<AkFile | null> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw new AkFileError(path, (e as Error).message, { cause: e });
  }
  let doc: Record<string, unknown>;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new AkFileError(path, "is not JSON", { cause: e });
  }
  if (typeof doc !== "object" || doc === null) throw new AkFileError(path, "is not a JSON object");
  if (doc.version !== VERSION) throw new AkFileError(path, `has version ${String(doc.version)}, expected ${VERSION}`);
  const ek = doc.ek;
  if (!(typeof ek === "number" && Number.isInteger(ek)) && !EK_ALGS.includes(ek as EkAlg)) {
    throw new AkFileError(path, `field "ek" must be one of ${EK_ALGS.join(", ")} or a persistent handle`);
  }
  const hexField = (name: string): Uint8Array => {
    const v = doc[name];
    if (typeof v !== "string" || !/^(?:[0-9a-f]{2})+$/.test(v)) {
      throw new AkFileError(path, `field "${name}" is not hex`);
    }
    return fromHex(v);
  };
  try {
    const pub = decode(TPMT_PUBLIC, hexField("public"));
    const priv = hexField("private");
    decode(TPM2B_PRIVATE, encode(TPM2B_PRIVATE, priv)); // within TPM2B_PRIVATE's size limit
    return { ek: ek as EkAlg | number, public: pub, private: priv };
  } catch (e) {
    if (e instanceof AkFileError) throw e;
    throw new AkFileError(path, (e as Error).message, { cause: e });
  }
}

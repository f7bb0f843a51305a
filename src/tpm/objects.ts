/** Loaded objects: create a primary, load an external key, read a public area, flush (Part 3 §12, §24, §28). */
import type { Tpm } from "./client.ts";
import { CreatePrimary, FlushContext, LoadExternal, ReadPublic } from "./commands.ts";
import { TPM_RH } from "./constants.ts";
import { TpmProtocolError } from "./errors.ts";
import { objectName } from "./crypto.ts";
import { sameBytes } from "./bytes.ts";
import { toHex } from "../util/encoding.ts";
import type { ExecuteOptions } from "./client.ts";
import type { TPMT_PUBLIC, TPMT_SENSITIVE } from "./structures.ts";

/** A loaded object and what identifies it. */
export interface LoadedKey {
  readonly handle: number;
  readonly public: TPMT_PUBLIC;
  readonly name: Uint8Array;
}

const EMPTY = new Uint8Array(0);

/** The Name of `pub`, which must be the Name the TPM answered for it. */
function checkName(command: string, pub: TPMT_PUBLIC, name: Uint8Array): Uint8Array {
  const expected = objectName(pub);
  if (!sameBytes(expected, name)) {
    throw new TpmProtocolError(
      `TPM2_${command} answered the Name ${toHex(name)}, which is not the Name of its public area ` +
        `(${toHex(expected)})`,
    );
  }
  return expected;
}

/**
 * The object TPM2_`command` just loaded at `handle`, once its Name is checked against `pub`; on a
 * mismatch the object is flushed again, so nothing is left loaded.
 */
export async function checkedObject(
  tpm: Tpm,
  command: string,
  handle: number,
  pub: TPMT_PUBLIC,
  name: Uint8Array,
): Promise<LoadedKey> {
  try {
    return { handle, public: pub, name: checkName(command, pub, name) };
  } catch (e) {
    await flush(tpm, handle).catch(() => {});
    throw e;
  }
}

/** TPM2_CreatePrimary with a template; the returned Name is checked against the public area. */
export async function createPrimary(
  tpm: Tpm,
  hierarchy: number,
  template: TPMT_PUBLIC,
  options: ExecuteOptions = {},
): Promise<LoadedKey> {
  const r = await tpm.execute(CreatePrimary, {
    primaryHandle: hierarchy,
    inSensitive: { userAuth: EMPTY, data: EMPTY },
    inPublic: template,
    outsideInfo: EMPTY,
    creationPCR: [],
  }, options);
  return await checkedObject(tpm, "CreatePrimary", r.objectHandle, r.outPublic, r.name);
}

/** TPM2_LoadExternal of a public area, with its private part when given, into the NULL hierarchy. */
export async function loadExternal(
  tpm: Tpm,
  pub: TPMT_PUBLIC,
  sensitive: TPMT_SENSITIVE | null = null,
): Promise<LoadedKey> {
  const r = await tpm.execute(LoadExternal, { inPrivate: sensitive, inPublic: pub, hierarchy: TPM_RH.NULL });
  return await checkedObject(tpm, "LoadExternal", r.objectHandle, pub, r.name);
}

/** TPM2_FlushContext. */
export async function flush(tpm: Tpm, handle: number): Promise<void> {
  await tpm.execute(FlushContext, { flushHandle: handle });
}

/** Run `fn` with a transient object and flush it afterwards, whatever happens. */
export async function withTransient<T>(
  tpm: Tpm,
  create: Promise<LoadedKey>,
  fn: (key: LoadedKey) => Promise<T> | T,
): Promise<T> {
  const key = await create;
  try {
    return await fn(key);
  } finally {
    await flush(tpm, key.handle);
  }
}

/** The public area and Name of a loaded or persistent object, the Name checked. */
export async function readPublic(tpm: Tpm, handle: number): Promise<LoadedKey> {
  const r = await tpm.execute(ReadPublic, { objectHandle: handle });
  return { handle, public: r.outPublic, name: checkName("ReadPublic", r.outPublic, r.name) };
}

/**
 * The attestation key as Keylime makes it (keylime.md §3; rust-keylime via tss-esapi
 * abstraction/ak.rs): a restricted signing key created under the EK from the template of
 * templates.ts, saved as public + private parts and loaded again after the TPM restarts.
 */
import type { Tpm } from "./client.ts";
import { Create, Load } from "./commands.ts";
import { objectName } from "./crypto.ts";
import { type Ek, withEkPolicy } from "./ek.ts";
import { checkedObject, type LoadedKey } from "./objects.ts";
import type { TPMT_PUBLIC } from "./structures.ts";
import { type AkAlgorithms, akTemplate } from "./templates.ts";

/** An AK as the agent keeps it between runs. */
export interface SavedAk {
  readonly public: TPMT_PUBLIC;
  /** The TPM2B_PRIVATE contents: the TPM-wrapped private part, usable only under the same EK. */
  readonly private: Uint8Array;
}

/** Create an AK under the EK (policy session satisfying the EK's policy, parameters encrypted). */
export async function createAk(tpm: Tpm, ek: Ek, algs: AkAlgorithms = {}): Promise<SavedAk & { name: Uint8Array }> {
  const r = await withEkPolicy(tpm, ek, (session) =>
    tpm.execute(
      Create,
      {
        parentHandle: ek.handle,
        inSensitive: { userAuth: new Uint8Array(0), data: new Uint8Array(0) },
        inPublic: akTemplate(algs),
        outsideInfo: new Uint8Array(0),
        creationPCR: [],
      },
      { sessions: [session], names: [ek.name] },
    ));
  return { public: r.outPublic, private: r.outPrivate.slice(), name: objectName(r.outPublic) };
}

/** Load a saved AK under the EK; the TPM's Name must be the saved public part's (else TpmProtocolError). */
export async function loadAk(tpm: Tpm, ek: Ek, saved: SavedAk): Promise<LoadedKey> {
  const r = await withEkPolicy(tpm, ek, (session) =>
    tpm.execute(
      Load,
      { parentHandle: ek.handle, inPrivate: saved.private, inPublic: saved.public },
      { sessions: [session], names: [ek.name] },
    ));
  return await checkedObject(tpm, "Load", r.objectHandle, saved.public, r.name);
}

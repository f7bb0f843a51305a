/**
 * The AK between requests on a TPM without a resource manager (swtpm's socket, /dev/tpm0), which other
 * programs (tpm2-tools, another agent) share: nothing of ours stays loaded between requests and the
 * connection is released when idle. The AK's context is saved once (TPM2_ContextSave) and loaded for each
 * request (TPM2_ContextLoad, no parent needed), flushed afterwards; if the TPM no longer takes that context
 * (restarted), the AK is loaded again from agent_data.json under the EK (`reload`) and its context saved anew.
 * Behind /dev/tpmrm0 the kernel does this for us and quoter.ts's keptAk keeps the AK loaded.
 */
import type { Tpm } from "../tpm/client.ts";
import { ContextLoad, ContextSave } from "../tpm/commands.ts";
import { TpmResponseError } from "../tpm/errors.ts";
import { flush, type LoadedKey } from "../tpm/objects.ts";
import type { TPMS_CONTEXT } from "../tpm/structures.ts";
import type { AkAccess } from "./quoter.ts";

export interface SharedAkOptions {
  /** Release the TPM connection after this long without a request (ms); 0 releases after each request. */
  idleMs: number;
  /** Load the AK again from its saved public and private parts (under a fresh EK). */
  reload(tpm: Tpm): Promise<LoadedKey>;
  warn(message: string): void;
}

async function saveAndFlush(tpm: Tpm, key: LoadedKey): Promise<TPMS_CONTEXT> {
  try {
    return (await tpm.execute(ContextSave, { saveHandle: key.handle })).context;
  } finally {
    await flush(tpm, key.handle).catch(() => {});
  }
}

/** Takes over a loaded AK: saves its context and flushes it. */
export async function sharedAk(tpm: Tpm, ak: LoadedKey, o: SharedAkOptions): Promise<AkAccess & { close(): void }> {
  let context = await saveAndFlush(tpm, ak);
  let timer: ReturnType<typeof setTimeout> | undefined;

  const busy = () => {
    if (timer) clearTimeout(timer);
    timer = undefined;
  };
  const idle = () => {
    busy();
    timer = setTimeout(() => void tpm.transport.close(), o.idleMs);
    (timer as { unref?: () => void }).unref?.();
  };
  const load = async (): Promise<number> => {
    try {
      return (await tpm.execute(ContextLoad, { context })).loadedHandle;
    } catch (e) {
      if (!(e instanceof TpmResponseError)) throw e;
      o.warn(`The saved AK context was refused (${e.message}); loading the AK again from agent_data.json`);
      const again = await o.reload(tpm);
      context = await saveAndFlush(tpm, again);
      return (await tpm.execute(ContextLoad, { context })).loadedHandle;
    }
  };

  const access = {
    public: ak.public,
    // Each request's load gets whatever handle the TPM has free; agent/info reports the one the AK had when
    // the agent took it over, as rust-keylime reports the handle of its AK loaded once at start.
    handle: ak.handle,
    async use<T>(fn: (tpm: Tpm, ak: LoadedKey) => Promise<T>): Promise<T> {
      busy();
      try {
        const handle = await load();
        try {
          return await fn(tpm, { handle, public: ak.public, name: ak.name });
        } finally {
          await flush(tpm, handle).catch(() => {});
        }
      } finally {
        idle();
      }
    },
    async useTpm<T>(fn: (tpm: Tpm) => Promise<T>): Promise<T> {
      busy();
      try {
        return await fn(tpm);
      } finally {
        idle();
      }
    },
    close: busy,
  };
  idle();
  return access;
}

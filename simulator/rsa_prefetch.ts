/**
 * RSA keys worked out before their command takes its turn (SimTpm.prepare): a primary's key is a
 * function of (seed, template, data) alone, and a child's is any fresh key, so both can be computed
 * while the TPM serves other commands. An RSA-4096 search takes seconds; without this, every other
 * client waits behind it. makeMaterial takes a prepared key when there is one and computes the key
 * itself (the same one) when not.
 */
import { generateKeyPair, type JsonWebKey } from "node:crypto";
import type { TPMT_PUBLIC } from "../src/tpm/structures.ts";
import { deriveRsaPrimaryAsync, primaryId } from "./keys.ts";

/** Prepared keys kept at most (commands that failed after preparing leave theirs behind). */
const KEPT = 8;

export class RsaPrefetch {
  readonly #primaries = new Map<string, JsonWebKey>();
  readonly #pending = new Map<string, Promise<void>>();
  readonly #random = new Map<number, JsonWebKey[]>();

  /** The prepared key of the primary with this derivation id, once. */
  takePrimary(id: string): JsonWebKey | undefined {
    const jwk = this.#primaries.get(id);
    this.#primaries.delete(id);
    return jwk;
  }

  /** A prepared fresh key of `bits` bits, once. */
  takeRandom(bits: number): JsonWebKey | undefined {
    return this.#random.get(bits)?.shift();
  }

  /**
   * Derive a primary's key; undefined when there is nothing to do: already cached (`known(id)`)
   * or prepared. A derivation in progress is shared.
   */
  primary(
    t: TPMT_PUBLIC,
    seed: Uint8Array,
    sensitiveData: Uint8Array,
    known: (id: string) => boolean,
  ): Promise<void> | undefined {
    const id = primaryId(t, seed, sensitiveData);
    if (known(id) || this.#primaries.has(id)) return undefined;
    let p = this.#pending.get(id);
    if (!p) {
      p = deriveRsaPrimaryAsync(t, seed, sensitiveData)
        .then(({ jwk }) => keep(this.#primaries, id, jwk))
        .finally(() => this.#pending.delete(id));
      this.#pending.set(id, p);
    }
    return p;
  }

  /** Generate a fresh key of `bits` bits off the event loop (node:crypto's thread pool), unless one waits. */
  random(bits: number): Promise<void> | undefined {
    return this.#random.get(bits)?.length ? undefined : this.#generate(bits);
  }

  async #generate(bits: number): Promise<void> {
    const jwk = await new Promise<JsonWebKey>((resolve, reject) =>
      generateKeyPair(
        "rsa",
        { modulusLength: bits },
        (e, _pub, key) => e ? reject(e) : resolve(key.export({ format: "jwk" })),
      )
    );
    const pool = this.#random.get(bits) ?? [];
    pool.push(jwk);
    this.#random.set(bits, pool.slice(-KEPT));
  }
}

function keep(m: Map<string, JsonWebKey>, id: string, jwk: JsonWebKey): void {
  m.set(id, jwk);
  while (m.size > KEPT) m.delete(m.keys().next().value!);
}

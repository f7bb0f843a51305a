/**
 * A deterministic byte stream for key generation: the simulator's stand-in for the DRBG that the
 * TPM reference seeds from a hierarchy's primary seed (ms-tpm-20-ref CryptUtil.c CryptCreateObject:
 * DRBG_InstantiateSeeded(seed, "Primary Object Creation", Name(template), inSensitive.data)).
 * Only determinism matters (spec/tpm.md §5): the same (seed, label, context) must give the same
 * bytes on every run and every runtime, so that a stored EK certificate keeps matching the EK that
 * CreatePrimary recreates. Byte equality with libtpms (an AES CTR_DRBG) is not a goal.
 *
 * Construction: KDFa (Part 1 §11.4.10.2, SP 800-108 counter mode with HMAC) read as a stream, the
 * way ms-tpm-20-ref's KDF-mode DRBG does it (CryptRand.c DRBG_InstantiateSeededKdf/DRBG_Generate):
 *
 *   block_i = HMAC_hashAlg(seed, u32 i ‖ label ‖ 00 ‖ context ‖ u32 L)   for i = 1, 2, ...
 *   stream  = block_1 ‖ block_2 ‖ ...   (at most L bits)
 *
 * L is the stream's limit, fixed when the stream is made, because KDFa binds the output length into
 * every block and a stream does not know in advance how much its consumer will read. Hence the first
 * L/8 bytes are exactly KDFa(hashAlg, seed, label, context, ∅, L), which the tests check against
 * src/tpm/kdf.ts. Bytes left over from a block are kept for the next call, so the stream does not
 * depend on how a consumer splits its reads.
 */
import { hmac } from "@noble/hashes/hmac";
import { concat, hashFor } from "../src/tpm/crypto.ts";
import { labelBytes } from "../src/tpm/kdf.ts";
import { u32be } from "../src/tpm/bytes.ts";
import { DIGEST_SIZE } from "../src/tpm/constants.ts";

/** The label ms-tpm-20-ref uses when deriving a primary object from a hierarchy seed. */
export const PRIMARY_OBJECT_CREATION = "Primary Object Creation";

/**
 * The default limit: the largest whole-byte bit count a u32 can carry (512 MiB). Key generation
 * reads tens of kilobytes; the limit only exists because KDFa needs a length.
 */
export const DEFAULT_LIMIT_BITS = 0xffff_fff8;

export class KdfStream {
  /** HMAC keyed with the seed once; each block clones it (saves the two key-pad compressions). */
  private readonly keyed: ReturnType<typeof hmac.create>;
  /** label ‖ 00 ‖ context ‖ u32 L: the part of every block's input after the counter. */
  private readonly fixed: Uint8Array;
  private readonly limitBytes: number;
  private counter = 0;
  private produced = 0;
  private block: Uint8Array = new Uint8Array(0);
  private used = 0;

  /**
   * @param hashAlg TPM_ALG of the HMAC hash (the template's nameAlg for a primary object).
   * @param seed the HMAC key: the hierarchy's primary seed.
   * @param label e.g. PRIMARY_OBJECT_CREATION; a terminating NUL is added as KDFa does.
   * @param context for a primary object Name(template) ‖ inSensitive.data. Concatenating them is
   *   unambiguous because a Name's length is fixed by its nameAlg.
   * @param limitBits L: bound into every block and the most the stream will produce (a multiple of 8).
   */
  constructor(
    hashAlg: number,
    seed: Uint8Array,
    label: string | Uint8Array,
    context: Uint8Array,
    limitBits: number = DEFAULT_LIMIT_BITS,
  ) {
    if (!DIGEST_SIZE[hashAlg]) {
      throw new RangeError(`KdfStream: hash algorithm 0x${hashAlg.toString(16)} has no known digest size`);
    }
    if (!Number.isInteger(limitBits) || limitBits <= 0 || limitBits > 0xffff_ffff || limitBits % 8 !== 0) {
      throw new RangeError(`KdfStream: limit ${limitBits} bits must be a positive multiple of 8 that fits a u32`);
    }
    this.keyed = hmac.create(hashFor(hashAlg), seed);
    this.fixed = concat(labelBytes(label), context, u32be(limitBits));
    this.limitBytes = limitBits / 8;
  }

  /** The next n bytes of the stream. Throws once the limit would be passed (never silently repeats). */
  next(n: number): Uint8Array {
    if (!Number.isInteger(n) || n < 0) throw new RangeError(`KdfStream.next: ${n} is not a byte count`);
    if (n > this.limitBytes - this.produced) {
      throw new RangeError(`KdfStream: reading ${n} bytes passes the stream's limit of ${this.limitBytes} bytes`);
    }
    const out = new Uint8Array(n);
    let at = 0;
    while (at < n) {
      if (this.used === this.block.length) this.refill();
      const take = Math.min(n - at, this.block.length - this.used);
      out.set(this.block.subarray(this.used, this.used + take), at);
      this.used += take;
      at += take;
    }
    this.produced += n;
    return out;
  }

  /** Bytes read so far. */
  get position(): number {
    return this.produced;
  }

  private refill(): void {
    this.counter++;
    this.block = this.keyed.clone().update(u32be(this.counter)).update(this.fixed).digest();
    this.used = 0;
  }
}

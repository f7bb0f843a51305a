/**
 * The Keylime flow's TPM steps through our client, as the flow bench (beside tpm2-tools) and the
 * simulator bench (swtpm beside the simulator) both time them: a transport wrapper that notes how
 * long each command spent in transport.send (the TPM and the wire), the samples a timed run leaves,
 * and the step runners (EK, AK create and load, ActivateCredential, Quote, Certify), each doing `n`
 * timed runs with their untimed setup and cleanup around.
 */
import { Buffer } from "node:buffer";
import { generateKeyPairSync, type KeyObject } from "node:crypto";
import { activateCredential } from "../src/tpm/activate.ts";
import { createAk, loadAk, type SavedAk } from "../src/tpm/ak.ts";
import { certifySoftwareKey } from "../src/tpm/certify.ts";
import type { Tpm } from "../src/tpm/client.ts";
import { GetRandom } from "../src/tpm/commands.ts";
import { TPM_ALG } from "../src/tpm/constants.ts";
import { makeCredential } from "../src/tpm/credential.ts";
import { createEk, type Ek, releaseEk } from "../src/tpm/ek.ts";
import { type EkAlg } from "../src/tpm/templates.ts";
import { commandName } from "../src/tpm/frame.ts";
import { flush, type LoadedKey } from "../src/tpm/objects.ts";
import { quote } from "../src/tpm/quote.ts";
import type { Transport } from "../src/tpm/transport/transport.ts";
import { pushSample } from "./common.ts";

// ---- timing our client ---------------------------------------------------------------------------

interface Sent {
  code: number;
  ms: number;
}

/** Passes commands through and notes how long each send took; can capture the bytes sent. */
export class TimedTransport implements Transport {
  readonly uri: string;
  readonly resourceManaged: boolean;
  readonly log: Sent[] = [];
  /** While set, the first bytes sent of each command code are kept. */
  capture: Map<number, Uint8Array> | undefined;

  constructor(private readonly inner: Transport) {
    this.uri = inner.uri;
    this.resourceManaged = inner.resourceManaged;
  }

  async send(command: Uint8Array): Promise<Uint8Array> {
    const code = new DataView(command.buffer, command.byteOffset, command.byteLength).getUint32(6);
    if (this.capture && !this.capture.has(code)) this.capture.set(code, command.slice());
    const t0 = performance.now();
    const r = await this.inner.send(command);
    this.log.push({ code, ms: performance.now() - t0 });
    return r;
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

/** Times `fn` (one run's timed part) and notes the TPM + wire time of the commands it sent. */
export type TimeFn = <T>(fn: () => Promise<T>) => Promise<T>;

/** What the timed runs of one step on one TPM left. */
export class TimedSamples {
  /** Per run: the whole timed part, ms. */
  readonly op: number[] = [];
  /** Per run: the time spent in transport.send (the TPM and the wire), ms. */
  readonly wire: number[] = [];
  /** Per command, per run: its time in transport.send (summed when a run sends it twice). */
  readonly perCommand = new Map<string, number[]>();
  /** The TPM commands the first recorded run sent. */
  commands: string[] | undefined;
}

const shortName = (code: number) => commandName(code).replace(/^TPM2_/, "");

/** A TimeFn over `transport`'s log that adds each run to `s`, unless `record` is off (warm-up). */
export function timer(transport: TimedTransport, s: TimedSamples, record: boolean): TimeFn {
  return async (fn) => {
    transport.log.length = 0;
    const t0 = performance.now();
    const r = await fn();
    const ms = performance.now() - t0;
    if (record) {
      s.op.push(ms);
      s.wire.push(transport.log.reduce((a, x) => a + x.ms, 0));
      const byName = new Map<string, number>();
      for (const x of transport.log) byName.set(shortName(x.code), (byName.get(shortName(x.code)) ?? 0) + x.ms);
      for (const [name, v] of byName) pushSample(s.perCommand, name, v);
      s.commands ??= transport.log.map((x) => shortName(x.code));
    }
    return r;
  };
}

/**
 * Connect, and get past SocketLink's first-reuse probe, before anything is timed. Two commands:
 * SocketLink waits LEARN_CLOSE_MS (10 ms) at the first reuse of a transport's connection to learn
 * whether the server closes after each response, and that is not what a step should be charged with.
 */
export async function connectUntimed(tpm: Tpm): Promise<void> {
  await tpm.execute(GetRandom, { bytesRequested: 8 });
  await tpm.execute(GetRandom, { bytesRequested: 8 });
}

// ---- fixtures ------------------------------------------------------------------------------------

/** A saved AK made under the RSA EK, which AK load, activation, quote and certify use. */
export type FixtureAk = SavedAk & { name: Uint8Array };

/** A Keylime-style nonce: 20 ASCII characters. */
export const NONCE = new TextEncoder().encode("fq8EK1mxrnZ7qRBYz3Ar");
export const QUOTE_PCRS = [0, 1, 10, 16];
const CERTIFY_QUALIFYING_DATA = new Uint8Array(32).fill(0xc3);

/** The software key the Certify step has the TPM load and certify. */
export const newCertifyKey = (): KeyObject => generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey;

/** The RSA EK created around `fn`, and flushed again after it. */
export async function withEk<T>(tpm: Tpm, fn: (ek: Ek) => Promise<T>): Promise<T> {
  const ek = await createEk(tpm, "rsa");
  try {
    return await fn(ek);
  } finally {
    await releaseEk(tpm, ek);
  }
}

/** The RSA EK and `saved` loaded around `fn` (the EK flushed again before `fn` unless `keepEk`). */
export async function withAk(
  tpm: Tpm,
  saved: FixtureAk,
  keepEk: boolean,
  fn: (ak: LoadedKey, ek: Ek | undefined) => Promise<void>,
): Promise<void> {
  let ek: Ek | undefined = await createEk(tpm, "rsa");
  let ak: LoadedKey | undefined;
  try {
    ak = await loadAk(tpm, ek, saved);
    if (!keepEk) {
      await releaseEk(tpm, ek);
      ek = undefined;
    }
    await fn(ak, ek);
  } finally {
    if (ak) await flush(tpm, ak.handle);
    if (ek) await releaseEk(tpm, ek);
  }
}

// ---- the steps: `n` timed runs each --------------------------------------------------------------

/** createEk; each EK flushed again, untimed. */
export async function timeCreateEk(tpm: Tpm, alg: EkAlg, n: number, time: TimeFn): Promise<void> {
  for (let i = 0; i < n; i++) await releaseEk(tpm, await time(() => createEk(tpm, alg)));
}

/** createAk under the RSA EK. */
export function timeCreateAk(tpm: Tpm, n: number, time: TimeFn): Promise<void> {
  return withEk(tpm, async (ek) => {
    for (let i = 0; i < n; i++) await time(() => createAk(tpm, ek));
  });
}

/** loadAk under the RSA EK; each AK flushed again, untimed. */
export function timeLoadAk(tpm: Tpm, saved: FixtureAk, n: number, time: TimeFn): Promise<void> {
  return withEk(tpm, async (ek) => {
    for (let i = 0; i < n; i++) await flush(tpm, (await time(() => loadAk(tpm, ek, saved))).handle);
  });
}

/** activateCredential of a fresh credential per run (made in software, untimed), checked. */
export function timeActivateCredential(tpm: Tpm, saved: FixtureAk, n: number, time: TimeFn): Promise<void> {
  const enc = new TextEncoder();
  return withAk(tpm, saved, true, async (ak, ek) => {
    for (let i = 0; i < n; i++) {
      const credential = enc.encode(`credential ${i}`.padEnd(32, "."));
      const made = await makeCredential(ek!.public, ak.name, credential);
      const got = await time(() => activateCredential(tpm, ak, ek!, made.credentialBlob, made.secret));
      if (Buffer.compare(got, credential) !== 0) throw new Error("ActivateCredential returned another secret");
    }
  });
}

/** quote() of NONCE over sha256 QUOTE_PCRS (with its PCR read-back). */
export function timeQuote(tpm: Tpm, saved: FixtureAk, n: number, time: TimeFn): Promise<void> {
  return withAk(tpm, saved, false, async (ak) => {
    for (let i = 0; i < n; i++) {
      await time(() => quote(tpm, ak, { nonce: NONCE, pcrs: QUOTE_PCRS, hashAlg: TPM_ALG.SHA256 }));
    }
  });
}

/** certifySoftwareKey() of `key` (see newCertifyKey) by the AK. */
export function timeCertify(tpm: Tpm, saved: FixtureAk, key: KeyObject, n: number, time: TimeFn): Promise<void> {
  return withAk(tpm, saved, false, async (ak) => {
    for (let i = 0; i < n; i++) await time(() => certifySoftwareKey(tpm, key, ak, CERTIFY_QUALIFYING_DATA));
  });
}

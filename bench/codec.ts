/**
 * Codec throughput: decode+encode of captured TPM wire data, beside two cheap references measured in
 * the same run on the same bytes, so the figures compare across machines as ratios.
 */
import { Buffer } from "node:buffer";
import { Quote, ReadPublic } from "../src/tpm/commands.ts";
import { decodeResponseFrame, encodeResponseFrame } from "../src/tpm/frame.ts";
import { decode, encode } from "../src/tpm/marshal.ts";
import { TPMT_PUBLIC } from "../src/tpm/structures.ts";
import { rawHex } from "../tests/helpers/vectors.ts";
import { median, percentile } from "./stats.ts";
import { toHex } from "../src/util/encoding.ts";

export interface Throughput {
  /** Median of the per-batch rates. */
  readonly opsPerSec: number;
  readonly usPerOp: number;
  /** Interquartile range of the per-batch rates over their median: how steady the figure is. */
  readonly spread: number;
  readonly ops: number;
  readonly ms: number;
}

export interface CodecResult {
  readonly name: string;
  readonly bytes: number;
  readonly codec: Throughput;
  /** `Buffer.from(bytes)` copy, then a DataView walk reading every u16 of it. */
  readonly copyWalk: Throughput;
  /** JSON.parse(JSON.stringify(v)) of the decoded value with bytes as hex and bigints as strings. */
  readonly jsonRoundTrip: Throughput;
  /** Codec time / reference time: median over rounds of the ratio within each round. */
  readonly vsCopyWalk: number;
  readonly vsJson: number;
}

export interface ThroughputOptions {
  warmupMs: number;
  /** Measured time per contestant. */
  runMs: number;
}

/** Keeps results observable so no work is optimised away. */
let sink: unknown;

/** Length of one timed batch. */
const BATCH_MS = 20;

/**
 * Time several functions in interleaved ~20 ms batches (rotating order), so that a change of machine
 * state during the run (frequency, GC mode, a neighbour's load) hits every one of them alike.
 * Returns per-function figures and, per round, each function's µs/op.
 */
export function interleaved(
  fns: readonly (() => unknown)[],
  o: ThroughputOptions,
): { results: Throughput[]; rounds: number[][] } {
  const batch = fns.map((fn) => {
    let n = 0;
    const w0 = performance.now();
    let now = w0;
    while (now - w0 < o.warmupMs || n < 100) {
      sink = fn();
      n++;
      now = performance.now();
    }
    return Math.max(1, Math.round(BATCH_MS / ((now - w0) / n)));
  });
  const rounds: number[][] = [];
  const spent = fns.map(() => 0);
  let r = 0;
  while (spent.some((ms) => ms < o.runMs) || rounds.length < 20) {
    const us: number[] = new Array(fns.length);
    for (let j = 0; j < fns.length; j++) {
      const k = (r + j) % fns.length;
      const fn = fns[k]!;
      const n = batch[k]!;
      const t0 = performance.now();
      for (let i = 0; i < n; i++) sink = fn();
      const dt = performance.now() - t0;
      spent[k]! += dt;
      us[k] = (dt * 1000) / n;
    }
    rounds.push(us);
    r++;
  }
  const results = fns.map((_, k) => {
    const rates = Float64Array.from(rounds, (u) => 1e6 / u[k]!).sort();
    const opsPerSec = median(rates);
    return {
      opsPerSec,
      usPerOp: 1e6 / opsPerSec,
      spread: (percentile(rates, 75) - percentile(rates, 25)) / opsPerSec,
      ops: batch[k]! * rounds.length,
      ms: spent[k]!,
    };
  });
  return { results, rounds };
}

/** The reference with no parsing logic: a copy and a sequential big-endian walk of the same bytes. */
function copyWalk(bytes: Uint8Array): () => number {
  return () => {
    const b = Buffer.from(bytes);
    const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
    let s = 0;
    for (let i = 0; i + 1 < b.length; i += 2) s = (s + dv.getUint16(i)) | 0;
    return s;
  };
}

/** The decoded value as plain JSON data: an "equivalent object" of the same shape. */
function jsonable(v: unknown): unknown {
  if (v instanceof Uint8Array) return toHex(v);
  if (typeof v === "bigint") return v.toString();
  if (Array.isArray(v)) return v.map(jsonable);
  if (v !== null && typeof v === "object") {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, jsonable(x)]));
  }
  return v;
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

interface Case {
  name: string;
  bytes: Uint8Array;
  run: () => unknown;
  /** The decoded value, for the JSON reference. */
  value: unknown;
}

function cases(): Case[] {
  // Quote answered with one password session: tag SESSIONS, parameterSize, params, auth area.
  const quoteRsp = rawHex("Quote_AK_rsassa_sha256_pcrs_0_1_2_3_10.rsp.hex");
  const quoteExpect = { responseHandles: 0, sessionCount: 1 };
  const quoteFrame = decodeResponseFrame(quoteRsp, quoteExpect);
  const quoteParams = quoteFrame.parameters;
  const quoteValue = decode(Quote.response, quoteParams);

  const quoteParamsRoundTrip = () => encode(Quote.response, decode(Quote.response, quoteParams));
  const quoteFrameRoundTrip = () => {
    const f = decodeResponseFrame(quoteRsp, quoteExpect);
    const v = decode(Quote.response, f.parameters);
    return encodeResponseFrame({ rc: f.rc, handles: f.handles, parameters: encode(Quote.response, v), auths: f.auths });
  };

  const ekTemplate = rawHex("template_ek_rsa2048_L1.TPMT_PUBLIC.hex");
  // The AK's TPMT_PUBLIC exactly as the TPM sent it: ReadPublic's outPublic without its u16 size.
  const readPublic = decodeResponseFrame(rawHex("ReadPublic_AK_persistent.rsp.hex"), {
    responseHandles: 0,
    sessionCount: 0,
  }).parameters;
  decode(ReadPublic.response, readPublic); // the whole parameter area must parse
  const akSize = new DataView(readPublic.buffer, readPublic.byteOffset).getUint16(0);
  const akPublic = readPublic.slice(2, 2 + akSize);
  const publicRoundTrip = (bytes: Uint8Array) => () => encode(TPMT_PUBLIC, decode(TPMT_PUBLIC, bytes));

  const list: Case[] = [
    { name: "Quote response params", bytes: quoteParams, run: quoteParamsRoundTrip, value: quoteValue },
    { name: "Quote response frame + params", bytes: quoteRsp, run: quoteFrameRoundTrip, value: quoteValue },
    {
      name: "TPMT_PUBLIC EK template RSA2048",
      bytes: ekTemplate,
      run: publicRoundTrip(ekTemplate),
      value: decode(TPMT_PUBLIC, ekTemplate),
    },
    {
      name: "TPMT_PUBLIC AK (ReadPublic)",
      bytes: akPublic,
      run: publicRoundTrip(akPublic),
      value: decode(TPMT_PUBLIC, akPublic),
    },
    // Encoding alone: the path every command the client sends takes, with its input checks.
    {
      name: "encode Quote response params",
      bytes: quoteParams,
      run: () => encode(Quote.response, quoteValue),
      value: quoteValue,
    },
    {
      name: "encode TPMT_PUBLIC AK",
      bytes: akPublic,
      run: ((v) => () => encode(TPMT_PUBLIC, v))(decode(TPMT_PUBLIC, akPublic)),
      value: decode(TPMT_PUBLIC, akPublic),
    },
  ];
  // A benchmark of a broken round trip measures nothing: every case must reproduce its input.
  for (const c of list) {
    const out = c.run() as Uint8Array;
    if (!equal(out, c.bytes)) throw new Error(`${c.name}: decode+encode does not reproduce the input bytes`);
  }
  return list;
}

export function runCodecBench(o: ThroughputOptions, progress: (msg: string) => void): CodecResult[] {
  const results: CodecResult[] = [];
  for (const c of cases()) {
    const json = jsonable(c.value);
    progress(`codec: ${c.name} (${c.bytes.length} B)`);
    const { results: [codec, walk, jsonRt], rounds } = interleaved(
      [c.run, copyWalk(c.bytes), () => JSON.parse(JSON.stringify(json))],
      o,
    );
    results.push({
      name: c.name,
      bytes: c.bytes.length,
      codec: codec!,
      copyWalk: walk!,
      jsonRoundTrip: jsonRt!,
      vsCopyWalk: median(rounds.map((u) => u[0]! / u[1]!)),
      vsJson: median(rounds.map((u) => u[0]! / u[2]!)),
    });
  }
  if (sink === Symbol.for("never")) console.log(sink);
  return results;
}

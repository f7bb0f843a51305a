/**
 * The PCR values an agent quotes now, from a verified integrity quote (the AK from the registrar, a fresh
 * nonce): what `attest policy` writes a policy from.
 */
import { verifyQuote } from "../protocol/quote.ts";
import { algByName, algName } from "../tpm/crypto.ts";
import { freshNonce } from "./run.ts";
import { AgentPeer, fetchRegistrarRecord } from "./peers.ts";
import type { TenantTls } from "./tls_dir.ts";

export async function currentPcrs(o: {
  registrar: string;
  tls: TenantTls;
  uuid: string;
  pcrs: readonly number[];
  /** The bank wanted; the agent quotes its own, so another one is an error. */
  bank?: number;
}): Promise<{ hashAlg: number; values: Map<number, Uint8Array> }> {
  const { record } = await fetchRegistrarRecord(o.registrar, o.tls, o.uuid);
  if (!record.ip || !record.port) throw new Error("the registrar record has no ip and port to reach the agent at");
  const agent = new AgentPeer(record.ip, record.port, record.mtls_cert, o.tls);
  await agent.negotiate();
  const nonce = freshNonce();
  const mask = o.pcrs.reduce((m, p) => (m | (1 << p)) >>> 0, 0);
  const q = await agent.integrityQuote({ nonce, mask, imaEntry: 0 });
  const hashAlg = algByName(q.hash_alg);
  if (hashAlg === undefined) throw new Error(`the agent's hash_alg "${q.hash_alg}" is not a hash algorithm`);
  if (o.bank !== undefined && o.bank !== hashAlg) {
    throw new Error(`the agent quotes the ${q.hash_alg} bank, not ${algName(o.bank)}`);
  }
  const v = verifyQuote({ quote: q.quote, nonce, hashAlg, aikTpm: record.aik_tpm });
  return { hashAlg, values: new Map(o.pcrs.map((p) => [p, v.pcrs.get(p)!])) };
}

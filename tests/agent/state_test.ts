/** agent_data.json in rust-keylime's format, the NK and the mTLS key and certificate: files, modes, reuse. */
import { strict as assert } from "node:assert";
import { createPrivateKey } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import {
  agentDataFits,
  decodeAgentData,
  encodeAgentData,
  loadOrCreateMtls,
  loadOrCreateNk,
} from "../../src/agent/state.ts";
import { akTemplate } from "../../src/tpm/templates.ts";
import { TPM_ALG } from "../../src/tpm/constants.ts";
import { encode } from "../../src/tpm/marshal.ts";
import { TPMT_PUBLIC } from "../../src/tpm/structures.ts";
import { X509Certificate, x509lib } from "../../src/tpm/x509.ts";

const dir = mkdtempSync(join(tmpdir(), "agent-state-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const mode = (p: string) => statSync(p).mode & 0o777;

const EK_HASH = "ab".repeat(32);
const sample = () => {
  const pub = { ...akTemplate(), unique: new Uint8Array(256).fill(7) };
  return {
    akHashAlg: TPM_ALG.SHA256,
    akSignAlg: TPM_ALG.RSASSA,
    ak: { public: pub, private: Uint8Array.of(1, 2, 3) },
    ekHash: EK_HASH,
  };
};

describe("agent_data.json", () => {
  it("is serde's pretty JSON: enum names, byte vectors as number arrays, ek_hash as ASCII bytes", () => {
    const d = sample();
    const text = encodeAgentData(d);
    const doc = JSON.parse(text);
    assert.deepEqual(Object.keys(doc), ["ak_hash_alg", "ak_sign_alg", "ak_public", "ak_private", "ek_hash"]);
    assert.equal(doc.ak_hash_alg, "Sha256");
    assert.equal(doc.ak_sign_alg, "RsaSsa");
    assert.deepEqual(doc.ak_public, [...encode(TPMT_PUBLIC, d.ak.public)]);
    assert.deepEqual(doc.ak_private, [1, 2, 3]);
    assert.equal(String.fromCharCode(...doc.ek_hash), EK_HASH);
    assert.ok(text.startsWith('{\n  "ak_hash_alg": "Sha256",\n  "ak_sign_alg": "RsaSsa",\n  "ak_public": [\n    0,\n'));
    const back = decodeAgentData(text);
    assert.deepEqual(back.ak.private, d.ak.private);
    assert.deepEqual(encode(TPMT_PUBLIC, back.ak.public), encode(TPMT_PUBLIC, d.ak.public));
    assert.equal(back.ekHash, EK_HASH);
  });

  it("reuse rule: same hash alg, sign alg and ek_hash", () => {
    const d = sample();
    assert.equal(agentDataFits(d, TPM_ALG.SHA256, TPM_ALG.RSASSA, EK_HASH), true);
    assert.equal(agentDataFits(d, TPM_ALG.SHA384, TPM_ALG.RSASSA, EK_HASH), false);
    assert.equal(agentDataFits(d, TPM_ALG.SHA256, TPM_ALG.RSAPSS, EK_HASH), false);
    assert.equal(agentDataFits(d, TPM_ALG.SHA256, TPM_ALG.RSASSA, "cd".repeat(32)), false);
  });

  it("a damaged file is ERR_AGENT_STATE naming the path and the field", () => {
    const good = JSON.parse(encodeAgentData(sample()));
    const cases: [unknown, RegExp][] = [
      ["not json", /is not JSON/],
      [[], /not a JSON object/],
      [{ ...good, ak_hash_alg: "sha256" }, /"ak_hash_alg" must be one of Sha1, Sha256/],
      [{ ...good, ak_sign_alg: "Rsassa" }, /"ak_sign_alg" must be one of RsaSsa/],
      [{ ...good, ak_private: [1, 256] }, /"ak_private" must be an array of bytes/],
      [{ ...good, ek_hash: [65] }, /"ek_hash" is not 64 lowercase hex/],
      [{ ...good, ak_public: good.ak_public.slice(0, 10) }, /\/x\/agent_data\.json: AK: /],
      [{ ...good, ak_public: [...good.ak_public, 0] }, /AK: .*trailing|AK: /],
    ];
    for (const [doc, why] of cases) {
      const text = typeof doc === "string" ? doc : JSON.stringify(doc);
      assert.throws(
        () => decodeAgentData(text, "/x/agent_data.json"),
        (e: Error & { code?: string }) => e.code === "ERR_AGENT_STATE" && why.test(e.message),
        String(why),
      );
    }
  });
});

describe("NK and mTLS files", () => {
  it("the NK is RSA-2048, written 0600, and reused", async () => {
    const p = join(dir, "payload-private.pem");
    const a = await loadOrCreateNk(p);
    assert.equal(a.created, true);
    assert.equal(mode(p), 0o600);
    assert.equal(a.privateKey.asymmetricKeyDetails?.modulusLength, 2048);
    const b = await loadOrCreateNk(p);
    assert.equal(b.created, false);
    assert.deepEqual(
      b.publicKey.export({ type: "spki", format: "der" }),
      a.publicKey.export({ type: "spki", format: "der" }),
    );
  });

  it("a password encrypts the key file; a wrong one is a clear error", async () => {
    const p = join(dir, "enc.pem");
    await loadOrCreateNk(p, "s3cret");
    assert.match(readFileSync(p, "utf8"), /ENCRYPTED PRIVATE KEY/);
    assert.equal((await loadOrCreateNk(p, "s3cret")).created, false);
    await assert.rejects(loadOrCreateNk(p, "wrong"), /wrong password or not a PEM private key/);
  });

  it("the mTLS key is EC P-256 and its certificate self-signed: CN = uuid, SANs, 365 days; both 0600 and reused", async () => {
    const kp = join(dir, "server-private.pem");
    const cp = join(dir, "server-cert.crt");
    const uuid = "d432fbb3-d2f1-4a97-9ef7-75bd81c00000";
    const m = await loadOrCreateMtls(kp, cp, { uuid, contactIp: "192.0.2.10" });
    assert.equal(m.certCreated, true);
    assert.equal(mode(kp), 0o600);
    assert.equal(mode(cp), 0o600);
    assert.equal(m.key.privateKey.asymmetricKeyDetails?.namedCurve, "prime256v1");
    const cert = new X509Certificate(readFileSync(cp, "utf8"));
    assert.equal(cert.subject, `CN=${uuid}`);
    assert.equal(cert.issuer, cert.subject);
    assert.ok(await cert.verify({ signatureOnly: true }));
    const days = (cert.notAfter.getTime() - cert.notBefore.getTime()) / 86_400_000;
    assert.ok(days > 364 && days < 366, String(days));
    const san = cert.getExtension(x509lib.SubjectAlternativeNameExtension)!;
    const names = san.names.toJSON().map((n) => `${n.type}:${n.value}`);
    assert.deepEqual(names, ["dns:localhost", "dns:localhost.domain", "ip:127.0.0.1", "ip:::1", "ip:192.0.2.10"]);

    const again = await loadOrCreateMtls(kp, cp, { uuid, contactIp: "192.0.2.10" });
    assert.equal(again.certCreated, false);
    assert.equal(again.certPem, m.certPem);

    // A certificate of another key is replaced, with a warning.
    const other = join(dir, "other-key.pem");
    await loadOrCreateMtls(other, join(dir, "other.crt"), { uuid, contactIp: "127.0.0.1" });
    writeFileSync(cp, readFileSync(join(dir, "other.crt")));
    const warnings: string[] = [];
    const fixed = await loadOrCreateMtls(kp, cp, { uuid, contactIp: "127.0.0.1", warn: (w) => warnings.push(w) });
    assert.equal(fixed.certCreated, true);
    assert.match(warnings.join(), /does not belong to/);
    assert.ok(createPrivateKey(readFileSync(kp, "utf8")));
  });
});

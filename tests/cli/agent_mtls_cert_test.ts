/**
 * `keylime-ts agent mtls-cert` as a process (what the agent runs on its first start, mtls_cert_process.ts):
 * the key on standard input, the certificate on standard output, and refusals that name what was wrong.
 */
import { strict as assert } from "node:assert";
import { spawn } from "node:child_process";
import { generateKeyPairSync, X509Certificate } from "node:crypto";
import { describe, it } from "node:test";

function mtlsCert(stdin: string, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["run", "-A", "--quiet", "src/main.ts", "agent", "mtls-cert", ...args]);
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code: code ?? 1, stdout, stderr }));
    child.stdin.end(stdin);
  });
}

const UUID = "d432fbb3-d2f1-4a97-9ef7-75bd81c00000";

describe("keylime-ts agent mtls-cert", () => {
  const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const pem = privateKey.export({ type: "pkcs8", format: "pem" }).toString();

  it("prints a self-signed certificate for the key on stdin: CN = uuid, the contact address in the SANs", async () => {
    const r = await mtlsCert(pem, "--uuid", UUID, "--contact-ip", "10.0.0.7");
    assert.equal(r.code, 0, r.stderr);
    const cert = new X509Certificate(r.stdout);
    assert.match(cert.subject, new RegExp(`CN=${UUID}`));
    assert.ok(cert.verify(publicKey), "signed by the key itself");
    assert.ok(
      cert.publicKey.export({ type: "spki", format: "der" }).equals(
        publicKey.export({ type: "spki", format: "der" }),
      ),
    );
    assert.match(cert.subjectAltName ?? "", /IP Address:10\.0\.0\.7/);
    assert.match(cert.subjectAltName ?? "", /IP Address:127\.0\.0\.1/);
  });

  it("--json: the same certificate as { certificate }", async () => {
    const r = await mtlsCert(pem, "--uuid", UUID, "--json");
    assert.equal(r.code, 0, r.stderr);
    const { certificate } = JSON.parse(r.stdout) as { certificate: string };
    assert.match(new X509Certificate(certificate).subject, new RegExp(`CN=${UUID}`));
  });

  it("refuses what is not a PEM private key, and a missing --uuid, saying so", async () => {
    const garbage = await mtlsCert("not a key\n", "--uuid", UUID);
    assert.equal(garbage.code, 1);
    assert.match(garbage.stderr, /standard input is not a PEM private key/);
    assert.equal(garbage.stdout, "");
    const noUuid = await mtlsCert(pem);
    assert.notEqual(noUuid.code, 0);
    assert.match(noUuid.stderr, /--uuid/);
  });
});

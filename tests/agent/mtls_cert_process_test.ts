/**
 * The first start's certificate made in another process (mtls_cert_process.ts): what comes back is checked, and a
 * child that fails, prints something else or a certificate for another key is an error that says which.
 */
import { strict as assert } from "node:assert";
import { generateKeyPairSync } from "node:crypto";
import { describe, it } from "node:test";
import { certificateInChildProcess, MtlsCertProcessError } from "../../src/agent/mtls_cert_process.ts";
import { selfSignedCertificate } from "../../src/agent/state.ts";

const UUID = "d432fbb3-d2f1-4a97-9ef7-75bd81c00001";
const keyFile = () => {
  const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
  return { privateKey, publicKey, created: true };
};
/** A child that ignores its stdin and prints `text`, then exits with `code`. */
const printing = (text: string, code = 0) => ({
  command: "sh",
  args: ["-c", `cat > /dev/null; printf '%s' "$0"; exit ${code}`, text],
});

describe("certificateInChildProcess", () => {
  it("takes the child's certificate when it is for the agent's key", async () => {
    const key = keyFile();
    const pem = await selfSignedCertificate(key, UUID, "127.0.0.1");
    assert.equal(await certificateInChildProcess(key, UUID, "127.0.0.1", printing(pem)), pem);
  });

  it("refuses a certificate for another key", async () => {
    const other = await selfSignedCertificate(keyFile(), UUID, "127.0.0.1");
    await assert.rejects(
      certificateInChildProcess(keyFile(), UUID, "127.0.0.1", printing(other)),
      (e) => e instanceof MtlsCertProcessError && /not for the agent's key/.test(e.message),
    );
  });

  it("refuses output that is not a certificate, and passes on why a child failed", async () => {
    await assert.rejects(
      certificateInChildProcess(keyFile(), UUID, "", printing("hello")),
      (e) => e instanceof MtlsCertProcessError && /not a certificate/.test(e.message),
    );
    const failing = { command: "sh", args: ["-c", "cat > /dev/null; echo 'no TPM here' >&2; exit 3"] };
    await assert.rejects(
      certificateInChildProcess(keyFile(), UUID, "", failing),
      (e) => e instanceof MtlsCertProcessError && /no TPM here/.test(e.message),
    );
    await assert.rejects(
      certificateInChildProcess(keyFile(), UUID, "", { command: "/nonexistent/keylime-ts", args: [] }),
      (e) => e instanceof MtlsCertProcessError && /cannot run \/nonexistent\/keylime-ts/.test(e.message),
    );
  });
});

/**
 * A revocation signer for tests: an RSA key and its self-signed certificate made by openssl (as the
 * verifier's CA tooling would), and signing with our RSA-PSS or with Python's cryptography exactly as
 * keylime/crypto.py rsa_sign does.
 */
import { execFileSync } from "node:child_process";
import { createPrivateKey, webcrypto } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { revocationMessage, signRevocation } from "../../src/protocol/revocation.ts";

export interface RevocationSigner {
  certPem: string;
  keyPath: string;
  sign(msg: string): Promise<Uint8Array>;
}

export async function makeRevocationSigner(
  dir: string,
  keyArgs = ["-newkey", "rsa:2048"],
): Promise<RevocationSigner> {
  const keyPath = join(dir, "revocation-key.pem");
  const certPath = join(dir, "revocation-cert.pem");
  execFileSync("openssl", [
    "req",
    "-x509",
    ...keyArgs,
    "-nodes",
    "-keyout",
    keyPath,
    "-out",
    certPath,
    "-subj",
    "/CN=Keylime Revocation Notifier",
    "-days",
    "2",
  ], { stdio: "ignore" });
  const der = createPrivateKey(readFileSync(keyPath)).export({ format: "der", type: "pkcs8" });
  const key = await webcrypto.subtle.importKey("pkcs8", der, { name: "RSA-PSS", hash: "SHA-256" }, false, ["sign"])
    .catch(() => undefined);
  return {
    certPem: readFileSync(certPath, "utf8"),
    keyPath,
    sign: (msg) => {
      if (!key) throw new Error("not an RSA key");
      return signRevocation(key, msg);
    },
  };
}

/** keylime/crypto.py rsa_sign: PSS, MGF1-SHA256, PSS.MAX_LENGTH, SHA-256, through Python's cryptography. */
export function pythonSign(keyPath: string, msg: string): Uint8Array {
  const script = `
import sys
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
key = serialization.load_pem_private_key(open(sys.argv[1], "rb").read(), password=None)
sig = key.sign(sys.stdin.buffer.read(), padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.MAX_LENGTH), hashes.SHA256())
sys.stdout.buffer.write(sig)
`;
  return new Uint8Array(execFileSync("python3", ["-c", script, keyPath], { input: msg }));
}

/** Can Python's cryptography be used here? */
export function pythonCryptographySkipReason(): string | undefined {
  try {
    execFileSync("python3", ["-c", "import cryptography"], { stdio: "ignore" });
    return undefined;
  } catch {
    return "python3 with the cryptography package is not installed";
  }
}

/** The `msg` of a minimal revocation event, as the verifier sends it for `agentId`. */
export function sampleRevocationMessage(agentId: string, eventTime = "Tue Dec  1 22:00:00 2026"): string {
  return revocationMessage({
    type: "revocation",
    ip: "127.0.0.1",
    agent_id: agentId,
    port: 9002,
    tpm_policy: "{}",
    meta_data: "{}",
    event_time: eventTime,
  });
}

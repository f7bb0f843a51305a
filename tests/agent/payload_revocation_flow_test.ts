/**
 * The tenant's `--cert` flow end to end, without HTTP: the tenant zips the revocation certificate, an
 * action_list and a payload action, sends U (with the encrypted zip) and the verifier sends V; the agent
 * derives K, stores and extracts the payload; a revocation notification signed by the verifier's key then runs
 * the payload's action, verified with the certificate that arrived in the payload.
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BootstrapKeys } from "../../src/agent/keys.ts";
import { prepareSecureDir, type StoredPayload } from "../../src/agent/payload_store.ts";
import { RevocationWorker } from "../../src/agent/revocation.ts";
import { importNkPrivateKey, importNkPublicKey, tenantKeyRequests } from "../../src/protocol/payload.ts";
import { buildPayloadZip } from "../../src/protocol/payload_zip_build.ts";
import { recordingLog } from "../helpers/agent_log.ts";
import { defaultStoreOptions, deliverKeys } from "../helpers/payload_delivery.ts";
import { makeRevocationSigner, sampleRevocationMessage } from "../helpers/revocation_ca.ts";

const UUID = "d432fbb3-d2f1-4a97-9ef7-75bd81c00000";
const root = mkdtempSync(join(tmpdir(), "cert-flow-"));
after(() => rmSync(root, { recursive: true, force: true }));
const enc = (s: string) => new TextEncoder().encode(s);

test("payload with the revocation certificate and an action; a signed revocation runs it", async () => {
  const log = recordingLog();
  const keylimeDir = join(root, "keylime");
  mkdirSync(keylimeDir);
  const verifier = await makeRevocationSigner(mkdtempSync(join(root, "ca-")));
  const nk = generateKeyPairSync("rsa", { modulusLength: 2048 });

  // Tenant: the --cert bundle.
  const marker = join(root, "revoked.marker");
  const zip = buildPayloadZip({
    "RevocationNotifier-cert.crt": enc(verifier.certPem),
    "action_list": enc("local_action_revoke\n"),
    "local_action_revoke": {
      data: enc(`#!/bin/sh\necho "revoked $(cat "$1" | head -c 40)" > "${marker}"\n`),
      executable: false,
    },
    "autorun.sh": enc("echo bundle installed\n"),
  });
  const requests = await tenantKeyRequests(await importNkPublicKey(nk.publicKey), UUID, { payload: zip });

  // Agent.
  const secure = await prepareSecureDir({ keylimeDir, secureSize: "1m", log, mount: false });
  const unzipped = join(secure.path, "unzipped");
  const payloads: StoredPayload[] = [];
  const keys = new BootstrapKeys({
    uuid: UUID,
    nk: await importNkPrivateKey(nk.privateKey),
    runPayloads: true,
    log,
    onPayloadStored: (s) => payloads.push(s),
    store: defaultStoreOptions(secure.path, log),
  });
  await deliverKeys(keys, requests);
  assert.equal(payloads.length, 1);
  assert.deepEqual(payloads[0]!.actions, ["local_action_revoke"]);
  assert.ok(log.lines.includes("INFO bundle installed"));

  const worker = new RevocationWorker({
    certPath: join(unzipped, "RevocationNotifier-cert.crt"),
    actionsDir: join(keylimeDir, "actions"),
    actions: [],
    allowPayloadActions: true,
    unzippedDir: unzipped,
    workDir: keylimeDir,
    log,
  });
  const msg = sampleRevocationMessage(UUID, "Tue Dec  1 23:00:00 2026");

  // A notification signed by someone else runs nothing.
  const stranger = await makeRevocationSigner(mkdtempSync(join(root, "stranger-")));
  assert.equal((await worker.submit({ msg, signature: await stranger.sign(msg) }))?.status, "invalid-signature");
  assert.ok(!existsSync(marker));

  // The verifier's runs the payload's action with the message.
  const outcome = await worker.submit({ msg, signature: await verifier.sign(msg) });
  assert.equal(outcome?.status, "done");
  assert.equal(readFileSync(marker, "utf8"), `revoked ${msg.slice(0, 40)}\n`);
  assert.ok(log.lines.includes("INFO Executing revocation action local_action_revoke"));
});

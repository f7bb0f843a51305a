/**
 * Revocation notifications on the agent: a genuine one runs the configured actions and the payload's
 * action_list (when allowed), each given the message file, with their output in the log; an unsigned,
 * wrongly signed or certificate-less one runs nothing.
 */
import { after, afterEach, beforeEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { processRevocation, type RevocationOptions, RevocationWorker } from "../../src/agent/revocation.ts";
import {
  makeRevocationSigner,
  pythonCryptographySkipReason,
  pythonSign,
  type RevocationSigner,
  sampleRevocationMessage,
} from "../helpers/revocation_ca.ts";
import { recordingLog } from "../helpers/agent_log.ts";

const root = mkdtempSync(join(tmpdir(), "revocation-agent-"));
const signer: RevocationSigner = await makeRevocationSigner(root);
const msg = sampleRevocationMessage("d432fbb3-d2f1-4a97-9ef7-75bd81c00000", "Tue Dec  1 22:00:00 2026");

let dir: string;
let lines: string[];
let o: RevocationOptions;

function script(path: string, body: string): void {
  writeFileSync(path, `#!/bin/sh\n${body}\n`);
  chmodSync(path, 0o700);
}

beforeEach(() => {
  dir = mkdtempSync(join(root, "case-"));
  const actionsDir = join(dir, "actions");
  const unzipped = join(dir, "secure", "unzipped");
  const workDir = join(dir, "work");
  for (const d of [actionsDir, unzipped, workDir]) mkdirSync(d, { recursive: true });
  writeFileSync(join(unzipped, "RevocationNotifier-cert.crt"), signer.certPem);
  // A pre-installed action: prints "there" and records the file it was given and that file's content.
  script(
    join(actionsDir, "local_action_hello"),
    `echo there\necho "arg=$1" > "${dir}/hello.ran"\ncat "$1" >> "${dir}/hello.ran"\necho to-stderr >&2`,
  );
  script(join(unzipped, "payload_action"), `echo payload-ran\ntouch "${dir}/payload.ran"`);
  writeFileSync(join(unzipped, "action_list"), "payload_action\n");
  const log = recordingLog();
  lines = log.lines;
  o = {
    certPath: join(unzipped, "RevocationNotifier-cert.crt"),
    actionsDir,
    actions: ["local_action_hello"],
    allowPayloadActions: true,
    unzippedDir: unzipped,
    workDir,
    log,
    timeoutMs: 30_000,
  };
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));
after(() => rmSync(root, { recursive: true, force: true }));

const ran = (name: string) => existsSync(join(dir, `${name}.ran`));

describe("a genuine notification", () => {
  test("runs the configured action, then the payload's, each with the message file; output is logged", async () => {
    const r = await processRevocation(o, { msg, signature: await signer.sign(msg) });
    assert.equal(r.status, "done");
    assert.deepEqual(r.actions.map((a) => [a.name, a.fromPayload, a.code]), [
      ["local_action_hello", false, 0],
      ["payload_action", true, 0],
    ]);
    assert.deepEqual(r.actions[0]!.output, ["there", "to-stderr"]);
    // The action got a file holding the message JSON, and that file is gone afterwards.
    const recorded = readFileSync(join(dir, "hello.ran"), "utf8").split("\n");
    const argFile = recorded[0]!.replace(/^arg=/, "");
    assert.ok(argFile.startsWith(o.workDir));
    assert.deepEqual(JSON.parse(recorded.slice(1).join("\n")), JSON.parse(msg));
    assert.ok(!existsSync(argFile));
    assert.deepEqual(readdirSync(o.workDir), []);
    assert.ok(ran("payload"));
    // rust-keylime's log lines, in order.
    const at = (l: string) => lines.indexOf(l);
    assert.ok(at("INFO Executing revocation action local_action_hello") >= 0);
    assert.ok(at("INFO Action stdout: there") > at("INFO Executing revocation action local_action_hello"));
    assert.ok(at("WARN Action stderr: to-stderr") > 0);
    assert.ok(at("INFO Executing revocation action payload_action") > at("INFO Action stdout: there"));
    assert.ok(lines.includes("INFO Revocation processed successfully"));
  });

  test("keylime's verifier signature (Python cryptography) is accepted", async (t) => {
    const skip = pythonCryptographySkipReason();
    if (skip) return t.skip(skip);
    const r = await processRevocation(o, { msg, signature: pythonSign(signer.keyPath, msg) });
    assert.equal(r.status, "done");
    assert.ok(ran("hello"));
  });

  test("payload actions do not run unless allowed", async () => {
    const r = await processRevocation({ ...o, allowPayloadActions: false }, { msg, signature: await signer.sign(msg) });
    assert.equal(r.status, "action-failed");
    assert.ok(ran("hello"));
    assert.ok(!ran("payload"));
    assert.ok(lines.some((l) => l.includes("Could not find action payload_action")));
  });

  test("a failing action stops the rest; names with a path are refused", async () => {
    script(join(o.actionsDir, "failing"), "echo failing >&2\nexit 4");
    const r = await processRevocation({ ...o, actions: ["failing", "local_action_hello"] }, {
      msg,
      signature: await signer.sign(msg),
    });
    assert.equal(r.status, "action-failed");
    assert.deepEqual(r.actions.map((a) => [a.name, a.code]), [["failing", 4]]);
    assert.ok(!ran("hello"));
    assert.ok(lines.some((l) => /ERROR error executing revocation script failing: exit code 4/.test(l)));

    const escape = await processRevocation({ ...o, actions: ["../actions/local_action_hello"] }, {
      msg,
      signature: await signer.sign(msg),
    });
    assert.equal(escape.status, "action-failed");
    assert.ok(!ran("hello"));
  });

  test("no actions at all is a warning", async () => {
    rmSync(join(o.unzippedDir, "action_list"));
    const r = await processRevocation({ ...o, actions: [] }, { msg, signature: await signer.sign(msg) });
    assert.deepEqual(r, { status: "done", actions: [] });
    assert.ok(lines.includes("WARN WARNING: no action_list found in secure directory"));
    assert.ok(lines.includes("WARN WARNING: no actions found in revocation action list"));
  });
});

describe("anything else runs nothing", () => {
  test("an invalid signature, a signature over another message, or another signer's", async () => {
    const otherSigner = await makeRevocationSigner(mkdtempSync(join(dir, "other-")));
    for (
      const signature of [
        new Uint8Array(256),
        new Uint8Array(0),
        await signer.sign(msg + "x"),
        await otherSigner.sign(msg),
      ]
    ) {
      const r = await processRevocation(o, { msg, signature });
      assert.deepEqual(r, { status: "invalid-signature", actions: [] });
    }
    assert.ok(!ran("hello") && !ran("payload"));
    assert.ok(lines.includes("ERROR Invalid revocation message signature"));
  });

  test("no revocation certificate yet", async () => {
    rmSync(o.certPath);
    const r = await processRevocation(o, { msg, signature: await signer.sign(msg) });
    assert.equal(r.status, "no-certificate");
    assert.ok(!ran("hello"));
  });

  test("a signed message that is not JSON", async () => {
    const r = await processRevocation(o, { msg: "not json", signature: await signer.sign("not json") });
    assert.equal(r.status, "invalid-message");
    assert.ok(!ran("hello"));
  });
});

describe("the worker", () => {
  test("notifications are handled one at a time, in order; a broken setup is logged, never thrown", async () => {
    script(join(o.actionsDir, "slow"), `echo start >> "${dir}/order"\nsleep 0.2\necho end >> "${dir}/order"`);
    const worker = new RevocationWorker({ ...o, actions: ["slow"], allowPayloadActions: false });
    const signature = await signer.sign(msg);
    const [a, b] = await Promise.all([worker.submit({ msg, signature }), worker.submit({ msg, signature })]);
    assert.equal(a?.status, "action-failed"); // payload_action is in action_list but payload actions are off
    assert.equal(b?.status, "action-failed");
    assert.equal(readFileSync(join(dir, "order"), "utf8"), "start\nend\nstart\nend\n");

    const broken = new RevocationWorker({ ...o, workDir: join(dir, "missing") });
    assert.equal(await broken.submit({ msg, signature }), undefined);
    assert.ok(lines.some((l) => l.startsWith("ERROR Failed to process revocation:")));
  });
});

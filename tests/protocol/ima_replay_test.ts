/**
 * The IMA list replay: real lines from upstream's test data (their SHA-1 template hashes are the kernel's),
 * each template's encoding, violations, the prefix rule (entries after the quote wait), resuming from a
 * position, and lines that do not parse or do not replay naming the line.
 */
import { describe, test } from "node:test";
import fc from "fast-check";
import assert from "node:assert/strict";
import {
  imaExtendDigest,
  imaLines,
  imaNgLine,
  ImaReplayError,
  imaStart,
  parseImaLine,
  replayIma,
} from "../../src/protocol/ima_replay.ts";
import { TPM_ALG } from "../../src/tpm/constants.ts";
import { concat, hash } from "../../src/tpm/crypto.ts";
import { fromHex, toHex } from "../../src/util/encoding.ts";

/** keylime/keylime test/data/create-runtime-policy/ima-log-sha256 (a real list of an ima-ng kernel). */
const UPSTREAM = [
  "10 6309e2c83b7814367bb3912a55e5473454623535 ima-ng sha256:f4845392eca429a4c941a6a07fc32faf843a88c5c3dfa3b9329ab8f4171d9ce3 boot_aggregate",
  "10 80255d9c7dad91ef5f21b18560a47642d6f4d653 ima-ng sha256:96d7fae8adb7286a419a88f78c13d35fb782d63df654b7db56f154765698b754 /data",
];

/** PCR 10 of `bank` after extending the given digests from zero. */
function pcr10(bank: number, digests: Uint8Array[]): Uint8Array {
  return digests.reduce<Uint8Array>((v, d) => hash(bank, v, d), imaStart(bank).pcr10);
}

const SHA256 = TPM_ALG.SHA256;
const enc = new TextEncoder();

describe("IMA lines", () => {
  test("upstream's ima-ng lines: the printed SHA-1 template hash is the hash of the rebuilt template data", () => {
    for (const [i, line] of UPSTREAM.entries()) {
      const e = parseImaLine(line, i);
      assert.equal(toHex(imaExtendDigest(e, TPM_ALG.SHA1)), line.split(" ")[1]);
      // The sha256 bank gets the SHA-256 of the same data: d-ng "sha256:\0"+digest, n-ng name+"\0", each u32le-prefixed.
      const dng = concat(enc.encode("sha256:\0"), fromHex(line.split(" ")[3]!.slice(7)));
      const nng = enc.encode(`${e.name}\0`);
      const le = (n: number) => new Uint8Array([n, 0, 0, 0]);
      assert.deepEqual(imaExtendDigest(e, SHA256), hash(SHA256, le(dng.length), dng, le(nng.length), nng));
    }
  });

  test("the legacy ima template pads the name to 256 bytes without length prefixes", () => {
    const digest = "11".repeat(20);
    const data = concat(fromHex(digest), enc.encode("/init"), new Uint8Array(256 - 5));
    const line = `10 ${toHex(hash(TPM_ALG.SHA1, data))} ima ${digest} /init`;
    assert.deepEqual(imaExtendDigest(parseImaLine(line, 0), SHA256), hash(SHA256, data));
  });

  test("ima-sig with and without a signature, ima-buf with its buffer", () => {
    const withSig = parseImaLine(
      `10 ${"0".repeat(39)}1 ima-sig sha256:${"ab".repeat(32)} /usr/bin/a b 030204aabb`,
      0,
    );
    assert.equal(withSig.name, "/usr/bin/a b");
    assert.equal(parseImaLine(`10 ${"0".repeat(39)}1 ima-sig sha256:${"ab".repeat(32)} /etc/x`, 0).name, "/etc/x");
    const buf = parseImaLine(`10 ${"0".repeat(39)}1 ima-buf sha256:${"ab".repeat(32)} kexec-cmdline 726f6f74`, 0);
    assert.equal(buf.name, "kexec-cmdline");
    assert.ok(toHex(buf.data).endsWith("04000000726f6f74"));
  });

  test("a violation (template hash of zeros) extends all 0xff", () => {
    const e = parseImaLine(`10 ${"0".repeat(40)} ima-ng sha256:${"00".repeat(32)} /tmp/x`, 0);
    assert.deepEqual(imaExtendDigest(e, SHA256), new Uint8Array(32).fill(0xff));
  });

  test("malformed lines and unknown templates name the line", () => {
    for (
      const [line, why] of [
        ["garbage", /line 7: not "PCR template-hash/],
        [`10 ${"a".repeat(40)} ima-xyz sha256:aa /x`, /line 7: template "ima-xyz" is not supported/],
        [`10 ${"a".repeat(40)} ima-ng sha256:abc /x`, /line 7: .* is not <algorithm>:<hex digest>/],
        [`10 ${"a".repeat(40)} ima sha256:aa /x`, /line 7: the ima template's digest is not SHA-1/],
      ] as const
    ) {
      assert.throws(
        () => parseImaLine(line, 7),
        (e) => e instanceof ImaReplayError && e.reason === "parse" && why.test(e.message),
      );
    }
  });

  test("a line whose template hash is not its data's names the entry", () => {
    const line = UPSTREAM[1]!.replace("80255d9c", "80255d9d");
    assert.throws(
      () => replayIma([UPSTREAM[0], line].join("\n"), imaStart(SHA256), SHA256, new Uint8Array(32)),
      (e) => e instanceof ImaReplayError && e.reason === "template-hash" && /line 1: .*\(\/data\)/.test(e.message),
    );
  });

  test("imaLines: a trailing newline ends the last line", () => {
    assert.deepEqual(imaLines(""), []);
    assert.deepEqual(imaLines("a\nb\n"), ["a", "b"]);
    assert.deepEqual(imaLines("a\nb"), ["a", "b"]);
  });
});

describe("replayIma", () => {
  const lines = [
    imaNgLine("boot_aggregate", hash(SHA256, enc.encode("boot"))),
    imaNgLine("/bin/a", hash(SHA256, enc.encode("a"))),
    imaNgLine("/bin/b", hash(SHA256, enc.encode("b"))),
  ];
  const digests = lines.map((l, i) => imaExtendDigest(parseImaLine(l, i), SHA256));

  test("the whole list replays to the quoted PCR 10", () => {
    const r = replayIma(lines.join("\n") + "\n", imaStart(SHA256), SHA256, pcr10(SHA256, digests));
    assert.equal(r.position.entries, 3);
    assert.equal(r.replayed, 3);
    assert.equal(r.pending, 0);
    assert.deepEqual(r.names, ["boot_aggregate", "/bin/a", "/bin/b"]);
  });

  test("entries measured after the quote wait for the next round; resuming replays only new ones", () => {
    const first = replayIma(lines.join("\n"), imaStart(SHA256), SHA256, pcr10(SHA256, digests.slice(0, 2)));
    assert.equal(first.position.entries, 2);
    assert.equal(first.pending, 1);
    const next = replayIma(lines[2]!, first.position, SHA256, pcr10(SHA256, digests));
    assert.equal(next.replayed, 1);
    assert.equal(next.position.entries, 3);
    // Nothing new: an empty list at the position still matches.
    assert.equal(replayIma("", next.position, SHA256, pcr10(SHA256, digests)).replayed, 0);
  });

  test("a list that does not give the quoted PCR 10 fails with both values", () => {
    const other = imaNgLine("/bin/a", hash(SHA256, enc.encode("tampered")));
    assert.throws(
      () => replayIma([lines[0], other, lines[2]].join("\n"), imaStart(SHA256), SHA256, pcr10(SHA256, digests)),
      (e) =>
        e instanceof ImaReplayError && e.reason === "pcr-mismatch" &&
        e.message.includes(toHex(pcr10(SHA256, digests))) && /replaying 3 entries from entry 0/.test(e.message),
    );
  });

  test("the sha1 bank is extended with the printed template hashes", () => {
    const sha1 = lines.map((l) => fromHex(l.split(" ")[1]!));
    assert.equal(
      replayIma(lines.join("\n"), imaStart(TPM_ALG.SHA1), TPM_ALG.SHA1, pcr10(TPM_ALG.SHA1, sha1)).replayed,
      3,
    );
  });
});

test("any line parses or fails with ImaReplayError naming it, never anything else", () => {
  const templates = fc.constantFrom("ima", "ima-ng", "ima-sig", "ima-buf", "ima-xyz");
  const field = fc.stringMatching(/^[ -~]{0,80}$/);
  fc.assert(
    fc.property(templates, field, field, (template, a, b) => {
      for (const line of [`10 ${"ab".repeat(20)} ${template} ${a} ${b}`, `${a} ${b}`, a]) {
        try {
          const e = parseImaLine(line, 3);
          imaExtendDigest(e, SHA256);
        } catch (err) {
          if (!(err instanceof ImaReplayError)) throw err;
          assert.match(err.message, /^IMA list line 3: /);
        }
      }
    }),
    { numRuns: 500 },
  );
});

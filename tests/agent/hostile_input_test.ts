/**
 * The agent's app under hostile input, through app.request over the simulator in process (and over a real
 * socket where the HTTP layer decides): oversized and malformed query strings and bodies, payload zips that
 * try to leave secure/ or to inflate without end, and a burst of concurrent quotes. Each refusal has its
 * status, and a normal request still succeeds afterwards.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { zipSync } from "fflate";
import { createAgentApp, MAX_BODY_BYTES } from "../../src/agent/app.ts";
import { startAgentServer } from "../../src/agent/server.ts";
import { agentRoutes } from "../../src/protocol/agent_api.ts";
import { importNkPublicKey, tenantKeyRequests } from "../../src/protocol/payload.ts";
import { type AgentAppFixture, agentAppFixture, TEST_UUID } from "../helpers/agent_app.ts";

type App = ReturnType<typeof createAgentApp>;

let fx: AgentAppFixture;
let app: App;
before(async () => {
  fx = await agentAppFixture();
  app = createAgentApp(fx.deps);
});
after(() => fx.stop());

async function call(a: App, path: string, init?: RequestInit) {
  const res = await a.request(path, init);
  const text = await res.text();
  return { status: res.status, json: JSON.parse(text) as { code: number; status: string }, text };
}

/** A normal request after the hostile ones: the app still serves. */
async function stillServes(a: App = app): Promise<void> {
  const q = await call(a, "/v2.2/quotes/identity?nonce=afterwards");
  assert.equal(q.status, 200, q.text);
}

const post = (body: BodyInit): RequestInit => ({
  method: "POST",
  headers: { "Content-Type": "application/json" },
  body,
});

/** Every path under dir, relative, sorted. */
const tree = (dir: string) => (readdirSync(dir, { recursive: true, encoding: "utf8" }) as string[]).sort();

describe("query strings", () => {
  test("malformed nonce, mask and partial: 400 naming the field", async () => {
    const cases = [
      ["/v2.2/quotes/identity?nonce=" + "a".repeat(65), /^nonce: /],
      ["/v2.2/quotes/identity?nonce=%00%ff%fe", /^nonce: /],
      ["/v2.2/quotes/identity?nonce=%E2%82%AC", /^nonce: /],
      ["/v2.2/quotes/integrity?nonce=abc&mask=zz&partial=1", /^mask: /],
      ["/v2.2/quotes/integrity?nonce=abc&mask=0x&partial=1", /^mask: /],
      ["/v2.2/quotes/integrity?nonce=abc&mask=0x" + "f".repeat(1000) + "&partial=1", /^mask: /],
      ["/v2.2/quotes/integrity?nonce=abc&mask=0x400", /^partial: /],
      ["/v2.2/quotes/integrity?nonce=abc&mask=0x400&partial=yes", /^partial: /],
      ["/v2.2/quotes/integrity?nonce=abc&mask=0x400&partial=%", /^partial: /],
    ] as const;
    for (const [path, re] of cases) {
      const a = await call(app, path);
      assert.equal(a.status, 400, `${path.slice(0, 80)}: ${a.text}`);
      assert.match(a.json.status, re, path.slice(0, 80));
    }
    await stillServes();
  });

  test("a 100 KB query string: unknown parameters ignored, a 100 KB nonce 400 without echo", async () => {
    const big = `/v2.2/quotes/identity?nonce=abc&junk=${"x".repeat(100 * 1024)}`;
    const a = await call(app, big);
    // Unknown parameters are ignored as upstream does; the quote is still answered.
    assert.equal(a.status, 200, a.text);
    const bigNonce = await call(app, `/v2.2/quotes/identity?nonce=${"n".repeat(100 * 1024)}`);
    assert.equal(bigNonce.status, 400);
    assert.match(bigNonce.json.status, /^nonce: /);
    assert.ok(bigNonce.text.length < 1024, "the refusal does not echo the input");
    await stillServes();
  });

  test("over a real socket, a 100 KB query string is refused by the HTTP layer and the server serves on", async () => {
    const server = await startAgentServer(app.fetch, { ip: "127.0.0.1", port: 0 });
    try {
      const res = await fetch(`${server.url}/v2.2/quotes/identity?nonce=abc&junk=${"x".repeat(100 * 1024)}`)
        .then((r) => r.body?.cancel().then(() => r.status), () => "closed" as const);
      // Node answers 431; Deno's node:http closes the connection.
      assert.ok(res === 431 || res === 400 || res === "closed", `got ${res}`);
      const ok = await fetch(`${server.url}/v2.2/quotes/identity?nonce=afterwards`);
      assert.equal(ok.status, 200, await ok.text());
    } finally {
      await server.close(100);
    }
  });
});

describe("bodies", () => {
  test("not JSON, a JSON array, a JSON scalar, empty: 400", async () => {
    for (const body of ["{not json", "[]", "[{}]", "5", "null", "", "\u0000\u0001"]) {
      const a = await call(app, "/v2.2/keys/ukey", post(body));
      assert.equal(a.status, 400, `${JSON.stringify(body)}: ${a.text}`);
      const r = await call(app, "/v2.2/notifications/revocation", post(body));
      assert.equal(r.status, 400, `${JSON.stringify(body)}: ${r.text}`);
    }
    await stillServes();
  });

  test("a body past the limit is refused as it streams in, without being read to the end", async () => {
    const chunk = new Uint8Array(1024 * 1024).fill(0x20);
    let sent = 0;
    const stream = new ReadableStream<Uint8Array>({
      pull(ctl) {
        // Never ends on its own: only the limit stops it.
        sent += chunk.length;
        ctl.enqueue(chunk);
      },
    });
    const a = await call(app, "/v2.2/keys/ukey", { ...post(stream), duplex: "half" } as RequestInit);
    assert.ok(a.status === 413 || a.status === 400, a.text);
    assert.match(a.json.status, /larger than/);
    assert.ok(sent <= MAX_BODY_BYTES + 4 * chunk.length, `read ${sent} bytes`);
    // A declared length past the limit is refused before reading.
    const declared = await call(app, "/v2.2/keys/ukey", {
      ...post("{}"),
      headers: { "Content-Type": "application/json", "Content-Length": String(MAX_BODY_BYTES + 1) },
    });
    assert.ok(declared.status === 413 || declared.status === 400, declared.text);
    await stillServes();
  });
});

describe("payload zips through keys/ukey", () => {
  const enc = (s: string) => new TextEncoder().encode(s);

  async function deliver(payload: Uint8Array) {
    const root = mkdtempSync(join(tmpdir(), "hostile-keys-"));
    const secure = join(root, "secure");
    mkdirSync(secure, { mode: 0o700 });
    const keys = await fx.newKeys(secure);
    const a = createAgentApp({ ...fx.deps, keys: { ...fx.deps.keys, keys } });
    const nk = await importNkPublicKey(fx.nkPem);
    const req = await tenantKeyRequests(nk, TEST_UUID, { payload });
    const u = await call(a, "/v2.2/keys/ukey", post(JSON.stringify(agentRoutes.ukey.body.toJson(req.ukey))));
    const v = await call(a, "/v2.2/keys/vkey", post(JSON.stringify(agentRoutes.vkey.body.toJson(req.vkey))));
    await keys.idle();
    return { root, secure, a, u, v };
  }

  test("entries with ../, an absolute path or a symlink: answered 200 as upstream, nothing written", async () => {
    for (
      const zip of [
        zipSync({ "autorun.sh": enc("touch pwned"), "../../escaped": enc("x") }),
        zipSync({ "a/../../escaped": enc("x") }),
        zipSync({ "/tmp/abs": enc("x") }),
        zipSync({ "cert.crt": [enc("/etc/passwd"), { os: 3, attrs: 0o120777 << 16 }] }),
      ]
    ) {
      const n = fx.stored.length;
      const { root, a, u, v } = await deliver(zip);
      // The payload is handled after the answer (upstream answers 200 at once).
      assert.deepEqual([u.status, v.status], [200, 200], u.text + v.text);
      // K was derived, so the payload reached the store and was refused there.
      assert.equal((await call(a, "/v2.2/keys/verify?challenge=abc")).status, 200);
      assert.equal(fx.stored.length, n);
      assert.deepEqual(tree(root), ["secure"]);
      await stillServes(a);
    }
  });

  test("a zip bomb (a small zip inflating past the 64 MiB limit): refused, nothing written", async () => {
    const bomb = zipSync({ zeros: new Uint8Array(80 << 20) }, { level: 9 });
    assert.ok(bomb.length < 200 * 1024);
    const n = fx.stored.length;
    const { root, a, u, v } = await deliver(bomb);
    assert.deepEqual([u.status, v.status], [200, 200]);
    assert.equal((await call(a, "/v2.2/keys/verify?challenge=abc")).status, 200);
    assert.equal(fx.stored.length, n);
    assert.deepEqual(tree(root), ["secure"]);
    await stillServes(a);
  });
});

describe("concurrency", () => {
  test("200 concurrent quotes: each 200 or a clean 503; /version answers meanwhile; serving after", async () => {
    const quotes = Array.from({ length: 200 }, (_, i) => call(app, `/v2.2/quotes/identity?nonce=burst${i}`));
    const v = await call(app, "/version");
    assert.equal(v.status, 200);
    const answers = await Promise.all(quotes);
    for (const a of answers) {
      assert.ok(a.status === 200 || a.status === 503, a.text);
      assert.equal(a.json.code, a.status);
    }
    assert.ok(answers.some((a) => a.status === 200));
    await stillServes();
  });
});

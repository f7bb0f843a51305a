/** limitBody: bodies up to the limit pass, a larger one reaches the app's error handler as the caller's error. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { Hono } from "hono";
import { createServer, request } from "node:http";
import type { AddressInfo } from "node:net";
import { limitBody } from "../../src/util/body_limit.ts";
import { fetchListener } from "../../src/util/fetch_listener.ts";

class TooLarge extends Error {}

function app(maxBytes: number): Hono {
  const a = new Hono();
  a.use(
    "*",
    limitBody(maxBytes, (n) => {
      throw new TooLarge(`over ${n}`);
    }),
  );
  a.post("/", async (c) => c.text(`read ${(await c.req.text()).length}`));
  a.onError((e, c) => c.text(e instanceof TooLarge ? e.message : "other", 413));
  return a;
}

test("a body at the limit is read; one byte more is refused through the callback", async () => {
  const ok = await app(10).request("/", { method: "POST", body: "x".repeat(10) });
  assert.deepEqual([ok.status, await ok.text()], [200, "read 10"]);
  const big = await app(10).request("/", { method: "POST", body: "x".repeat(11) });
  assert.deepEqual([big.status, await big.text()], [413, "over 10"]);
});

test("a streamed body without Content-Length is counted while read", async () => {
  const body = new ReadableStream({
    start(c) {
      for (let i = 0; i < 4; i++) c.enqueue(new TextEncoder().encode("x".repeat(5)));
      c.close();
    },
  });
  const r = await app(10).request("/", { method: "POST", body, duplex: "half" } as RequestInit);
  assert.deepEqual([r.status, await r.text()], [413, "over 10"]);
});

/**
 * POST `chunks` to `app` served as the agent and registrar serve (fetch_listener.ts, reading up to `maxBytes`)
 * on a free port; Content-Length unless `chunked`.
 */
async function postOverHttp(a: Hono, chunks: string[], chunked: boolean, maxBytes: number): Promise<[number, string]> {
  const server = createServer(
    fetchListener(a.fetch, { maxBodyBytes: maxBytes, onError: (line) => console.error(line) }),
  );
  await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
  try {
    const { port } = server.address() as AddressInfo;
    const total = chunks.reduce((n, c) => n + c.length, 0);
    return await new Promise((resolve, reject) => {
      const headers = chunked ? {} : { "Content-Length": String(total) };
      const req = request({ host: "127.0.0.1", port, method: "POST", path: "/", headers, agent: false }, (res) => {
        let text = "";
        res.on("data", (d) => (text += d));
        res.on("end", () => resolve([res.statusCode!, text]));
      });
      req.on("error", reject);
      for (const c of chunks) req.write(c);
      req.end();
    });
  } finally {
    server.closeAllConnections();
    await new Promise((ok) => server.close(ok));
  }
}

test("over node:http: Content-Length at the limit is read, one more byte refused before the body is read", async () => {
  assert.deepEqual(await postOverHttp(app(10), ["x".repeat(10)], false, 10), [200, "read 10"]);
  assert.deepEqual(await postOverHttp(app(10), ["x".repeat(11)], false, 10), [413, "over 10"]);
});

test("over node:http: a chunked body is counted while read", async () => {
  assert.deepEqual(await postOverHttp(app(10), ["x".repeat(5), "x".repeat(5)], true, 10), [200, "read 10"]);
  assert.deepEqual(await postOverHttp(app(10), ["x".repeat(6), "x".repeat(6)], true, 10), [413, "over 10"]);
});

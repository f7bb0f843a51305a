/** limitBody: bodies up to the limit pass, a larger one reaches the app's error handler as the caller's error. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { Hono } from "hono";
import { limitBody } from "../../src/util/body_limit.ts";

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

/**
 * fetch_listener.ts serving a Hono app over a real socket, twice: with the runtime's own Headers, Request and
 * Response, and with fetch_subset.ts's in their place (as the agent runs on Node).
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { createServer, request as httpRequest, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { Hono } from "hono";
import { fetchListener } from "../../src/util/fetch_listener.ts";
import { limitBody } from "../../src/util/body_limit.ts";
import { SubsetHeaders, SubsetRequest, SubsetResponse } from "../../src/util/fetch_subset.ts";

class TooLarge extends Error {}
const LIMIT = 1024;

function app(): Hono {
  const a = new Hono();
  a.use(
    "*",
    limitBody(LIMIT, () => {
      throw new TooLarge();
    }),
  );
  a.get("/json", (c) =>
    c.json({
      path: new URL(c.req.url).pathname,
      q: c.req.query("q"),
      host: c.req.header("host"),
      subset: c.req.raw instanceof SubsetRequest,
    }));
  a.post("/echo", async (c) => c.text(`${c.req.method} ${(await c.req.text()).length}`));
  a.get("/cookies", (c) => {
    c.header("Set-Cookie", "a=1", { append: true });
    c.header("Set-Cookie", "b=2", { append: true });
    return c.body(null, 204);
  });
  a.get("/stream", (c) => {
    let n = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (n === 3) return controller.close();
        controller.enqueue(new TextEncoder().encode(`chunk${n++};`));
      },
    });
    return c.body(body, 200, { "Content-Type": "text/plain" });
  });
  a.get("/throws", () => {
    throw new Error("unanswered");
  });
  a.onError((e, c) => {
    if (e instanceof TooLarge) return c.text("too large", 413);
    throw e; // reaches the listener's onError
  });
  return a;
}

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

function send(port: number, o: { method?: string; path: string; body?: string; headers?: Record<string, string> }) {
  return new Promise<Answer>((ok, fail) => {
    const req = httpRequest({ port, host: "127.0.0.1", method: o.method ?? "GET", path: o.path, headers: o.headers });
    req.on("response", (res) => {
      let body = "";
      res.setEncoding("utf8").on("data", (d) => (body += d)).on("end", () => {
        ok({ status: res.statusCode!, headers: res.headers, body });
      });
    }).on("error", fail);
    req.end(o.body);
  });
}

async function serving(errors: unknown[]): Promise<{ server: Server; port: number }> {
  const server = createServer(
    fetchListener(app().fetch, { maxBodyBytes: LIMIT, onError: (line) => errors.push(line) }),
  );
  await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
  return { server, port: (server.address() as AddressInfo).port };
}

/** Run `body` with the subset classes as the globals, as installFetchSubset makes them on Node. */
async function withSubset(body: () => Promise<void>): Promise<void> {
  const g = globalThis as Record<string, unknown>;
  const saved = [g.Headers, g.Request, g.Response];
  [g.Headers, g.Request, g.Response] = [SubsetHeaders, SubsetRequest, SubsetResponse];
  try {
    await body();
  } finally {
    [g.Headers, g.Request, g.Response] = saved;
  }
}

for (
  const [name, wrap, subset] of [
    ["the runtime's fetch classes", (f: () => Promise<void>) => f(), false],
    ["fetch_subset.ts's classes", withSubset, true],
  ] as const
) {
  describe(`fetch_listener with ${name}`, () => {
    test("routes, query, headers, bodies, streams, cookies, HEAD, limits and failures", async () => {
      await wrap(async () => {
        const errors: unknown[] = [];
        const { server, port } = await serving(errors);
        try {
          const json = await send(port, { path: "/json?q=a%20b", headers: { host: "agent.example:9002" } });
          assert.equal(json.status, 200);
          assert.match(String(json.headers["content-type"]), /^application\/json/);
          assert.deepEqual(JSON.parse(json.body), { path: "/json", q: "a b", host: "agent.example:9002", subset });

          // A Host header that is not a host is not used to build the URL (it would move the path).
          const badHost = await send(port, { path: "/json", headers: { host: "x/evil?" } });
          assert.deepEqual(JSON.parse(badHost.body).path, "/json");

          const echo = await send(port, { method: "POST", path: "/echo", body: "x".repeat(LIMIT) });
          assert.deepEqual([echo.status, echo.body], [200, `POST ${LIMIT}`]);
          const chunked = await send(port, {
            method: "POST",
            path: "/echo",
            body: "y".repeat(10),
            headers: { "transfer-encoding": "chunked" },
          });
          assert.deepEqual([chunked.status, chunked.body], [200, "POST 10"]);

          // Past the limit, declared or streamed: the app's own limit answers, and the connection is not reused.
          const declared = await send(port, { method: "POST", path: "/echo", body: "z".repeat(LIMIT + 1) });
          assert.deepEqual([declared.status, declared.body, declared.headers.connection], [413, "too large", "close"]);
          const streamed = await send(port, {
            method: "POST",
            path: "/echo",
            body: "z".repeat(LIMIT * 4),
            headers: { "transfer-encoding": "chunked" },
          });
          assert.deepEqual([streamed.status, streamed.body], [413, "too large"]);

          const stream = await send(port, { path: "/stream" });
          assert.deepEqual([stream.status, stream.body], [200, "chunk0;chunk1;chunk2;"]);

          const cookies = await send(port, { path: "/cookies" });
          assert.equal(cookies.status, 204);
          assert.deepEqual(cookies.headers["set-cookie"], ["a=1", "b=2"]);

          const head = await send(port, { method: "HEAD", path: "/json" });
          assert.deepEqual([head.status, head.body], [200, ""]);

          assert.equal((await send(port, { path: "/nothing" })).status, 404);

          const failed = await send(port, { path: "/throws" });
          assert.deepEqual([failed.status, failed.body], [500, "Internal Server Error"]);
          assert.match(String(errors[0]), /unanswered/);

          // And it serves on.
          assert.equal((await send(port, { path: "/json" })).status, 200);
        } finally {
          server.closeAllConnections();
          await new Promise((ok) => server.close(ok));
        }
      });
    });
  });
}

/** fetch_subset.ts: the Headers, Request and Response an agent on Node uses, held to the fetch standard's rules. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { bodyInitOf, SubsetHeaders, SubsetRequest, SubsetResponse } from "../../src/util/fetch_subset.ts";

test("Headers: names case-insensitive, values combined, Set-Cookie kept apart, iteration sorted", () => {
  const h = new SubsetHeaders({ "X-B": "2", "Content-Type": "text/plain" });
  h.append("x-b", " 3 ");
  h.append("Set-Cookie", "a=1");
  h.append("set-cookie", "b=2");
  assert.equal(h.get("X-b"), "2, 3");
  assert.equal(h.get("missing"), null);
  assert.deepEqual(h.getSetCookie(), ["a=1", "b=2"]);
  assert.deepEqual([...h], [["content-type", "text/plain"], ["set-cookie", "a=1"], ["set-cookie", "b=2"], [
    "x-b",
    "2, 3",
  ]]);
  h.set("X-B", "9");
  h.delete("content-type");
  assert.deepEqual([...h.keys()], ["set-cookie", "set-cookie", "x-b"]);
  assert.equal(h.has("CONTENT-TYPE"), false);
  // Every init form the runtime's Headers takes: pairs, a record, another Headers.
  assert.deepEqual([...new SubsetHeaders([["A", "1"]])], [["a", "1"]]);
  assert.deepEqual([...new SubsetHeaders(new Headers({ A: "1" }))], [["a", "1"]]);
  assert.deepEqual([...new SubsetHeaders(h)].length, 3);
});

test("Headers: a name that is not a token or a value with CR, LF or NUL is refused", () => {
  const h = new SubsetHeaders();
  assert.throws(() => h.set("bad name", "x"), /invalid header name/);
  assert.throws(() => h.set("", "x"), /invalid header name/);
  assert.throws(() => h.set("x-a", "1\r\nInjected: yes"), /invalid value for header x-a/);
  assert.throws(() => h.append("x-a", "a\0b"), /invalid value/);
  assert.equal([...h].length, 0);
});

test("Request: method, URL, body read once; GET and HEAD carry none; a copy takes the body", async () => {
  const r = new SubsetRequest("http://h/p?q=1", { method: "post", headers: { A: "1" }, body: '{"x":1}' });
  assert.equal(r.method, "POST");
  assert.equal(r.url, "http://h/p?q=1");
  assert.equal(r.headers.get("a"), "1");
  assert.deepEqual(await r.json(), { x: 1 });
  assert.equal(r.bodyUsed, true);
  await assert.rejects(r.text(), /body already used/);
  assert.throws(() => new SubsetRequest("http://h/", { method: "GET", body: "x" }), /GET request has no body/);
  assert.throws(() => new SubsetRequest("not a url"), TypeError);

  const original = new SubsetRequest("http://h/", { method: "PUT", body: new Uint8Array([1, 2]) });
  const copy = new SubsetRequest(original, { headers: { B: "2" } });
  assert.deepEqual([copy.method, copy.url, copy.headers.get("b")], ["PUT", "http://h/", "2"]);
  assert.deepEqual(await copy.bytes(), new Uint8Array([1, 2]));
  assert.equal(original.bodyUsed, true);
  assert.equal(new SubsetRequest("http://h/").body, null);
});

test("Response: status range, ok, text's default type, a stream body, the body as given", async () => {
  const text = new SubsetResponse("hi", { status: 201, headers: { "X-A": "1" } });
  assert.deepEqual([text.status, text.ok, text.headers.get("content-type")], [201, true, "text/plain;charset=UTF-8"]);
  assert.equal(await text.text(), "hi");
  const json = new SubsetResponse("{}", { status: 400, headers: { "Content-Type": "application/json" } });
  assert.deepEqual([json.ok, json.headers.get("content-type")], [false, "application/json"]);
  assert.throws(() => new SubsetResponse(null, { status: 99 }), RangeError);
  assert.throws(() => new SubsetResponse(null, { status: 600 }), RangeError);
  assert.equal(new SubsetResponse().body, null);

  const streamed = new SubsetResponse(
    new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(new TextEncoder().encode("a"));
        c.enqueue(new TextEncoder().encode("b"));
        c.close();
      },
    }),
  );
  assert.equal(await streamed.text(), "ab");

  const bytes = new Uint8Array([7]);
  const given = new SubsetResponse(bytes);
  assert.equal(bodyInitOf(given), bytes);
  assert.equal(given.bodyUsed, true);
  assert.equal(bodyInitOf(new Response("x")), undefined);
  // Asked for as a stream (as Hono does when it copies a response), text or bytes become one.
  const copied = new SubsetResponse(new SubsetResponse("xyz").body);
  assert.equal(await copied.text(), "xyz");
});

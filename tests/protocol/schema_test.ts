/** Declare-once JSON shapes: types, parsing with field-named errors, bounds, and the encoder. */
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  array,
  binary,
  integer,
  object,
  optional,
  parseJsonText,
  ProtocolInputError,
  text,
} from "../../src/protocol/schema.ts";

const Shape = object({
  name: text({ max: 8 }),
  data: binary({ maxBytes: 4 }),
  port: optional(integer({ min: 1, max: 65535 })),
  tags: optional(array(text({ max: 3 }), { max: 2 })),
});

function issues(f: () => unknown): string[] {
  try {
    f();
  } catch (e) {
    assert.ok(e instanceof ProtocolInputError, String(e));
    assert.equal(e.code, "ERR_PROTOCOL_INPUT");
    return e.issues.map((i) => (i.path ? `${i.path}: ${i.reason}` : i.reason));
  }
  assert.fail("expected a ProtocolInputError");
}

test("a valid body parses into typed values, unknown keys ignored", () => {
  const v = Shape.parse({ name: "a", data: "AQID", port: 8890, extra: 1 });
  assert.deepEqual(v, { name: "a", data: new Uint8Array([1, 2, 3]), port: 8890 });
  const t: { name: string; data: Uint8Array; port?: number } = v;
  assert.ok(t);
});

test("binary takes strict base64, then hex (0x optional), as upstream's Binary cast", () => {
  assert.deepEqual(Shape.parse({ name: "a", data: "0a0b" }).data, new Uint8Array([0xd1, 0xad, 0x1b]));
  assert.deepEqual(Shape.parse({ name: "a", data: "0x0a0b" }).data, new Uint8Array([0x0a, 0x0b]));
  assert.deepEqual(issues(() => Shape.parse({ name: "a", data: "AQI" })), ["data: not base64 (or hex)"]);
  assert.deepEqual(issues(() => Shape.parse({ name: "a", data: "AQ=D" })), ["data: not base64 (or hex)"]);
  assert.deepEqual(issues(() => Shape.parse({ name: "a", data: "AQIDBAU=" })), ["data: 5 bytes is more than 4"]);
  assert.deepEqual(issues(() => Shape.parse({ name: "a", data: "A".repeat(100) })), ["data: longer than 4 bytes"]);
});

test("every field at fault is named, required fields included", () => {
  assert.deepEqual(issues(() => Shape.parse({ data: 5, port: 0, tags: ["abcd", 1] })), [
    "name: is required",
    "data: expected a base64 string, got a number",
    "port: 0 is outside 1..65535",
    "tags[0]: longer than 3 characters",
    "tags[1]: expected a string, got a number",
  ]);
  assert.deepEqual(issues(() => Shape.parse({ name: "", data: "" })), ["name: is required", "data: is required"]);
  assert.deepEqual(issues(() => Shape.parse([])), ["expected a JSON object, got an array"]);
});

test("optional fields take absence and null", () => {
  assert.equal(Shape.parse({ name: "a", data: "AA==", port: null }).port, undefined);
  assert.equal(Shape.parse({ name: "a", data: "AA==", port: "9002" }).port, 9002);
});

test("toJson is the inverse of parse", () => {
  const v = { name: "x", data: new Uint8Array([255, 0]), tags: ["a"] };
  const json = Shape.toJson(v);
  assert.deepEqual(json, { name: "x", data: "/wA=", tags: ["a"] });
  assert.deepEqual(Shape.parse(json), v);
});

test("parseJsonText refuses text that is not JSON", () => {
  assert.deepEqual(issues(() => parseJsonText(Shape, "{")), ["the body is not JSON"]);
});

/** selfCommand: under Deno it runs src/main.ts again, and refuses when the entry is something else. */
import { strict as assert } from "node:assert";
import { describe, it } from "node:test";
import { selfCommand } from "../../src/util/self_command.ts";

describe("selfCommand", () => {
  it("refuses under a test runner, whose entry is not src/main.ts, naming the entry", () => {
    assert.throws(
      () => selfCommand(["--version"]),
      /cannot run this program again: started from .*self_command_test\.ts/,
    );
  });
});

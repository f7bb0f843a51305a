/**
 * The README cannot drift from the code: every `keylime-ts ...` line of its shell blocks names real
 * subcommands and options, its links point at files that exist, its compatibility table names the API versions
 * the code serves, and its CI script is docs/ci_swtpm.sh, which runs here (swtpm, the registrar, the agent's
 * registration) and ends with the agent active.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Command } from "commander";
import { buildProgram } from "../../src/main.ts";
import { AGENT_SUPPORTED_VERSIONS, REGISTRAR_SUPPORTED_VERSIONS } from "../../src/protocol/api_version.ts";
import { swtpmSkipReason } from "../helpers/swtpm.ts";

const REPO = fileURLToPath(new URL("../../", import.meta.url));
const README = readFileSync(join(REPO, "README.md"), "utf8");
const CI_SCRIPT = readFileSync(join(REPO, "docs/ci_swtpm.sh"), "utf8");

/** The lines of the ```sh blocks, continuation lines joined, comments dropped. */
function shellLines(text: string): string[] {
  const blocks = [...text.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]!);
  return blocks.flatMap((b) => b.replace(/\\\n\s*/g, " ").split("\n")).map((l) => l.replace(/\s+#\s.*$/, "").trim());
}

/** Problems of one `keylime-ts ...` command line: unknown subcommands or options. */
function checkCommand(program: Command, line: string): string[] {
  const tokens = line.replace(/^([A-Z0-9_]+=\S+\s+)*/, "").split(/\s+/).slice(1);
  let cmd = program;
  const problems: string[] = [];
  let descending = true;
  for (const t of tokens) {
    if (t.startsWith("--")) {
      const name = t.split("=")[0]!;
      if (name !== "--help" && !cmd.options.some((o) => o.long === name)) problems.push(`${cmd.name()} has no ${name}`);
      continue;
    }
    const sub = descending ? cmd.commands.find((c) => c.name() === t) : undefined;
    if (sub) cmd = sub;
    else descending = false;
  }
  return problems;
}

test("every keylime-ts line of the README names real subcommands and options", async () => {
  const program = await buildProgram();
  const lines = shellLines(README).filter((l) => /^([A-Z0-9_]+=\S+\s+)*keylime-ts /.test(l));
  assert.ok(lines.length > 10, `${lines.length} command lines`);
  assert.deepEqual(lines.flatMap((l) => checkCommand(program, l).map((p) => `${l}: ${p}`)), []);
});

test("the README's links point at files that exist", () => {
  const targets = [...README.matchAll(/\]\(([^)#]+)\)/g)].map((m) => m[1]!).filter((t) => !/^[a-z]+:/.test(t));
  assert.ok(targets.length > 3);
  assert.deepEqual(targets.filter((t) => !existsSync(join(REPO, t))), []);
});

test("the compatibility table names the API versions the code serves", () => {
  const range = (v: readonly string[]) => `v${v[0]} to v${v.at(-1)}`;
  assert.match(README, new RegExp(`agent API \\(pull model\\)\\s*\\|\\s*${range(AGENT_SUPPORTED_VERSIONS)} served`));
  assert.ok(README.includes(`the reference: ${range(REGISTRAR_SUPPORTED_VERSIONS)}`));
});

test("the README's CI script is docs/ci_swtpm.sh", () => {
  const body = CI_SCRIPT.slice(CI_SCRIPT.indexOf("set -eu"));
  assert.ok(README.includes("```sh\n" + body + "```"), "copy docs/ci_swtpm.sh from `set -eu` into the README");
});

test("docs/ci_swtpm.sh registers an agent with the registrar on swtpm", { skip: swtpmSkipReason() }, async () => {
  const env = { ...process.env, PATH: `${join(REPO, "scripts")}:${process.env.PATH}` };
  const r = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
    execFile(
      "sh",
      [join(REPO, "docs/ci_swtpm.sh")],
      { env, timeout: 180_000 },
      (err, stdout, stderr) => resolve({ code: err ? (err as { code?: number }).code ?? 1 : 0, stdout, stderr }),
    )
  );
  assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
  const result = JSON.parse(r.stdout);
  assert.equal(result.active, true);
  assert.match(result.uuid, /^[0-9a-f]{64}$/, "hash_ek: the uuid is the EK's hash");
});

/**
 * The layering of DESIGN.md, checked by reading every import:
 * - src/tpm imports only itself, src/util, node built-ins and npm packages other than Hono;
 * - simulator/ imports src/tpm's wire, crypto and transport modules and src/util, nothing else of the
 *   project: no client operation module (sessions, EK/AK/NV/PCR operations), not even transitively;
 * - src/ never imports simulator/, except the composition layer (src/main.ts, src/cli/);
 * - src/agent and src/registrar never import each other;
 * - src/attest (the tenant side of attest) imports neither of them, nor src/cli or a TPM client.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");

function sources(dir: string): string[] {
  const abs = join(ROOT, dir);
  try {
    statSync(abs);
  } catch {
    return [];
  }
  return readdirSync(abs, { recursive: true, encoding: "utf8" })
    .filter((f) => /\.(ts|tsx|js|mjs)$/.test(f))
    .map((f) => join(dir, f));
}

/** Every module specifier a file imports or re-exports, static or dynamic. */
export function importsOf(text: string): string[] {
  const out: string[] = [];
  const re =
    /(?:import|export)\s[^'"]*?from\s*["']([^"']+)["']|import\s*\(\s*["']([^"']+)["']\s*\)|import\s+["']([^"']+)["']/g;
  for (const m of text.matchAll(re)) out.push(m[1] ?? m[2] ?? m[3]!);
  return out;
}

interface Violation {
  file: string;
  spec: string;
  rule: string;
}

function check(files: string[], rule: string, allowed: (spec: string, target: string | null) => boolean) {
  const bad: Violation[] = [];
  for (const file of files) {
    for (const spec of importsOf(readFileSync(join(ROOT, file), "utf8"))) {
      const target = spec.startsWith(".") ? relative(ROOT, resolve(ROOT, dirname(file), spec)) : null;
      if (!allowed(spec, target)) bad.push({ file, spec, rule });
    }
  }
  return bad;
}

const inside = (target: string | null, dir: string) => target !== null && (target + "/").startsWith(dir + "/");

test("the import scanner sees static, dynamic and re-exports", () => {
  const t =
    `import a from "./a.ts";\nimport { b } from '../b.ts';\nexport * from "./c.ts";\nconst d = await import("./d.ts");\nimport "./e.ts";`;
  assert.deepEqual(importsOf(t), ["./a.ts", "../b.ts", "./c.ts", "./d.ts", "./e.ts"]);
});

test("src/tpm stays a self-contained TPM library", () => {
  const files = sources("src/tpm");
  assert.ok(files.length > 5);
  const bad = check(
    files,
    "src/tpm imports only src/tpm, src/util, node: built-ins and npm packages other than hono",
    (spec, target) => {
      if (target !== null) return inside(target, "src/tpm") || inside(target, "src/util");
      return !/^(hono|@hono\/)/.test(spec);
    },
  );
  assert.deepEqual(bad, []);
});

/** The modules of src/tpm the simulator may use: wire, crypto and data, and transport for its servers. */
const SIMULATOR_MAY_USE = new Set(
  [
    // wire
    "constants",
    "errors",
    "marshal",
    "structures",
    "command",
    "commands",
    "frame",
    "bytes",
    // crypto and data
    "crypto",
    "kdf",
    "secret",
    "credential",
    "signature",
    "session_digests",
    "templates",
    "x509",
  ].map((m) => `src/tpm/${m}.ts`),
);
const simulatorMayImport = (target: string) =>
  SIMULATOR_MAY_USE.has(target) || inside(target, "src/tpm/transport") || inside(target, "src/util");

test("simulator/ imports only src/tpm's wire, crypto and transport modules and src/util", () => {
  const bad = check(
    sources("simulator"),
    "simulator/ imports src/tpm's wire, crypto and transport modules and src/util, nothing else of the project",
    (spec, target) =>
      target === null ? !/^(hono|@hono\/)/.test(spec) : inside(target, "simulator") || simulatorMayImport(target),
  );
  assert.deepEqual(bad, []);
});

test("what the simulator may use of src/tpm imports no client operation module either", () => {
  const files = sources("src/tpm").filter(simulatorMayImport);
  assert.ok(files.includes("src/tpm/templates.ts") && files.includes("src/tpm/transport/uri.ts"));
  const bad = check(
    files,
    "a module the simulator uses imports only modules the simulator may use",
    (_s, target) => target === null || simulatorMayImport(target),
  );
  assert.deepEqual(bad, []);
});

test("only the composition layer imports simulator/", () => {
  const files = sources("src").filter((f) => f !== "src/main.ts" && !f.startsWith("src/cli/"));
  const bad = check(
    files,
    "src/ never imports simulator/ outside src/main.ts and src/cli/",
    (_s, target) => !inside(target, "simulator"),
  );
  assert.deepEqual(bad, []);
});

test("agent and registrar do not import each other", () => {
  const a = check(
    sources("src/agent"),
    "src/agent never imports src/registrar",
    (_s, t) => !inside(t, "src/registrar"),
  );
  const r = check(
    sources("src/registrar"),
    "src/registrar never imports src/agent",
    (_s, t) => !inside(t, "src/agent"),
  );
  assert.deepEqual([...a, ...r], []);
});

test("src/util knows nothing of the project", () => {
  const files = sources("src/util");
  assert.ok(files.includes("src/util/encoding.ts"));
  const bad = check(
    files,
    "src/util imports only src/util",
    (_s, target) => target === null || inside(target, "src/util"),
  );
  assert.deepEqual(bad, []);
});

test("src/protocol does no I/O and knows no HTTP framework or TPM client", () => {
  const files = sources("src/protocol");
  assert.ok(files.length > 3);
  const bad = check(
    files,
    "src/protocol imports no node:fs/net/http(s)/child_process, no Hono, no TPM client, nothing of agent/registrar/cli",
    (spec, target) => {
      if (target === null) {
        return !/^(node:)?(fs|fs\/promises|net|http|https|http2|tls|dgram|child_process)$|^(hono|@hono\/)/.test(spec);
      }
      if (inside(target, "src/protocol") || inside(target, "src/util")) return true;
      return inside(target, "src/tpm") && !/^src\/tpm\/(client|sessions|session_start|transport\/)/.test(target);
    },
  );
  assert.deepEqual(bad, []);
});

test("src/attest (the tenant's side) imports neither the agent, the registrar, the CLI nor a TPM client", () => {
  const files = sources("src/attest");
  assert.ok(files.includes("src/attest/run.ts"));
  const bad = check(
    files,
    "src/attest imports src/protocol, src/util and src/tpm's wire and crypto, nothing of agent/registrar/cli",
    (_s, target) => {
      if (target === null) return true;
      if (["src/attest", "src/protocol", "src/util"].some((d) => inside(target, d))) return true;
      return inside(target, "src/tpm") && !/^src\/tpm\/(client|sessions|session_start|transport\/)/.test(target);
    },
  );
  assert.deepEqual(bad, []);
});

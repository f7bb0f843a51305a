#!/usr/bin/env bash
# dist/keylime-ts-deno with `deno compile`: the second single-executable target (docs/binary.md). Deno builds it
# from denort, its runtime-only base binary of the same version: DENORT_BIN names one, else Deno downloads it.
set -euo pipefail
cd "$(dirname "$0")/.."
out=dist/keylime-ts-deno
version=$(scripts/deno --version | sed -n 's/^deno \([^ ]*\).*/\1/p')

if [ -n "${DENORT_BIN:-}" ] && [ ! -x "$DENORT_BIN" ]; then
  echo "binary-deno: DENORT_BIN=$DENORT_BIN is not an executable file" >&2
  exit 1
fi
mkdir -p dist build
log=build/deno-compile.log
# --include: data/tpm-ca/ is read at run time from beside src/ (src/registrar/default_tpm_ca.ts).
if scripts/deno compile --allow-all --quiet --include data/tpm-ca --output "$out" src/main.ts >"$log" 2>&1; then
  # A base that is not denort (deno itself) yields a copy of Deno that ignores the embedded program.
  if [ "$("$out" --version 2>&1 | head -n 1)" != "$(sed -n 's/^export const VERSION = "\(.*\)";/\1/p' src/main.ts)" ]; then
    rm -f "$out"
    echo "binary-deno: the result does not run keylime-ts: is DENORT_BIN a denort (not deno) of $version?" >&2
    exit 1
  fi
  echo "binary-deno: $out ($(du -m "$out" | cut -f1) MiB, Deno $version)"
  exit 0
fi
tail -n 5 "$log" >&2
if [ -z "${DENORT_BIN:-}" ]; then
  echo "binary-deno: deno compile needs denort $version, which could not be downloaded here." >&2
  echo "binary-deno: set DENORT_BIN to a denort $version executable (from Deno's release archives), e.g." >&2
  echo "  make binary-deno DENORT_BIN=/path/to/denort" >&2
else
  echo "binary-deno: deno compile failed with DENORT_BIN=$DENORT_BIN (is it denort $version?); see $log" >&2
fi
exit 1

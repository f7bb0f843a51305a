# Thin: bootstrap pinned tools, then hand over to deno tasks (deno.json).
DENO := scripts/deno

.PHONY: setup demo test check fmt lint bench binary binary-armv7 binary-deno
.DEFAULT_GOAL := test

setup:
	@scripts/setup.sh

## demo: the attestation flow on the embedded software TPM (nothing else needed)
demo: setup
	@$(DENO) run --allow-all src/main.ts demo

## test: the whole suite (unit, property, conformance against swtpm, tpm2-tools cross-checks)
test: setup
	@$(DENO) task test

check: setup
	@$(DENO) task check
	@$(DENO) task lint
	@$(DENO) fmt --check

fmt: setup
	@$(DENO) task fmt

lint: setup
	@$(DENO) task lint

bench: setup
	@$(DENO) task bench

## binary: dist/keylime-ts, one executable for x86_64 Linux (Node single-executable application; docs/binary.md)
binary: setup
	@node scripts/build_binary.mjs x64

## binary-armv7: dist/keylime-ts-armv7 for 32-bit ARM (Node 20.11: no registrar); needs qemu-user-static
binary-armv7: setup
	@node scripts/build_binary.mjs armv7

## binary-deno: dist/keylime-ts-deno with deno compile (needs denort: DENORT_BIN or a download)
binary-deno: setup
	@scripts/build_deno_binary.sh

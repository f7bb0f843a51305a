# Thin: bootstrap pinned tools, then hand over to deno tasks (deno.json).
DENO := scripts/deno

.PHONY: setup demo test check fmt lint bench
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

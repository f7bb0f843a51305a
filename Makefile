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

## install: dist/keylime-ts (from make binary), the keylime_agent link, the systemd unit, /etc/keylime/agent.conf
##   (kept when it exists); PREFIX=/usr/local DESTDIR= as usual
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
SYSCONFDIR ?= /etc
UNITDIR ?= $(PREFIX)/lib/systemd/system
BINARY ?= dist/keylime-ts
.PHONY: install
install:
	@test -f $(BINARY) || { echo "$(BINARY) is missing: run make binary first" >&2; exit 1; }
	install -D -m 0755 $(BINARY) $(DESTDIR)$(BINDIR)/keylime-ts
	ln -sfn keylime-ts $(DESTDIR)$(BINDIR)/keylime_agent
	install -d -m 0755 $(DESTDIR)$(UNITDIR)
	sed 's#/usr/bin/keylime_agent#$(BINDIR)/keylime_agent#' packaging/keylime_agent.service \
		> $(DESTDIR)$(UNITDIR)/keylime_agent.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/keylime_agent.service
	install -d -m 0755 $(DESTDIR)$(SYSCONFDIR)/keylime
	@if [ -e $(DESTDIR)$(SYSCONFDIR)/keylime/agent.conf ]; then \
		echo "keeping $(DESTDIR)$(SYSCONFDIR)/keylime/agent.conf (the example is packaging/agent.conf)"; \
	else \
		install -m 0600 packaging/agent.conf $(DESTDIR)$(SYSCONFDIR)/keylime/agent.conf; \
	fi

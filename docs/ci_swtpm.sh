#!/bin/sh
# CI: a software TPM with an EK certificate, the reference registrar and one agent registration, on free
# ports and in a temporary directory; everything started is stopped by its PID at the end.
set -eu
work=$(mktemp -d)
trap 'kill $(cat "$work"/*.pid 2>/dev/null) 2>/dev/null; rm -rf "$work"' EXIT

# swtpm, provisioned with an EK certificate by swtpm's local CA (its configuration kept in $work).
mkdir -p "$work/tpm" "$work/ca"
printf 'statedir = %s\nsigningkey = %s/signkey.pem\nissuercert = %s/issuercert.pem\ncertserial = %s/certserial\n' \
  "$work/ca" "$work/ca" "$work/ca" "$work/ca" > "$work/localca.conf"
printf 'create_certs_tool = %s\ncreate_certs_tool_config = %s\n' "$(command -v swtpm_localca)" "$work/localca.conf" \
  > "$work/setup.conf"
swtpm_setup --tpm2 --tpmstate "$work/tpm" --config "$work/setup.conf" --create-ek-cert >/dev/null
swtpm socket --tpm2 --tpmstate dir="$work/tpm" --flags not-need-init,startup-clear \
  --server type=unixio,path="$work/tpm.sock" --ctrl type=unixio,path="$work/tpm.sock.ctrl" &
echo $! > "$work/swtpm.pid"

# The registrar on free ports (port 0), trusting swtpm's CA; its listening line names the ports.
mkdir "$work/tpm-ca"
cp "$work/ca/issuercert.pem" "$work/ca/swtpm-localca-rootca-cert.pem" "$work/tpm-ca/"
keylime-ts registrar --port 0 --tls-port 0 --db "$work/registrar.sqlite" --tpm-ca-dir "$work/tpm-ca" \
  > "$work/registrar.log" 2>&1 &
echo $! > "$work/registrar.pid"
port=
for _ in $(seq 300); do   # up to a minute
  port=$(sed -n 's|.*listening on http://[^ ]*:\([0-9]*\) (agents).*|\1|p' "$work/registrar.log")
  [ -n "$port" ] && break
  sleep 0.2
done
[ -n "$port" ] || { cat "$work/registrar.log"; exit 1; }

# The agent registers and activates against it; exit 0 once the registrar says it is active.
KEYLIME_DIR="$work/agent" KEYLIME_AGENT_REGISTRAR_PORT="$port" KEYLIME_AGENT_UUID=hash_ek \
  keylime-ts agent register --tpm "swtpm:path=$work/tpm.sock" --json

#!/bin/bash
# Consul server boot script. seaport renders the JSON document it reads (DATA below) from
# Python data, so this file is plain bash that shellcheck checks as it is:
#   version          the pinned Consul release (HashiCorp's signed package repository)
#   repository       the repository file URL for Amazon Linux
#   config           the server's consul.json
#   secrets          name -> Secrets Manager ARN (gossip, management, agent, and one per ACL policy)
#   acl_policies     policy name -> rules; a token with the secret of the same name gets each
#   leader_timeout   seconds to wait for a leader before failing the boot loudly
#   tls              the CA and this server's certificate (PEM); its key is the secret server_key
set -euo pipefail

DATA=/etc/seaport/consul-server.json
log() { echo "seaport-consul: $*" >&2; }
fail() { log "FAILED: $*"; exit 1; }
value() { jq -er "$1" "$DATA"; }

dnf install -y dnf-plugins-core jq
version="$(value .version)"
dnf config-manager --add-repo "$(value .repository)"
dnf install -y "consul-$version"

# Each secret into a variable, checked: an empty key or token must stop the boot, not be written.
read_secret() {
  local arn value
  arn="$(value ".secrets.$1")"
  value="$(aws secretsmanager get-secret-value --secret-id "$arn" --query SecretString --output text)" \
    || fail "cannot read secret $1 ($arn)"
  if [ -z "$value" ] || [ "$value" = "None" ]; then fail "secret $1 ($arn) is empty"; fi
  printf '%s' "$value"
}
gossip_key="$(read_secret gossip)"
management_token="$(read_secret management)"
agent_token="$(read_secret agent)"

install -d -o consul -g consul -m 0750 /opt/consul /etc/consul.d /etc/consul.d/acl /etc/consul.d/tls
jq .config "$DATA" > /etc/consul.d/consul.json
# TLS for RPC and the HTTPS API: certificates from the data, the key from Secrets Manager (checked like the rest).
if [ "$(jq -r '.tls.certificate // empty' "$DATA")" != "" ]; then
  server_key="$(read_secret server_key)"
  jq -e -j .tls.ca "$DATA" > /etc/consul.d/tls/ca.pem
  jq -e -j .tls.certificate "$DATA" > /etc/consul.d/tls/server.pem
  (umask 077; printf '%s\n' "$server_key" > /etc/consul.d/tls/server-key.pem)
  chown consul:consul /etc/consul.d/tls/*.pem
  chmod 0640 /etc/consul.d/tls/ca.pem /etc/consul.d/tls/server.pem
  chmod 0600 /etc/consul.d/tls/server-key.pem
fi
# Some packaged units carry ConditionFileNotEmpty=/etc/consul.d/consul.hcl: keep that file, valid and
# not empty, and clear the condition with a drop-in, so systemd never skips the unit silently.
printf '# seaport: the configuration is in consul.json and secrets.json\n' > /etc/consul.d/consul.hcl
install -d /etc/systemd/system/consul.service.d
printf '[Unit]\nConditionFileNotEmpty=\n' > /etc/systemd/system/consul.service.d/seaport.conf
jq -n --arg encrypt "$gossip_key" --arg management "$management_token" --arg agent "$agent_token" \
  '{encrypt: $encrypt, acl: {tokens: {initial_management: $management, agent: $agent}}}' \
  > /etc/consul.d/secrets.json
chown consul:consul /etc/consul.d/*.json /etc/consul.d/consul.hcl
chmod 0640 /etc/consul.d/*.json
systemctl daemon-reload
systemctl enable --now consul

# ACL policies and tokens with the secret ids the program generated. Idempotent: every server
# runs this once a leader is elected; whichever comes first creates them.
export CONSUL_HTTP_TOKEN="$management_token"
deadline=$((SECONDS + $(value .leader_timeout)))
until leader="$(curl -sf http://127.0.0.1:8500/v1/status/leader)" && [ -n "$leader" ] && [ "$leader" != '""' ]; do
  [ "$SECONDS" -lt "$deadline" ] || fail "no Consul leader after $(value .leader_timeout) s (see journalctl -u consul)"
  sleep 5
done

ensure_token() {
  local policy="$1" token="$2"
  consul acl policy read -name "$policy" >/dev/null 2>&1 \
    || consul acl policy create -name "$policy" -rules "@/etc/consul.d/acl/$policy.json" >/dev/null \
    || consul acl policy read -name "$policy" >/dev/null
  CONSUL_HTTP_TOKEN="$token" consul acl token read -self >/dev/null 2>&1 \
    || consul acl token create -secret "$token" -policy-name "$policy" -description "seaport $policy" >/dev/null \
    || CONSUL_HTTP_TOKEN="$token" consul acl token read -self >/dev/null
}

for policy in $(jq -r '.acl_policies | keys[]' "$DATA"); do
  jq ".acl_policies[\"$policy\"]" "$DATA" > "/etc/consul.d/acl/$policy.json"
  token="$(read_secret "$policy")"
  ensure_token "$policy" "$token"
done
log "ready"

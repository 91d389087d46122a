"""Consul's configuration as data: ports, ACL policies, server and agent configs, the servers' boot script."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from . import rules

HASHICORP_REPO = "https://rpm.releases.hashicorp.com/AmazonLinux/hashicorp.repo"
JOIN_TAG_KEY = "seaport-consul-join"
LEADER_TIMEOUT_SECONDS = 900
SERVER_SCRIPT = Path(__file__).with_name("templates") / "consul-server.sh"
DATA_PATH = "/etc/seaport/consul-server.json"

# Gossip and RPC bind to the IPv4 address of the interface with the default route (the ENI): an
# ECS instance has more private addresses (docker0), and Consul refuses to guess between them.
BIND_ADDRESS = '{{ GetDefaultInterfaces | include "type" "IPv4" | limit 1 | attr "address" }}'

# (port, protocol, purpose): what the servers admit from the cluster's instances and from each other. Agents
# talk to servers over RPC (TLS) and gossip (encrypted) only: the servers' HTTP API listens on loopback, their
# HTTPS API and UI (8501) are reached through an SSM port forward on the server itself, and nobody needs their DNS.
SERVER_PORTS = [
    (8300, "tcp", "Consul server RPC (TLS)"),
    (8301, "tcp", "Consul LAN gossip"),
    (8301, "udp", "Consul LAN gossip"),
]
HTTPS_PORT = 8501
TLS_DIR = "/etc/consul.d/tls"
# The agents' CA certificate arrives in this variable (a public certificate, plain environment).
CA_VARIABLE = "CONSUL_CA_PEM"
AGENT_CA_FILE = "/consul/config/ca.pem"
# Servers also gossip with each other over the WAN pool, even in a single datacenter.
SERVER_TO_SERVER_PORTS = [(8302, "tcp", "Consul WAN gossip"), (8302, "udp", "Consul WAN gossip")]
# Client agents on the ECS instances serve only LAN gossip to others; their HTTP API is local.
AGENT_PORTS = [(8301, "tcp", "Consul LAN gossip"), (8301, "udp", "Consul LAN gossip")]

# ACL policies (Consul accepts rules as JSON). Default policy is deny: each token gets only its own.
ACL_POLICIES: dict[str, dict[str, Any]] = {
    # client agents register their own node and read the catalog
    "agent": {"node_prefix": {"": {"policy": "write"}}, "service_prefix": {"": {"policy": "read"}}},
    # the registrar sidecar registers and deregisters services on its agent (service:write is all it takes)
    "registrar": {"service_prefix": {"": {"policy": "write"}}},
    # apps look healthy instances up (/v1/health/service needs service and node read)
    "reader": {"service_prefix": {"": {"policy": "read"}}, "node_prefix": {"": {"policy": "read"}}},
    # clustered broker nodes: RabbitMQ's Consul peer discovery registers each node as "rabbitmq", lists the
    # others, and takes a startup lock (a session and a key under rabbitmq/) so nodes don't form two clusters
    "broker": {
        "service": {"rabbitmq": {"policy": "write"}},
        "service_prefix": {"": {"policy": "read"}},
        "node_prefix": {"": {"policy": "read"}},
        "key_prefix": {"rabbitmq/": {"policy": "write"}},
        "session_prefix": {"": {"policy": "write"}},
    },
}

# Tokens the apps' containers hold: they look services up or register them, and nothing more.
APP_TOKENS = ("reader", "registrar")

# The official image's entry point reads CONSUL_LOCAL_CONFIG; the two secrets arrive as
# environment variables (ECS secrets) and are written to a file the agent reads, never logged.
# The official image's ``consul`` user (Alpine's first system uid; the UBI image sets it explicitly). The agent
# runs as this uid (CONSUL_UID), which the instances keep away from the instance metadata service.
AGENT_UID = 100
# Where the entry point and AGENT_COMMAND write the agent's configuration: a tmpfs on a read-only root.
AGENT_CONFIG_DIR = "/consul/config"
AGENT_COMMAND = [
    "/bin/sh",
    "-c",
    'printf \'{"encrypt": "%s", "acl": {"tokens": {"agent": "%s"}}}\' '
    '"$CONSUL_GOSSIP_ENCRYPTION" "$CONSUL_AGENT_ACL" > /consul/config/secrets.json '
    f'&& printf "%s\\n" "${CA_VARIABLE}" > {AGENT_CA_FILE} '
    "&& unset CONSUL_GOSSIP_ENCRYPTION CONSUL_AGENT_ACL "
    "&& exec docker-entrypoint.sh agent",
]
# Healthy only while the cluster has a leader: /v1/status/leader answers "" (and 200) without one.
AGENT_HEALTH_CHECK = ["CMD-SHELL", "curl -sf http://127.0.0.1:8500/v1/status/leader | grep -q ':'"]


def uuid4(hex_digits: str) -> str:
    """32 random hex digits as a version-4 UUID (the form Consul requires of a token's secret id)."""
    digits = list(hex_digits[:32].lower())
    digits[12] = "4"  # version 4
    digits[16] = "89ab"[int(digits[16], 16) % 4]  # RFC 4122 variant
    text = "".join(digits)
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:32]}"


def auto_join(region: str, tag_value: str) -> list[str]:
    """Cloud auto-join: every agent finds the servers by this EC2 tag through ec2:DescribeInstances."""
    return [f"provider=aws region={region} tag_key={JOIN_TAG_KEY} tag_value={tag_value}"]


def server_config(count: int, datacenter: str, retry_join: list[str]) -> dict[str, Any]:
    """The servers' consul.json (the secrets go in a separate file written at boot)."""
    return {
        "datacenter": datacenter,
        "server": True,
        "bootstrap_expect": count,
        "data_dir": "/opt/consul",
        "retry_join": retry_join,
        "bind_addr": BIND_ADDRESS,
        # Agents, the UI load balancer and DNS clients connect; security groups and ACLs decide who may.
        "client_addr": "0.0.0.0",  # noqa: S104
        # Plain HTTP on loopback only (the boot script, the CLI on the host); HTTPS (8501) for the UI and remote CLI.
        "addresses": {"http": "127.0.0.1"},
        "ports": {"https": HTTPS_PORT},
        "tls": {
            "defaults": {
                "ca_file": f"{TLS_DIR}/ca.pem",
                "cert_file": f"{TLS_DIR}/server.pem",
                "key_file": f"{TLS_DIR}/server-key.pem",
                "verify_incoming": True,
                "verify_outgoing": True,
            },
            "internal_rpc": {"verify_server_hostname": True},
            # browsers and the CLI have no client certificate; ACL tokens guard the HTTPS API
            "https": {"verify_incoming": False},
        },
        # Client agents get their certificates from the servers (signed by the cluster's connect CA).
        "auto_encrypt": {"allow_tls": True},
        "ui_config": {"enabled": True},
        "acl": {"enabled": True, "default_policy": "deny", "enable_token_persistence": True},
        "autopilot": {"cleanup_dead_servers": True},
        "performance": {"raft_multiplier": 1},
        "disable_update_check": True,
        "log_level": "INFO",
    }


def agent_config(datacenter: str, retry_join: list[str]) -> dict[str, Any]:
    """The client agents' configuration (CONSUL_LOCAL_CONFIG of the official image)."""
    return {
        "datacenter": datacenter,
        "server": False,
        "retry_join": retry_join,
        "bind_addr": BIND_ADDRESS,
        # The HTTP API listens on loopback (the instance) and docker0 (bridge-mode containers), chosen by
        # interface name with a go-sockaddr template; nothing else on the network can reach it.
        "client_addr": '{{ GetAllInterfaces | include "name" "^(lo|docker0)$" | include "type" "IPv4" '
        '| join "address" " " }}',
        "acl": {"enabled": True, "default_policy": "deny", "enable_token_persistence": True},
        # RPC to the servers over TLS: the servers' certificate is checked (name server.<dc>.consul), and the
        # agent's own certificate comes from the servers (auto-encrypt).
        "tls": {
            "defaults": {"ca_file": AGENT_CA_FILE, "verify_outgoing": True},
            "internal_rpc": {"verify_server_hostname": True},
        },
        "auto_encrypt": {"tls": True},
        "leave_on_terminate": True,
        "disable_update_check": True,
        "log_level": "INFO",
    }


def server_user_data(
    version: str, config: dict[str, Any], secret_arns: dict[str, str], tls: dict[str, str] | None = None
) -> str:
    """The servers' boot script: the template file, preceded by the JSON document it reads.

    ``tls`` holds the CA and server certificates (PEM; public); the server's key is the secret ``server_key``."""
    data = {
        "version": version,
        "repository": HASHICORP_REPO,
        "config": config,
        "secrets": secret_arns,
        "acl_policies": ACL_POLICIES,
        "leader_timeout": LEADER_TIMEOUT_SECONDS,
        "tls": tls or {},
    }
    for policy in APP_TOKENS:
        problems = rules.consul_app_token_problems(ACL_POLICIES[policy])
        if problems:
            raise ValueError(f"the {policy} ACL policy is too broad: {'; '.join(problems)}")
    shebang, script = SERVER_SCRIPT.read_text().split("\n", 1)
    return (
        f"{shebang}\n"
        "# seaport: the data the script below reads (no secret values; secrets are read by ARN at boot).\n"
        f"mkdir -p {Path(DATA_PATH).parent}\n"
        f"cat > {DATA_PATH} <<'SEAPORT_DATA'\n{json.dumps(data, indent=2, sort_keys=True)}\nSEAPORT_DATA\n"
        f"{script}"
    )

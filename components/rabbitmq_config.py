"""The RabbitMQ configuration seaport runs its own broker with, as data: rabbitmq.conf, plugins, definitions.

The official image is started by a small wrapper (``start_command``) that
writes these files from the task's environment and secrets, then hands over
to the image's entry point, so nothing is baked into an image and the files
change with the task definition:

- ``rabbitmq.conf`` (``conf.d/90-seaport.conf``, plain environment): an
  absolute memory high watermark and free-disk limit derived from the task's
  memory (RabbitMQ's defaults are relative to the *host's* memory, so a
  container with a hard limit is OOM-killed before it throttles publishers),
  and where the definitions are;
- the definitions (a Secrets Manager secret, since they hold the password
  hash): the apps' user and permissions, the work queue, its dead-letter queue
  and the broker policy from ``seaport.contract.broker``, imported at boot
  whenever they changed, so a changed policy or a rotated password applies on
  the next restart.

A clustered node also speaks TLS to its peers and to the CLI tools (Erlang
distribution over TLS, ``-proto_dist inet_tls``): the wrapper writes the
distribution's TLS options (``inter_node_tls_config``) next to the broker's
certificate, and ``cluster_environment`` points the server and the CLI tools
(the container's health check among them) at that file.

A clustered node's wrapper also starts a small loop in the background
(``forget_departed_script``, templates/rabbitmq-forget-departed.sh) that
forgets a member gone for good (down, and no longer listed by peer discovery,
for ``FORGET_GRACE_SECONDS``) with the public CLI commands, so the cluster and
its quorum queues make room for the node that replaces it.

Keys that RabbitMQ 4.x knows and 3.10 (the broker the tests boot) refuses
(continuous membership reconciliation of quorum queues, from 3.13) are kept in
a second file (``conf.d/91-seaport-4x.conf``), so a test can boot the first
file on 3.10 and say what it left out.
"""

import base64
import hashlib
import hmac
import json
import re
from pathlib import Path
from typing import Any

from .contract import broker as contract

CONF_DIR = "/etc/rabbitmq/conf.d"
CONF_FILE = f"{CONF_DIR}/90-seaport.conf"
CONF_4X_FILE = f"{CONF_DIR}/91-seaport-4x.conf"
DEFINITIONS_FILE = "/etc/rabbitmq/seaport-definitions.json"
# What share of the container's memory RabbitMQ may use before it blocks publishers: the rest is
# headroom for the Erlang VM (garbage collection can briefly double a process's heap) and the OS.
MEMORY_WATERMARK_SHARE = 0.5
DISK_FREE_LIMIT = "2GB"
# What a broker calls its cluster when it is not told (broker.py names it after the stack).
DEFAULT_CLUSTER_NAME = "seaport"
_CLUSTER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")

# Environment variables the wrapper reads (the definitions, the Consul token and the Erlang cookie come in
# as ECS secrets; the wrapper writes them into files only the rabbitmq user can read, and unsets them).
CONF_VARIABLE = "SEAPORT_RABBITMQ_CONF"
CONF_4X_VARIABLE = "SEAPORT_RABBITMQ_CONF_4X"
DEFINITIONS_VARIABLE = "SEAPORT_RABBITMQ_DEFINITIONS"
CONSUL_TOKEN_VARIABLE = "SEAPORT_CONSUL_TOKEN"  # noqa: S105 - the name of a variable
COOKIE_VARIABLE = "SEAPORT_ERLANG_COOKIE"
SECRET_CONF_FILE = f"{CONF_DIR}/92-seaport-secrets.conf"
COOKIE_FILE = "/var/lib/rabbitmq/.erlang.cookie"
PLUGINS_FILE = "/etc/rabbitmq/enabled_plugins"
# Ports of a clustered node (host network): clients, then what nodes and CLI tools use between instances.
CLUSTER_PORTS = [
    (4369, "tcp", "RabbitMQ epmd (peer discovery of Erlang nodes)"),
    (25672, "tcp", "RabbitMQ inter-node distribution"),
]
CLI_PORTS = (35672, 35682)  # rabbitmqctl and rabbitmq-diagnostics talking to other nodes
PEER_DISCOVERY_PLUGIN = "rabbitmq_peer_discovery_consul"
# The official image's rabbitmq user (useradd --uid 999), which the instances keep away from the instance
# metadata service (a clustered node runs on the host's network).
RABBITMQ_UID = 999

# TLS: the broker's certificate (public, plain environment) and key (a secret) become files of this directory.
TLS_DIR = "/etc/rabbitmq/tls"
CA_VARIABLE = "SEAPORT_RABBITMQ_CA_PEM"
CERT_VARIABLE = "SEAPORT_RABBITMQ_CERT_PEM"
KEY_VARIABLE = "SEAPORT_RABBITMQ_KEY_PEM"

# Erlang distribution over TLS (clustered nodes): the options file the wrapper writes, and the variable it comes in.
INTER_NODE_TLS_FILE = "/etc/rabbitmq/inter_node_tls.config"
INTER_NODE_TLS_VARIABLE = "SEAPORT_RABBITMQ_INTER_NODE_TLS"
# The start scripts' variables for the server's and the CLI tools' Erlang VM arguments (rabbitmq-env; the CLI
# tools include the container's health check, ``rabbitmq-diagnostics``, and whatever an operator runs).
SERVER_ERL_ARGS_VARIABLE = "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS"
CTL_ERL_ARGS_VARIABLE = "RABBITMQ_CTL_ERL_ARGS"


# Members gone for good. RabbitMQ's own clean-up is off (cluster_conf: node_cleanup.only_log_warning) because it
# evicts a member that is merely restarting; instead each clustered node runs this script in the background, which
# forgets a member that has been down *and* missing from peer discovery for a grace period (the template's header
# says how a round decides). Continuous membership reconciliation (4.x) then adds the replacement to the queues.
FORGET_SCRIPT_TEMPLATE = Path(__file__).with_name("templates") / "rabbitmq-forget-departed.sh"
FORGET_SCRIPT_FILE = "/etc/rabbitmq/seaport-forget-departed.sh"
FORGET_SCRIPT_END = "SEAPORT_FORGET_DEPARTED"  # the here-document's delimiter in the wrapper
# Far longer than a node is away when it restarts on its own instance (a deployment, a crash, a reboot: a few
# minutes at most), during which discovery no longer lists it (it deregisters when it stops, or its 30 s TTL check
# fails). A node away longer is forgotten and cannot rejoin with its data (README, Operating, "Replacing a node").
FORGET_GRACE_SECONDS = 600
# Each round costs a CLI call (an Erlang VM for a second or two of CPU); more only while a member is down.
FORGET_INTERVAL_SECONDS = 120
# When each member was first seen down and unlisted: lost with the container, which only delays a forget.
FORGET_STATE_FILE = "/tmp/seaport-departed-members"  # noqa: S108 - the container's own /tmp, root's file


def forget_departed_script(
    grace_seconds: int = FORGET_GRACE_SECONDS,
    interval_seconds: int = FORGET_INTERVAL_SECONDS,
    state_file: str = FORGET_STATE_FILE,
) -> str:
    """The loop that forgets departed members (POSIX sh), with these settings as its defaults."""
    values = {"GRACE_SECONDS": str(int(grace_seconds)), "INTERVAL_SECONDS": str(int(interval_seconds))}
    if not state_file or any(c.isspace() or c in "\"'$`" for c in state_file):
        raise ValueError(f"{state_file!r}: the state file's path goes into the script as it is")
    values["STATE_FILE"] = state_file
    text = FORGET_SCRIPT_TEMPLATE.read_text()
    for name, value in values.items():
        placeholder = f"@{name}@"
        if text.count(placeholder) != 1:
            raise ValueError(f"{FORGET_SCRIPT_TEMPLATE.name}: {placeholder} is not there exactly once")
        text = text.replace(placeholder, value)
    return text


def start_command(*, clustered: bool) -> list[str]:
    """The container's command: write the configuration files from the environment, drop the secrets from
    the environment, then start the image's entry point (which switches to the rabbitmq user).

    Secrets (definitions, TLS key, and for a clustered node the Consul token and the Erlang cookie) end up in
    files only the rabbitmq user can read, never in the server's environment or arguments.

    A clustered node's wrapper also writes ``forget_departed_script`` (root's, not the rabbitmq user's) and starts
    it in the background once the secrets are out of the environment, right before the ``exec``: it is a child of
    the node's process and ends with it."""

    def write(variable: str, path: str, template: str = "%s\\n") -> str:
        return f'printf "{template}" "${{{variable}}}" > {path}'

    steps = [
        "set -eu",
        "umask 027",
        f"mkdir -p {TLS_DIR}",
        write(CONF_VARIABLE, CONF_FILE),
        f'printf "%s\\n" "${{{CONF_4X_VARIABLE}:-}}" > {CONF_4X_FILE}',
        write(DEFINITIONS_VARIABLE, DEFINITIONS_FILE),
        write(CA_VARIABLE, f"{TLS_DIR}/ca.pem"),
        write(CERT_VARIABLE, f"{TLS_DIR}/cert.pem"),
        f"(umask 077; {write(KEY_VARIABLE, f'{TLS_DIR}/key.pem')})",
    ]
    owned = [
        CONF_FILE,
        CONF_4X_FILE,
        DEFINITIONS_FILE,
        TLS_DIR,
        f"{TLS_DIR}/ca.pem",
        f"{TLS_DIR}/cert.pem",
        f"{TLS_DIR}/key.pem",
    ]
    secret_variables = [DEFINITIONS_VARIABLE, KEY_VARIABLE]
    if clustered:
        steps += [
            f"(umask 077; {write(INTER_NODE_TLS_VARIABLE, INTER_NODE_TLS_FILE)})",
            write(CONSUL_TOKEN_VARIABLE, SECRET_CONF_FILE, "cluster_formation.consul.acl_token = %s\\n"),
            f'printf "[rabbitmq_management,{PEER_DISCOVERY_PLUGIN}].\\n" > {PLUGINS_FILE}',
            f"(umask 077; {write(COOKIE_VARIABLE, COOKIE_FILE, '%s')})",
            f"chmod 0400 {COOKIE_FILE}",
        ]
        owned += [INTER_NODE_TLS_FILE, SECRET_CONF_FILE, PLUGINS_FILE, COOKIE_FILE]
        secret_variables += [CONSUL_TOKEN_VARIABLE, COOKIE_VARIABLE]
    steps += [
        f"chown rabbitmq:rabbitmq {' '.join(owned)}",
        f"unset {' '.join(secret_variables)}",
    ]
    script = ""
    if clustered:
        # The script is a here-document whose text follows the whole line (sh reads it before running the line).
        script = forget_departed_script()
        if FORGET_SCRIPT_END in script.splitlines():
            raise ValueError(f"the script has a line {FORGET_SCRIPT_END!r}, which would end the here-document")
        steps += [f"cat > {FORGET_SCRIPT_FILE} <<'{FORGET_SCRIPT_END}'", f'{{ sh {FORGET_SCRIPT_FILE} loop "$$" & }}']
        script = f"\n{script}{FORGET_SCRIPT_END}\n"
    steps += ["exec docker-entrypoint.sh rabbitmq-server"]
    return ["/bin/sh", "-c", "; ".join(steps) + script]


START_COMMAND = start_command(clustered=False)
CLUSTER_START_COMMAND = start_command(clustered=True)


def inter_node_tls_config(
    cacertfile: str = f"{TLS_DIR}/ca.pem",
    certfile: str = f"{TLS_DIR}/cert.pem",
    keyfile: str = f"{TLS_DIR}/key.pem",
    peer_name: str = contract.SERVICE_NAME,
) -> str:
    """The TLS options of Erlang distribution (``-ssl_dist_optfile``): what a node accepts from a peer or a CLI tool
    that connects to it (``server``) and what it, or a CLI tool, asks of the node it connects to (``client``).

    Both ends present the broker's certificate and accept the other end only if its certificate chains to the
    stack's internal CA (the only CA in ``cacertfile``) *and* names ``peer_name`` (``rabbitmq``, which only the
    broker's certificate names). A node is dialled by its host name (``rabbit@<instance FQDN>``), which no
    certificate names, so the client side's host name check is replaced, not switched off: its ``match_fun``
    accepts the name ``rabbitmq`` and nothing else, whatever host was dialled. The server side checks the same
    name in a ``verify_fun`` that fails every chain error as ``verify_peer`` does. OTP evaluates this file as an
    Erlang expression (``ssl_dist_sup``), so the funs need no module of their own. TLS 1.2 is what OTP chooses for
    distribution when the file names no versions; it is named here so that it shows."""

    paths = {"cacertfile": cacertfile, "certfile": certfile, "keyfile": keyfile}
    files = ",\n   ".join(f'{{{key}, "{_erlang_string(path)}"}}' for key, path in paths.items())
    name = _erlang_string(peer_name)
    return f"""%% coding: utf-8
%% Erlang distribution over TLS (RabbitMQ nodes and CLI tools), written by seaport's wrapper.
%% Both ends accept only a certificate that chains to the internal CA and names "{name}".
[{{server,
  [{files},
   {{verify, verify_peer}},
   {{fail_if_no_peer_cert, true}},
   {{verify_fun,
    {{fun (_, {{bad_cert, _}} = Reason, _) -> {{fail, Reason}};
         (_, {{extension, _}}, State) -> {{unknown, State}};
         (_, valid, State) -> {{valid, State}};
         (Cert, valid_peer, State) ->
             case public_key:pkix_verify_hostname(Cert, [{{dns_id, "{name}"}}]) of
                 true -> {{valid, State}};
                 false -> {{fail, {{bad_cert, hostname_check_failed}}}}
             end
     end, []}}}},
   {{versions, ['tlsv1.2']}}]}},
 {{client,
  [{files},
   {{verify, verify_peer}},
   {{customize_hostname_check, [{{match_fun, fun (_, {{dNSName, "{name}"}}) -> true; (_, _) -> false end}}]}},
   {{versions, ['tlsv1.2']}}]}}].
"""


def distribution_erl_args(options_file: str = INTER_NODE_TLS_FILE) -> str:
    """Erlang VM arguments that make distribution TLS-only with the options in ``options_file`` (no spaces: the
    start scripts split these arguments on blanks)."""
    if any(c.isspace() for c in options_file):
        raise ValueError(f"{options_file!r}: the start scripts split Erlang arguments on blanks")
    return f"-proto_dist inet_tls -ssl_dist_optfile {options_file}"


def cluster_environment() -> dict[str, str]:
    """What a clustered node's container environment adds for TLS between nodes: the options file's text (which
    the wrapper writes to ``INTER_NODE_TLS_FILE``), and the Erlang arguments of the server and of every CLI tool
    (``rabbitmqctl``, ``rabbitmq-diagnostics``: a node that speaks TLS refuses plain distribution)."""
    args = distribution_erl_args()
    return {
        INTER_NODE_TLS_VARIABLE: inter_node_tls_config(),
        SERVER_ERL_ARGS_VARIABLE: args,
        CTL_ERL_ARGS_VARIABLE: args,
    }


def _erlang_string(text: str) -> str:
    """``text`` escaped for an Erlang string literal."""
    return text.replace("\\", "\\\\").replace('"', '\\"')


def memory_watermark_mib(task_memory_mib: int) -> int:
    """The absolute memory high watermark for a node whose container may use ``task_memory_mib``."""
    return int(task_memory_mib * MEMORY_WATERMARK_SHARE)


def conf(
    task_memory_mib: int, amqps_port: int = contract.AMQPS_PORT, cluster_name: str = DEFAULT_CLUSTER_NAME
) -> dict[str, str]:
    """rabbitmq.conf keys every supported RabbitMQ (3.10 and 4.x) accepts: limits, definitions, AMQP over TLS
    only (plaintext 5672 is closed) with the certificate the internal CA issued for ``rabbitmq``, and the
    cluster's name (letters, digits, ``.``, ``_``, ``-``; ValueError otherwise)."""
    if not _CLUSTER_NAME.fullmatch(cluster_name):
        raise ValueError(
            f"cluster_name {cluster_name!r}: use up to 200 letters, digits, '.', '_' or '-', starting with a letter"
            " or digit"
        )
    return {
        # One name for every node, and no DNS in the way of a connection: unset, a node derives the name it tells
        # each new client from its host name, which it looks up as it opens connections, so a connection waits
        # for that lookup (seen here: 5-s stalls every ~100 connections where DNS did not answer).
        "cluster_name": cluster_name,
        "vm_memory_high_watermark.absolute": f"{memory_watermark_mib(task_memory_mib)}MiB",
        "disk_free_limit.absolute": DISK_FREE_LIMIT,
        # The definitions file through the import backend, not the classic ``load_definitions`` key: any other
        # ``definitions.*`` key (such as skip_if_unchanged) makes RabbitMQ (3.10 and 4.x) refuse to boot
        # without ``definitions.import_backend``.
        "definitions.import_backend": "local_filesystem",
        "definitions.local.path": DEFINITIONS_FILE,
        # Re-import only when the file changed (a new password or policy changes it): a restarted node of a
        # cluster does not re-run an import the other nodes already hold.
        "definitions.skip_if_unchanged": "true",
        # Clients that vanish without closing are noticed within a minute.
        "heartbeat": "30",
        "listeners.tcp": "none",
        "listeners.ssl.default": str(amqps_port),
        "ssl_options.cacertfile": f"{TLS_DIR}/ca.pem",
        "ssl_options.certfile": f"{TLS_DIR}/cert.pem",
        "ssl_options.keyfile": f"{TLS_DIR}/key.pem",
        "ssl_options.verify": "verify_none",  # clients prove who they are with their password, not a certificate
        "ssl_options.fail_if_no_peer_cert": "false",
        "ssl_options.versions.1": "tlsv1.3",
        "ssl_options.versions.2": "tlsv1.2",
        # The management API (used only from inside the container) never listens beyond loopback.
        "management.tcp.ip": "127.0.0.1",
    }


def cluster_conf(
    task_memory_mib: int,
    nodes: int,
    consul_host: str = "localhost",
    consul_port: int = 8500,
    service: str = contract.SERVICE_NAME,
    amqps_port: int = contract.AMQPS_PORT,
    cluster_name: str = DEFAULT_CLUSTER_NAME,
) -> dict[str, str]:
    """rabbitmq.conf of a clustered node (3.10 and 4.x): ``conf`` plus cluster formation through the
    instance's Consul agent; nodes missing from Consul are logged, not removed.

    The node registers itself in Consul as ``service`` (what the apps look up) with a TTL check the plugin
    keeps passing; the Consul ACL token is written by the wrapper into a separate file."""
    return {
        **conf(task_memory_mib, amqps_port, cluster_name),
        "cluster_formation.peer_discovery_backend": "consul",
        "cluster_formation.consul.host": consul_host,
        "cluster_formation.consul.port": str(consul_port),
        "cluster_formation.consul.scheme": "http",
        "cluster_formation.consul.svc": service,
        "cluster_formation.consul.svc_port": str(amqps_port),
        # Register the instance's host name (host network) as the address clients connect to. Peers find each
        # other's node name (rabbit@<instance FQDN>, RABBITMQ_USE_LONGNAME) in the registration's metadata
        # (4.x; 3.10 derived it from the address, which needs the node named after the host name too).
        "cluster_formation.consul.svc_addr_auto": "true",
        "cluster_formation.consul.svc_addr_use_nodename": "false",
        # The plugin passes the check every 15 s whatever this says (3.10); anything lower would flap.
        "cluster_formation.consul.svc_ttl": "30",
        "cluster_formation.consul.deregister_after": "90",
        # The first node waits for this many peers before it forms the cluster alone.
        "cluster_formation.target_cluster_size_hint": str(nodes),
        # Nodes missing from Consul are only logged, never removed: a node deregisters when it stops (rabbit's
        # prep_stop) and its TTL check fails while it restarts, so forced removal would evict every node that a
        # deployment or a reboot restarts, and an evicted node cannot rejoin with its data. A node gone for good
        # (down and unlisted for FORGET_GRACE_SECONDS) is forgotten by the wrapper's background loop
        # (forget_departed_script); membership reconciliation then regrows the queues.
        "cluster_formation.node_cleanup.interval": "60",
        "cluster_formation.node_cleanup.only_log_warning": "true",
        # The side of a network split without a majority stops serving instead of diverging.
        "cluster_partition_handling": "pause_minority",
    }


def cluster_conf_4x(nodes: int) -> dict[str, str]:
    """Keys of a clustered node that 3.13+ knows and 3.10 refuses: keep every quorum queue at ``nodes``
    replicas, so a replacement node is added to the queues' membership and a node forgotten by the cluster is
    removed from it (continuous membership reconciliation)."""
    return {
        "quorum_queue.continuous_membership_reconciliation.enabled": "true",
        "quorum_queue.continuous_membership_reconciliation.target_group_size": str(nodes),
        "quorum_queue.continuous_membership_reconciliation.auto_remove": "true",
    }


def render(keys: dict[str, str]) -> str:
    """``key = value`` lines, as rabbitmq.conf is written."""
    return "".join(f"{key} = {value}\n" for key, value in keys.items())


def password_hash(password: str, salt_key: str) -> str:
    """RabbitMQ's ``rabbit_password_hashing_sha256`` hash: base64(salt + sha256(salt + password)).

    The 4-byte salt is derived from the password and ``salt_key`` (not random), so the same password always
    gives the same definitions and an unchanged stack changes nothing."""
    salt = hmac.new(salt_key.encode(), password.encode(), hashlib.sha256).digest()[:4]
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


def definitions(
    user: str,
    password: str,
    queue: str,
    queue_type: str,
    delivery_limit: int = contract.DEFAULT_DELIVERY_LIMIT,
) -> dict[str, Any]:
    """The definitions seaport's broker imports at boot: the apps' user, the queues and the policy."""
    document = contract.definitions(queue, queue_type, delivery_limit)
    document["users"] = [
        {
            "name": user,
            "password_hash": password_hash(password, f"seaport:{user}"),
            "hashing_algorithm": "rabbit_password_hashing_sha256",
            "tags": [],  # publish and consume; no management UI rights
        }
    ]
    document["permissions"] = [
        {"user": user, "vhost": vhost["name"], "configure": ".*", "write": ".*", "read": ".*"}
        for vhost in document["vhosts"]
    ]
    return document


def definitions_json(user: str, password: str, queue: str, queue_type: str) -> str:
    return json.dumps(definitions(user, password, queue, queue_type), sort_keys=True)

"""The RabbitMQ configuration seaport runs its own broker with, as data: rabbitmq.conf, plugins, definitions.

The official image is started by a small wrapper (``START_COMMAND``) that
writes these files from the task's environment and secrets, then hands over
to the image's entry point, so nothing is baked into an image and the files
change with the task definition:

- ``rabbitmq.conf`` (``conf.d/90-seaport.conf``, plain environment): an
  absolute memory high watermark and free-disk limit derived from the task's
  memory (RabbitMQ's defaults are relative to the *host's* memory, so a
  container with a hard limit is OOM-killed before it throttles publishers),
  and ``load_definitions``;
- the definitions (a Secrets Manager secret, since they hold the password
  hash): the apps' user and permissions, the work queue, its dead-letter queue
  and the broker policy from ``seaport.contract.broker``, imported at every
  boot, so a changed policy or a rotated password applies on the next restart.

Keys that RabbitMQ 4.x knows and 3.10 (the broker the tests boot) does not
are kept in a second file (``conf.d/91-seaport-4x.conf``), so a test can boot
the first file on 3.10 and say what it left out.
"""

import base64
import hashlib
import hmac
import json
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

# Environment variables the wrapper reads (the definitions come in as an ECS secret).
CONF_VARIABLE = "SEAPORT_RABBITMQ_CONF"
CONF_4X_VARIABLE = "SEAPORT_RABBITMQ_CONF_4X"
DEFINITIONS_VARIABLE = "SEAPORT_RABBITMQ_DEFINITIONS"

START_COMMAND = [
    "/bin/sh",
    "-c",
    "set -eu; umask 027; "
    f'printf "%s\\n" "${CONF_VARIABLE}" > {CONF_FILE}; '
    f'printf "%s\\n" "${{{CONF_4X_VARIABLE}:-}}" > {CONF_4X_FILE}; '
    f'printf "%s\\n" "${DEFINITIONS_VARIABLE}" > {DEFINITIONS_FILE}; '
    f"chown rabbitmq:rabbitmq {CONF_FILE} {CONF_4X_FILE} {DEFINITIONS_FILE}; "
    f"unset {DEFINITIONS_VARIABLE}; "
    "exec docker-entrypoint.sh rabbitmq-server",
]


def memory_watermark_mib(task_memory_mib: int) -> int:
    """The absolute memory high watermark for a node whose container may use ``task_memory_mib``."""
    return int(task_memory_mib * MEMORY_WATERMARK_SHARE)


def conf(task_memory_mib: int) -> dict[str, str]:
    """rabbitmq.conf keys every supported RabbitMQ (3.10 and 4.x) accepts."""
    return {
        "vm_memory_high_watermark.absolute": f"{memory_watermark_mib(task_memory_mib)}MiB",
        "disk_free_limit.absolute": DISK_FREE_LIMIT,
        "load_definitions": DEFINITIONS_FILE,
        # Clients that vanish without closing are noticed within a minute.
        "heartbeat": "30",
    }


def conf_4x() -> dict[str, str]:
    """rabbitmq.conf keys only RabbitMQ 4.x accepts (an older node refuses to boot with them)."""
    return {
        # Re-import only when the file changed: a node's restart does not re-run an unchanged import.
        "definitions.skip_if_unchanged": "true",
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

"""The broker the tests run is the release they were asked to run, and running it in a root leaves no trace.

``make test`` runs RabbitMQ 4.3 from its Debian root (devtools.rabbitmq_root, ``SEAPORT_RABBITMQ_ROOT``);
``make test RABBITMQ=debian`` the machine's own package. A root that silently fell back to the machine's
server would make every broker test prove the wrong release.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import pika
import pytest

from devtools import rabbitmq, rabbitmq_root

pytestmark = pytest.mark.rabbitmq


def machine_release() -> str:
    """major.minor of the machine's own rabbitmq-server package (Debian's)."""
    return (rabbitmq_root.installed(rabbitmq_root.MACHINE) or "unknown").rsplit(".", 1)[0]


def test_the_session_broker_is_the_release_asked_for(broker):
    with pika.BlockingConnection(broker.connection_parameters()) as connection:
        served = connection._impl.server_properties["version"]
    served = served.decode() if isinstance(served, bytes) else served
    root = rabbitmq_root.selected()
    wanted = rabbitmq_root.RELEASE if root else machine_release()
    print(f"\nbroker: RabbitMQ {served} ({f'root {root}' if root else 'the machine package'})")
    assert served.startswith(f"{wanted}."), served
    assert broker.ctl("version").strip() == served  # the CLI tools come from the same release


def test_a_node_in_a_root_mounts_nothing_on_the_machine(tmp_path):
    root = rabbitmq_root.selected()
    if root is None:
        pytest.skip("the tests run the machine's RabbitMQ (RABBITMQ=debian): no root to run in")
    with rabbitmq.RabbitMQNode(data_dir=tmp_path / "node") as node:
        assert node.root == root
        # The node wrote its log where the machine sees it: the data dir is the same directory inside the root.
        assert node.log_path.exists() and node.nodename in node.log_path.read_text()
        mounts = Path("/proc/self/mounts").read_text()
        assert str(root) not in mounts, "a mount of the node's namespace is visible on the machine"
        beam = subprocess.run(["pgrep", "-g", str(os.getpgid(node.process.pid)), "beam"], capture_output=True)
        assert beam.returncode == 0, "the Erlang VM is not in the node's process group (SIGSTOP would miss it)"
    assert not (root / str(tmp_path).lstrip("/") / "node" / "log").exists(), "the node wrote into the root itself"


def test_a_command_in_the_root_resolves_the_names_the_machine_does_and_cannot_change_them(tmp_path):
    # A node without a cluster_name (test nodes have none) looks the host name up as it opens connections: where
    # the root could not resolve it (its own /etc/hosts named only localhost), each lookup waited for the DNS
    # timeout and every ~100th connection took 5 s to open.
    root = rabbitmq_root.selected()
    if root is None:
        pytest.skip("the tests run the machine's RabbitMQ (RABBITMQ=debian): no root to run in")
    host = socket.gethostname()
    on_machine = subprocess.run(["getent", "ahosts", host], capture_output=True, text=True, timeout=30)
    if on_machine.returncode != 0:
        pytest.skip(f"this machine does not resolve its own host name {host!r} either")

    def in_root(*argv: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            rabbitmq_root.command(root, [tmp_path], list(argv)), capture_output=True, text=True, timeout=30
        )

    started = time.monotonic()
    resolved = in_root("getent", "ahosts", host)
    assert resolved.returncode == 0, f"the root does not resolve {host!r}: {resolved.stderr}"
    assert time.monotonic() - started < 3, "resolving the host name in the root waited for DNS"
    assert resolved.stdout.split()[0] == on_machine.stdout.split()[0]
    written = in_root("sh", "-c", "echo '127.0.0.9 elsewhere' >> /etc/hosts")
    assert written.returncode != 0 and "Read-only" in written.stderr, "a command in the root could edit /etc/hosts"
    assert "elsewhere" not in Path("/etc/hosts").read_text()

"""The clustered node's background loop (seaport.rabbitmq_config.forget_departed_script) on the real cluster.

One round of the script, as the wrapper writes it, runs against a node of the
session's three-node cluster (devtools.rabbitmq_cluster: RabbitMQ 4.3 from its
root under ``make test``, distribution and CLI tools over TLS) with the CLI tools
of the node's release it finds on PATH, as in the container. A node is killed for good; the round must forget it with
``rabbitmqctl forget_cluster_node``, which also removes it from the quorum
queues' membership. The grace period is 0 (the unit tests,
tests/unit/test_rabbitmq_cleanup.py, drive the grace period, the state file and
the refusals with fake CLI tools and a fake clock); what this proves is the real
CLI's output parsed as the script parses it, and the real forget over TLS.

The local cluster forms by classic_config, whose ``discover_peers`` lists every
configured node, dead or not, where Consul stops listing a node once it
deregisters it (``deregister_after`` once its check fails): only for this test,
``rabbitmq-diagnostics`` on PATH is a wrapper that runs the real one and drops
the killed node from what ``discover_peers`` prints.

The killed node cannot rejoin with its data once forgotten; the cluster fixture
starts it again on an empty database, as a replacement, for any cluster test
that comes next (``RabbitMQCluster.replaced``).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pika
import pytest

from seaport import rabbitmq_config

pytestmark = pytest.mark.rabbitmq

DIAGNOSTICS_WITHOUT = """#!/bin/sh
# rabbitmq-diagnostics, but discover_peers does not list {node} (as Consul once it deregisters it).
out="$({real} "$@")" || exit $?
case " $* " in
  *" discover_peers "*) printf '%s\\n' "$out" | sed -e 's/"{node}",//' -e 's/,"{node}"//' -e 's/"{node}"//' ;;
  *) printf '%s\\n' "$out" ;;
esac
"""


def run_round(node, tmp_path: Path, departed: str) -> subprocess.CompletedProcess:
    """One round of the generated script (grace 0) against ``node``, as root's CLI tools in the container."""
    real = node.cli_dir  # rabbitmqctl and rabbitmq-diagnostics (in the node's root, if it has one)
    shim = tmp_path / "bin"
    shim.mkdir()
    wrapper = shim / "rabbitmq-diagnostics"
    wrapper.write_text(DIAGNOSTICS_WITHOUT.format(real=real / "rabbitmq-diagnostics", node=departed))
    wrapper.chmod(0o755)
    script = tmp_path / "forget-departed.sh"
    script.write_text(rabbitmq_config.forget_departed_script(grace_seconds=0, state_file=str(tmp_path / "state")))
    environment = {
        **node._environment(),  # its RABBITMQ_NODENAME (the CLI's default node), HOME (cookie), CLI TLS arguments
        "PATH": f"{shim}:{real}:{os.environ.get('PATH', '/usr/bin:/bin')}",
    }
    return subprocess.run(
        node.in_root(["/bin/sh", str(script), "once"], tmp_path),
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_node_killed_for_good_is_forgotten_and_leaves_the_queue(cluster, tmp_path):
    first, via, victim = cluster.nodes  # not the first node: it lists only itself, see RabbitMQCluster.replaced
    queue = f"forget-{tmp_path.name[-12:]}"
    with pika.BlockingConnection(via.connection_parameters()) as connection:
        connection.channel().queue_declare(queue, durable=True, arguments={"x-queue-type": "quorum"})
    time.sleep(2)  # 3.10 writes a new quorum queue's membership to disk lazily (test_cluster.wait_queue_replicated)
    assert set(cluster.queue_members(queue, via=via)["members"]) == {node.nodename for node in cluster.nodes}

    victim.kill()
    started = time.monotonic()
    status = None
    try:
        result = run_round(via, tmp_path, victim.nodename)
        print(f"\none round in {time.monotonic() - started:.1f} s:\n{result.stdout}{result.stderr}")
        assert result.returncode == 0
        assert f"seaport-forget-departed: forgot {victim.nodename} after 0 s down and unlisted" in result.stdout
        status = json.loads(via.ctl("cluster_status", "--formatter", "json"))
        assert set(status["disk_nodes"]) == {first.nodename, via.nodename}
        assert set(cluster.queue_members(queue, via=via)["members"]) == {first.nodename, via.nodename}
    finally:
        if status is None:
            status = json.loads(via.ctl("cluster_status", "--formatter", "json"))
        if victim.nodename not in status["disk_nodes"]:
            cluster.replaced(victim)  # the next cluster test gets it back as a new member

"""A real RabbitMQ node for the messaging tests, and helpers to drive apps.send / apps.receive.

One node serves the whole session (it takes ~10 s to boot); each test uses its
own queue. Tests that stop or kill the node use the ``broker`` fixture too: it
starts the node again if a previous test left it down.

Likewise one three-node cluster (devtools.rabbitmq_cluster) serves every
cluster test of the session; the ``cluster`` fixture starts again whatever node
a previous test left down and waits until the cluster is whole.
"""

from __future__ import annotations

import uuid

import pytest

from devtools import rabbitmq
from devtools.rabbitmq_cluster import RabbitMQCluster
from tests.apps.helpers import ClusterMessaging, Messaging


@pytest.fixture(scope="session")
def rabbitmq_node():
    if not rabbitmq.available():
        # A failure, not a skip: `make test` installs the package (`make sysdeps`).
        pytest.fail("rabbitmq-server is not installed: run `make sysdeps` (apt-get install rabbitmq-server)")
    node = rabbitmq.RabbitMQNode()
    try:
        node.start().wait_ready()
        yield node
    finally:
        node.close()


@pytest.fixture
def broker(rabbitmq_node):
    """The session's node, running."""
    if not rabbitmq_node.is_running():
        rabbitmq_node.start().wait_ready()
    return rabbitmq_node


@pytest.fixture
def queue_name(request) -> str:
    """A queue of this test's own, so tests never see each other's messages."""
    return f"test-{request.node.name[:40]}-{uuid.uuid4().hex[:6]}".replace("[", "-").replace("]", "")


@pytest.fixture
def messaging(broker, queue_name, tmp_path):
    """Starts apps against ``broker`` on ``queue_name``; stops whatever is left at the end."""
    harness = Messaging(broker, queue_name, tmp_path)
    yield harness
    harness.cleanup()


@pytest.fixture(scope="session")
def rabbitmq_cluster():
    if not rabbitmq.available():
        pytest.fail("rabbitmq-server is not installed: run `make sysdeps` (apt-get install rabbitmq-server)")
    cluster = RabbitMQCluster(size=3)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.close()


@pytest.fixture
def cluster(rabbitmq_cluster):
    """The session's three-node cluster, every node running and clustered."""
    return rabbitmq_cluster.ensure_running()


@pytest.fixture
def cluster_messaging(cluster, fake_consul, queue_name, tmp_path):
    """Starts apps that find the cluster's nodes through a fake Consul agent; stops them at the end."""
    harness = ClusterMessaging(cluster, fake_consul, queue_name, tmp_path)
    yield harness
    harness.cleanup()

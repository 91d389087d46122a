"""A real RabbitMQ node for the messaging tests, and helpers to drive apps.send / apps.receive.

One node serves the whole session (it takes ~10 s to boot); each test uses its
own queue. Tests that stop or kill the node use the ``broker`` fixture too: it
starts the node again if a previous test left it down. Besides plain AMQP, the
node speaks AMQP over TLS on another port, with a certificate for the names
``rabbitmq`` and ``localhost`` issued by the session's test CA (``tls_ca``,
trustme), as the infrastructure's internal CA issues the broker's for
``rabbitmq``; ``tls_messaging`` runs the apps over that port.

Likewise one three-node cluster (devtools.rabbitmq_cluster) serves every
cluster test of the session; the ``cluster`` fixture starts again whatever node
a previous test left down and waits until the cluster is whole. Booting it
takes 20-30 s of mostly one busy core per node, so in a single pytest process
the cluster tests run last, and the cluster starts booting in the background
as soon as the tests are collected, while the others run (pytest itself keeps
one core busy; the machine has two). Under ``make test``'s workers the cluster
tests form one group that starts first, and only their worker boots a cluster.
"""

from __future__ import annotations

import threading
import uuid

import pytest
import trustme

from apps.common.contract import broker as contract
from devtools import rabbitmq, rabbitmq_root
from devtools.rabbitmq_cluster import RabbitMQCluster
from tests.apps.helpers import ClusterMessaging, Messaging, TlsMessaging
from tests.conftest import CLUSTER_MODULES, CLUSTER_UNIT, module_of, running_in_a_worker, work_unit


@pytest.fixture(scope="session")
def tls_ca() -> trustme.CA:
    """The CA that issued the session node's TLS certificate (the stand-in for the stack's internal CA)."""
    return trustme.CA()


@pytest.fixture(scope="session")
def rabbitmq_node(tls_ca):
    rabbitmq_root.selected()  # SEAPORT_RABBITMQ_ROOT naming no usable root: say so, and how to build one
    if not rabbitmq.available():
        # A failure, not a skip: `make test` installs the package (`make sysdeps`).
        pytest.fail("rabbitmq-server is not installed: run `make sysdeps` (apt-get install rabbitmq-server)")
    node = rabbitmq.RabbitMQNode(tls=rabbitmq.ServerTls.issued_by(tls_ca, contract.SERVICE_NAME, "localhost"))
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


@pytest.fixture
def tls_messaging(broker, queue_name, tmp_path):
    """Like ``messaging``, over TLS: 127.0.0.1's TLS port, verified as ``rabbitmq`` against the test CA."""
    harness = TlsMessaging(broker, queue_name, tmp_path)
    yield harness
    harness.cleanup()


class ClusterBoot:
    """A RabbitMQCluster booting in a background thread; ``wait()`` returns it formed, or raises what failed."""

    def __init__(self):
        self.cluster = RabbitMQCluster(size=3)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._start, name="rabbitmq-cluster-boot", daemon=True)
        self.thread.start()

    def _start(self) -> None:
        try:
            self.cluster.start()
        except BaseException as error:  # reported by wait(), in the test that needs the cluster
            self.error = error

    def wait(self, timeout: float = 180.0) -> RabbitMQCluster:
        self.thread.join(timeout)
        if self.thread.is_alive():
            raise rabbitmq.RabbitMQError(f"the cluster did not form in {timeout:g} s")
        if self.error is not None:
            raise self.error
        return self.cluster


_boot: ClusterBoot | None = None


def pytest_collection_modifyitems(session, config, items):
    """Cluster tests last, and the cluster booting meanwhile (see the module docstring).

    In pytest-xdist workers (``make test``), every worker collects every test and only one runs the cluster's
    (their modules are one work unit: tests/conftest.py): they come first in line (the longest piece of work
    starts first), and the cluster boots when the first of them asks for it, on that worker only."""
    global _boot
    needs_cluster = [item for item in items if "rabbitmq_cluster" in getattr(item, "fixturenames", ())]
    if not needs_cluster or not rabbitmq.available():
        return
    if running_in_a_worker():
        strays = sorted({module_of(item.nodeid) for item in needs_cluster} - CLUSTER_MODULES)
        if strays:
            raise pytest.UsageError(
                f"{', '.join(strays)} use the RabbitMQ cluster: add them to CLUSTER_MODULES in tests/conftest.py, "
                "or every worker that runs one boots a cluster of its own"
            )
        items.sort(key=lambda item: work_unit(item.nodeid) != CLUSTER_UNIT)  # stable: the cluster's unit first
        return
    others = [item for item in items if item not in needs_cluster]
    items[:] = others + needs_cluster
    if _boot is None:
        _boot = ClusterBoot()


def pytest_sessionfinish(session, exitstatus):
    """Stop the cluster when the fixture never took it over (its tests deselected or never reached)."""
    if _boot is not None:
        _boot.thread.join(180)
        _boot.cluster.close()


@pytest.fixture(scope="session")
def rabbitmq_cluster():
    if not rabbitmq.available():
        pytest.fail("rabbitmq-server is not installed: run `make sysdeps` (apt-get install rabbitmq-server)")
    boot = _boot or ClusterBoot()
    try:
        yield boot.wait()
    finally:
        boot.cluster.close()


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

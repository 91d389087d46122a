"""Fixtures shared by every test suite, and how ``make test`` spreads the tests over processes.

``make test`` runs the suite in a few pytest-xdist workers: most tests wait on brokers, browsers and
timeouts rather than on a core. The work is handed out a module at a time, so a module's module-scoped
fixtures (plans of the whole program, a built wheel) are made once, and the modules that use the
session's RabbitMQ cluster go to one worker together (``CLUSTER_MODULES``), the only one that boots it.
Without workers (``pytest`` alone, or ``-p no:xdist``) nothing here changes anything.
"""

import os

import pytest

from tests.support.fake_consul import FakeConsul


@pytest.fixture
def fake_consul():
    """A fake Consul agent on a free loopback port (see tests/support/fake_consul.py)."""
    consul = FakeConsul()
    yield consul
    consul.stop()


# The test modules that use the session's three-node RabbitMQ cluster (the ``rabbitmq_cluster`` fixture,
# tests/apps/conftest.py, which refuses to run a cluster test from any other module under workers).
CLUSTER_MODULES = frozenset({"tests/apps/test_cluster.py", "tests/apps/test_cluster_cleanup.py"})


def running_in_a_worker() -> bool:
    """Whether this process is a pytest-xdist worker (which collects the whole suite, like every other)."""
    return "PYTEST_XDIST_WORKER" in os.environ


CLUSTER_UNIT = "rabbitmq-cluster"  # the work unit of CLUSTER_MODULES


def module_of(nodeid: str) -> str:
    """The test module a node id is in (``tests/apps/test_cluster.py::test_x`` -> ``tests/apps/test_cluster.py``)."""
    return nodeid.split("::", 1)[0]


def work_unit(nodeid: str) -> str:
    """What is handed to one worker as a whole: the cluster's modules together, else a test's module."""
    module = module_of(nodeid)
    return CLUSTER_UNIT if module in CLUSTER_MODULES else module


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """Workers get whole work units (``work_unit``), in the order the workers collected them."""
    from xdist.scheduler import LoadScopeScheduling

    class WorkUnitScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

    return WorkUnitScheduling(config, log)

"""Fixtures shared by every test suite, and how ``make test`` spreads the tests over processes.

``make test`` runs the suite in a few pytest-xdist workers (``--dist loadgroup``): most tests wait on
brokers, browsers and timeouts rather than on a core. A module's tests stay together on one worker, so
its module-scoped fixtures (plans of the whole program, a built wheel) are made once; tests that share
something bigger than a module say so with their own ``xdist_group`` (the RabbitMQ cluster's tests).
Without workers (``pytest`` alone, or ``-p no:xdist``) nothing here changes the order.
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


def running_in_a_worker() -> bool:
    """Whether this process is a pytest-xdist worker (which collects the whole suite, like every other)."""
    return "PYTEST_XDIST_WORKER" in os.environ


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session, config, items):
    """In a worker: every test without a group of its own is grouped with its module's tests."""
    if not running_in_a_worker():
        return
    for item in items:
        if item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::", 1)[0]))

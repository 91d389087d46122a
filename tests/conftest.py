"""Fixtures shared by every test suite."""

import pytest

from tests.support.fake_consul import FakeConsul


@pytest.fixture
def fake_consul():
    """A fake Consul agent on a free loopback port (see tests/support/fake_consul.py)."""
    consul = FakeConsul()
    yield consul
    consul.stop()

"""Plans of the real stacks, shared by the unit tests (they are pure data)."""

from pathlib import Path

import pytest

from seaport.tools.synth import synth

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def dev_plan():
    return synth(REPO, "dev")


@pytest.fixture(scope="session")
def prod_plan():
    return synth(REPO, "prod")


@pytest.fixture(scope="session")
def dev_amazonmq_plan():
    """The dev stack with seaport:brokerMode=amazonmq."""
    from seaport.tools.testing import run_program, stack_config

    config = {**stack_config(REPO, "dev"), "seaport:brokerMode": "amazonmq"}
    return run_program(REPO / "__main__.py", stack="dev", config=config)


# The monitored systems (composed ones and the real stacks) the monitoring and dashboard tests share.
from tests.unit.monitored import any_system, system  # noqa: E402, F401

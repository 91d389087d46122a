"""Plans of the real stacks, shared by the unit tests (they are pure data)."""

from pathlib import Path

import pytest

from components.synth import synth

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def dev_plan():
    return synth(REPO, "dev")


@pytest.fixture(scope="session")
def prod_plan():
    return synth(REPO, "prod")

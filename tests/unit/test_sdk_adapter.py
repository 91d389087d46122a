"""The private Pulumi SDK parts seaport.tools relies on are still where the adapter expects them.

If an SDK upgrade moves one, this fails first and names it, instead of every plan test failing
with an obscure error."""

import inspect

import pytest

from seaport.tools import sdk
from seaport.tools.testing import run


@pytest.mark.parametrize("name", sdk.REQUIRED)
def test_every_internal_the_adapter_promises_exists(name):
    assert callable(getattr(sdk, name)), f"pulumi SDK moved or removed what seaport.tools.sdk.{name} wraps"


def test_the_mock_monitor_still_has_the_shape_the_recording_monitor_overrides():
    for method in ("RegisterResource", "RegisterResourceOutputs", "make_urn"):
        assert callable(getattr(sdk.MockMonitor, method, None)), method
    assert {"typ", "name", "inputs", "provider", "resource_id", "custom"} <= set(
        inspect.signature(sdk.MockResourceArgs).parameters
    )
    assert hasattr(sdk.MockMonitor, "ResourceRegistration")


def test_secret_wrapping_round_trips():
    wrapped = sdk.as_secret("hunter2")
    assert sdk.is_secret(wrapped) and not sdk.is_secret("hunter2")
    assert sdk.deserialize(sdk.serialize({"password": wrapped}))["password"] == wrapped


def test_a_recorded_plan_has_dependencies_and_redacts_additional_secret_outputs():
    import pulumi_random as random

    def program():
        password = random.RandomPassword("p", length=16)
        random.RandomPassword("q", length=16, keepers={"other": password.result})

    plan = run(program)
    first, second = plan.named("p"), plan.named("q")
    assert first["outputs"]["result"] == "[secret]", "the provider marks result secret; so must the plan"
    assert second["inputs"]["keepers"] == "[secret]", "a secret stays secret when passed on"
    assert plan.depends_on(second, first) and not plan.depends_on(first, second)

"""The package schema other languages get, inferred in-process (no CLI) from the components."""

import ast
import gc
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from pulumi.provider.experimental.component import ComponentProvider

import seaport
from seaport import COMPONENTS
from seaport.tools import sdk

REPO = Path(__file__).resolve().parents[2]
PRIMITIVES = {"string", "integer", "number", "boolean", "array", "object"}


@pytest.fixture(scope="module")
def schema():
    sdk.document_inherited_fields()  # what provider/__main__.py does before serving the schema
    provider = ComponentProvider(COMPONENTS, "seaport", None, seaport.__version__)
    return json.loads(provider.schema)


def _typed(spec):
    return spec.get("type") in PRIMITIVES or spec.get("$ref", "").startswith(("#/types/", "pulumi.json#"))


def test_plugin_manifest_points_at_the_provider(schema):
    manifest = yaml.safe_load((REPO / "PulumiPlugin.yaml").read_text())
    assert manifest["runtime"]["name"] == "python"
    entry = REPO / manifest["main"]
    assert entry.exists() and "component_provider_host" in entry.read_text()
    assert schema["name"] == "seaport" and schema["version"] == seaport.__version__


def test_the_provider_finds_seaport_in_the_repository_without_an_install():
    """`pulumi package add` gives the plugin a virtualenv with the locked dependencies only."""
    code = (
        "import sys, runpy\n"
        "sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in type(f).__name__.lower()\n"
        "                    and 'editable' not in getattr(f, '__name__', '').lower()]\n"
        "sys.path[:] = [p for p in sys.path if p not in ('', '.')]\n"
        "provider = runpy.run_path(sys.argv[1], run_name='provider')\n"
        "seaport = provider['import_seaport']()\n"
        "import seaport.contract\n"
        "print(seaport.__file__, seaport.contract.__file__, len(seaport.COMPONENTS))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(REPO / "provider" / "__main__.py")],
        capture_output=True,
        text=True,
        cwd="/",
        check=False,
    )
    assert result.returncode == 0, result.stderr
    package, contract, count = result.stdout.split()
    assert package == str(REPO / "components" / "__init__.py")
    assert contract == str(REPO / "apps" / "common" / "contract" / "__init__.py")
    assert int(count) == len(COMPONENTS)


def test_every_component_is_in_the_schema(schema):
    expected = {f"seaport:index:{cls.__name__}" for cls in COMPONENTS}
    assert set(schema["resources"]) == expected
    names = {cls.__name__ for cls in COMPONENTS}
    assert names == {
        "Network",
        "CertificateAuthority",
        "EcsCluster",
        "ContainerService",
        "ServiceAutoscaling",
        "ScaledWebService",
        "ConsulMesh",
        "RabbitMessaging",
        "ContainerImage",
        "Monitoring",
    }
    for token, resource in schema["resources"].items():
        assert resource["isComponent"] is True
        assert resource.get("description"), token


@pytest.mark.parametrize("cls", COMPONENTS, ids=lambda c: c.__name__)
def test_inputs_are_typed_and_described_with_defaults(schema, cls):
    resource = schema["resources"][f"seaport:index:{cls.__name__}"]
    inputs = resource["inputProperties"]
    assert inputs
    for name, spec in inputs.items():
        assert _typed(spec), f"{cls.__name__}.{name} has no type"
        description = spec.get("description", "")
        assert description, f"{cls.__name__}.{name} has no description"
        assert "Default" in description or "Required" in description, f"{cls.__name__}.{name}: {description}"
    for required in resource.get("requiredInputs", []):
        assert "Required" in inputs[required]["description"]


def test_descriptions_survive_a_garbage_collection_that_parses_during_the_analysis():
    """CPython 3.11's ast.parse is not reentrant, and the analyzer swallows the error it then raises.

    A finalizer that parses runs whenever the collector does: asyncio's "exception was never
    retrieved" log formats a traceback, and its carets come from ast.parse. Seen after some test
    orders: a component reached the schema with no description at all.
    """
    stop = []

    class ParsesWhenCollected:
        def __init__(self):
            self.cycle = self  # only the cyclic collector frees it, as it frees a failed asyncio Task

        def __del__(self):
            ast.parse("(first + second) * third")
            if not stop:
                ParsesWhenCollected()

    thresholds = gc.get_threshold()
    gc.collect()
    gc.set_threshold(50, 10**6, 10**6)  # collect often: some collection lands inside a parse
    try:
        ParsesWhenCollected()
        sdk.document_inherited_fields()
        provider = ComponentProvider(COMPONENTS, "seaport", None, seaport.__version__)
        resources = json.loads(provider.schema)["resources"]
    finally:
        stop.append(True)
        gc.set_threshold(*thresholds)
        gc.collect()
    undocumented = [
        f"{token}.{name}"
        for token, resource in resources.items()
        for name, spec in resource["inputProperties"].items()
        if not spec.get("description")
    ]
    assert undocumented == []


@pytest.mark.parametrize("cls", COMPONENTS, ids=lambda c: c.__name__)
def test_outputs_are_typed_and_described(schema, cls):
    resource = schema["resources"][f"seaport:index:{cls.__name__}"]
    outputs = resource["properties"]
    assert set(outputs) == {k for k in resource.get("required", outputs)}
    for name, spec in outputs.items():
        assert _typed(spec), f"{cls.__name__}.{name} output has no type"
        assert spec.get("description"), f"{cls.__name__}.{name} output has no description"


def test_components_take_each_other_by_reference(schema):
    """Other languages wire components as Python does: one reference object each, outputs accepted."""
    web = schema["resources"]["seaport:index:ScaledWebService"]
    assert set(web["requiredInputs"]) == {"cluster", "container"}
    assert web["inputProperties"]["cluster"]["$ref"] == "#/types/seaport:index:ClusterReference"
    assert not web["inputProperties"]["cluster"].get("plain"), "an output (another component's) must be accepted"
    assert web["inputProperties"]["container"]["$ref"] == "#/types/seaport:index:Container"
    assert web["inputProperties"]["service"]["$ref"] == "#/types/seaport:index:ServiceOptions"
    assert web["properties"]["url"]["type"] == "string"
    cluster = schema["resources"]["seaport:index:EcsCluster"]
    assert cluster["properties"]["reference"]["$ref"] == "#/types/seaport:index:ClusterReference"
    assert cluster["inputProperties"]["network"]["$ref"] == "#/types/seaport:index:NetworkReference"
    mesh = schema["resources"]["seaport:index:ConsulMesh"]
    assert mesh["properties"]["discovery"]["$ref"] == "#/types/seaport:index:DiscoveryReference"
    reference = schema["types"]["seaport:index:ClusterReference"]["properties"]
    assert set(reference) == {
        "arn",
        "name",
        "capacityProvider",
        "instanceSecurityGroupId",
        "network",
        "dedicatedInstances",
    }
    container = schema["types"]["seaport:index:Container"]
    assert container["properties"]["environment"]["type"] == "object"
    assert "image" in container["required"]


def test_every_container_service_option_is_reachable_from_the_web_service(schema):
    """ScaledWebService nests the full ContainerService options, not a re-declared subset."""
    service = schema["resources"]["seaport:index:ContainerService"]["inputProperties"]
    options = schema["types"]["seaport:index:ServiceOptions"]["properties"]
    own = {"cluster", "container", "targetGroupArn", "autoscaled", "tags"}  # what the web service sets itself
    assert set(service) - own == set(options)


def test_modes_are_enums(schema):
    for token, values in (
        ("seaport:index:ScalingMode", {"step", "target-tracking", "backlog"}),
        ("seaport:index:BrokerMode", {"container", "cluster", "amazonmq"}),
        ("seaport:index:Scheduling", {"REPLICA", "DAEMON"}),
    ):
        assert {v["value"] for v in schema["types"][token]["enum"]} == values


def test_yaml_example_uses_only_inputs_and_outputs_the_schema_declares(schema):
    program = yaml.safe_load((REPO / "examples/yaml-consumer/Pulumi.yaml").read_text())
    types = {}
    for name, resource in program["resources"].items():
        token = resource["type"]
        assert token in schema["resources"], token
        types[name] = schema["resources"][token]
        inputs = types[name]["inputProperties"]
        assert set(resource["properties"]) <= set(inputs), name
        assert set(types[name].get("requiredInputs", [])) <= set(resource["properties"]), name
        for key, value in resource["properties"].items():
            ref = inputs[key].get("$ref", "")
            if isinstance(value, dict) and ref.startswith("#/types/"):
                assert set(value) <= set(schema["types"][ref.removeprefix("#/types/")]["properties"]), f"{name}.{key}"
    text = (REPO / "examples/yaml-consumer/Pulumi.yaml").read_text()
    import re

    for resource, output in re.findall(r"\$\{(\w+)\.(\w+)\}", text):
        assert output in types[resource]["properties"], f"{resource}.{output}"


def test_nested_argument_types_are_documented_with_defaults(schema):
    assert schema["types"]
    for token, kind in schema["types"].items():
        for name, spec in kind.get("properties", {}).items():  # enums have values, not properties
            description = spec.get("description", "")
            assert "Default" in description or "Required" in description, f"{token}.{name}: {description!r}"

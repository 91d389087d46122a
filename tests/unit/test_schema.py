"""The package schema other languages get, inferred in-process (no CLI) from the components."""

import json
from pathlib import Path

import pytest
import seaport
import yaml
from pulumi.provider.experimental.component import ComponentProvider
from seaport import COMPONENTS

REPO = Path(__file__).resolve().parents[2]
PRIMITIVES = {"string", "integer", "number", "boolean", "array", "object"}


@pytest.fixture(scope="module")
def schema():
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


def test_every_component_is_in_the_schema(schema):
    expected = {f"seaport:index:{cls.__name__}" for cls in COMPONENTS}
    assert set(schema["resources"]) == expected
    names = {cls.__name__ for cls in COMPONENTS}
    assert names == {
        "Network",
        "EcsCluster",
        "ContainerService",
        "ScaledWebService",
        "ConsulMesh",
        "RabbitMessaging",
        "ContainerImage",
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


@pytest.mark.parametrize("cls", COMPONENTS, ids=lambda c: c.__name__)
def test_outputs_are_typed_and_described(schema, cls):
    resource = schema["resources"][f"seaport:index:{cls.__name__}"]
    outputs = resource["properties"]
    assert set(outputs) == {k for k in resource.get("required", outputs)}
    for name, spec in outputs.items():
        assert _typed(spec), f"{cls.__name__}.{name} output has no type"
        assert spec.get("description"), f"{cls.__name__}.{name} output has no description"


def test_key_wiring_inputs_and_outputs(schema):
    web = schema["resources"]["seaport:index:ScaledWebService"]
    assert set(web["requiredInputs"]) >= {"clusterArn", "clusterName", "instanceSecurityGroupId", "container"}
    assert web["inputProperties"]["container"]["$ref"] == "#/types/seaport:index:Container"
    assert web["properties"]["url"]["type"] == "string"
    cluster = schema["resources"]["seaport:index:EcsCluster"]
    assert {"clusterArn", "clusterName", "capacityProviderName", "instanceSecurityGroupId"} <= set(
        cluster["properties"]
    )
    container = schema["types"]["seaport:index:Container"]
    assert container["properties"]["environment"]["type"] == "object"
    assert "image" in container["required"]


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
        container = resource["properties"].get("container")
        if container:
            assert set(container) <= set(schema["types"]["seaport:index:Container"]["properties"])
    text = (REPO / "examples/yaml-consumer/Pulumi.yaml").read_text()
    import re

    for resource, output in re.findall(r"\$\{(\w+)\.(\w+)\}", text):
        assert output in types[resource]["properties"], f"{resource}.{output}"


def test_nested_argument_types_are_documented_with_defaults(schema):
    assert schema["types"]
    for token, kind in schema["types"].items():
        for name, spec in kind["properties"].items():
            description = spec.get("description", "")
            assert "Default" in description or "Required" in description, f"{token}.{name}: {description!r}"

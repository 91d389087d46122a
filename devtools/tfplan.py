"""Convert seaport's offline plan into a Terraform plan document, for IaC scanners that read one.

``python -m devtools.tfplan build/prod/resources.json -o build/prod/tfplan.json``

The input is what ``seaport.tools.synth`` writes (``resources.json``: every resource with its Pulumi
type token, inputs and mocked outputs). The output has the shape of ``terraform show -json`` for a
first deploy (``format_version``, ``planned_values``, ``resource_changes``, ``configuration``), which
scanners such as checkov (``--framework terraform_plan``) read without Terraform.

Pulumi's AWS, random and TLS providers are bridged from the Terraform providers, so the mapping is
mechanical, with a few known exceptions:

- type: from the providers' own token -> Terraform type tables (``devtools/tfplan_reference.json``, an
  excerpt of pulumi-aws's bridge metadata, the generated form of its ``resources.go``); for a token not in
  it, the naming convention (``aws:<module>/<x>:<Kind>`` -> ``aws_<module>_<kind_snake>``, ``ec2`` without
  the module), reported as unverified.
- attributes: camelCase -> snake_case. The shape of every attribute comes from the installed Pulumi SDK
  (``pulumi_aws`` etc.): an object is a Terraform block, rendered as a one-element list; a mapping
  (``tags``) is a map whose keys are data and stay as they are; a list of objects is a repeated block.
  Pulumi pluralises the names of Terraform lists and repeated blocks (``route`` -> ``routes``); the
  Terraform names are in ``LIST_NAMES`` (a list not covered there is reported as unverified).
- references: an input equal to an id/ARN/name that a resource it depends on returned is written the way
  Terraform plans a first deploy: unknown in ``planned_values`` (``after_unknown`` in
  ``resource_changes``) and a reference (``aws_s3_bucket.alb_logs.id``) in ``configuration``, which is
  what checkov's graph checks follow from one resource to another.
- secrets stay ``"[secret]"`` and are marked in ``sensitive_values``.

Skipped: component resources (``seaport:index:*``), the stack, provider resources, and resources with no
Terraform counterpart (pulumi-docker's ``Image``, a Pulumi-native resource); ``--verbose`` lists them.
"""

from __future__ import annotations

import argparse
import collections.abc
import functools
import importlib
import json
import re
import sys
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi._types as pulumi_types

SECRET = "[secret]"  # noqa: S105 - how resources.json renders a secret value
FORMAT_VERSION = "1.2"
# The Terraform version the document claims to come from (checkov reads the format, not the version).
TERRAFORM_VERSION = "1.9.8"

# Provider source addresses in their short form (Terraform implies its public registry's host); checkov reads
# the resource types, not these.
PROVIDERS = {
    "aws": "hashicorp/aws",
    "random": "hashicorp/random",
    "tls": "hashicorp/tls",
}
# Python SDK package of each Pulumi provider: the source of every attribute's shape.
SDK_PACKAGES = {"aws": "pulumi_aws", "random": "pulumi_random", "tls": "pulumi_tls"}

# Pulumi types with no Terraform resource of their own, and why.
NO_TERRAFORM_COUNTERPART = {
    "docker:index/image:Image": "pulumi-docker's Image is Pulumi-native (a build and push, not a Terraform resource)",
}

# Terraform type of each Pulumi type token, from the providers' own tables (see "about" in the file).
REFERENCE = json.loads(Path(__file__).with_name("tfplan_reference.json").read_text())
# Modules whose resources drop the module name in Terraform (aws_vpc, aws_subnet, aws_eip, ...).
MODULES_WITHOUT_PREFIX = {"ec2", "index"}

# Terraform names of the lists and repeated blocks that Pulumi pluralised, by resource type and the
# dotted Pulumi path of the property (list elements add no path segment). Lists whose Terraform name is
# already plural (``subnets``, ``security_groups``, launch templates' ``block_device_mappings``) are in
# PLURAL_IN_TERRAFORM. Source: the argument reference of each resource in the Terraform providers' docs
# (for acm also pulumi-aws bridge-metadata.json ``renamedProperties``). A list property found in neither
# table is converted as snake_case and reported as unverified (the unit tests convert the real stacks).
LIST_NAMES: dict[str, dict[str, str]] = {
    "aws:acm/certificate:Certificate": {
        "renewalSummaries": "renewal_summary",
        "validationOptions": "validation_option",
    },
    "aws:appautoscaling/policy:Policy": {
        "stepScalingPolicyConfiguration.stepAdjustments": "step_adjustment",
    },
    "aws:autoscaling/group:Group": {
        "tags": "tag",
        "vpcZoneIdentifiers": "vpc_zone_identifier",
        "trafficSources": "traffic_source",
    },
    "aws:cloudwatch/metricAlarm:MetricAlarm": {"metricQueries": "metric_query"},
    "aws:ec2/routeTable:RouteTable": {"routes": "route"},
    "aws:ecr/repository:Repository": {"encryptionConfigurations": "encryption_configuration"},
    "aws:ecs/cluster:Cluster": {"settings": "setting"},
    "aws:ecs/clusterCapacityProviders:ClusterCapacityProviders": {
        "defaultCapacityProviderStrategies": "default_capacity_provider_strategy",
    },
    "aws:ecs/service:Service": {
        "capacityProviderStrategies": "capacity_provider_strategy",
        "loadBalancers": "load_balancer",
        "orderedPlacementStrategies": "ordered_placement_strategy",
    },
    "aws:ecs/taskDefinition:TaskDefinition": {"volumes": "volume"},
    "aws:lb/listener:Listener": {"defaultActions": "default_action"},
    "aws:lb/loadBalancer:LoadBalancer": {"subnetMappings": "subnet_mapping"},
    "aws:mq/broker:Broker": {"users": "user"},
    "aws:route53/record:Record": {"aliases": "alias"},
    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration": {"rules": "rule"},
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration": {"rules": "rule"},
    "aws:wafv2/webAcl:WebAcl": {
        "rules": "rule",
        "rules.statement.managedRuleGroupStatement.ruleActionOverrides": "rule_action_override",
        "rules.statement.rateBasedStatement.customKeys": "custom_key",
    },
}
# Lists whose Terraform name is the snake_case of the Pulumi one (already plural in Terraform).
PLURAL_IN_TERRAFORM: dict[str, set[str]] = {
    "aws:acm/certificate:Certificate": {"domainValidationOptions", "subjectAlternativeNames", "validationEmails"},
    "aws:acm/certificateValidation:CertificateValidation": {"validationRecordFqdns"},
    "aws:appautoscaling/policy:Policy": {
        "alarmArns",
        "targetTrackingScalingPolicyConfiguration.customizedMetricSpecification.metrics",
        "targetTrackingScalingPolicyConfiguration.customizedMetricSpecification.metrics.metricStat.metric.dimensions",
        "targetTrackingScalingPolicyConfiguration.customizedMetricSpecification.dimensions",
    },
    "aws:autoscaling/group:Group": {
        "availabilityZones",
        "enabledMetrics",
        "loadBalancers",
        "targetGroupArns",
        "suspendedProcesses",
        "terminationPolicies",
    },
    "aws:cloudwatch/metricAlarm:MetricAlarm": {"alarmActions", "okActions", "insufficientDataActions"},
    "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup": {"ingress", "egress"},
    "aws:ec2/securityGroup:SecurityGroup": {"ingress", "egress"},
    "aws:ec2/launchTemplate:LaunchTemplate": {
        "blockDeviceMappings",
        "networkInterfaces",
        "networkInterfaces.securityGroups",
        "networkInterfaces.ipv4Addresses",
        "networkInterfaces.ipv6Addresses",
        "tagSpecifications",
        "securityGroupNames",
        "vpcSecurityGroupIds",
    },
    "aws:ecs/clusterCapacityProviders:ClusterCapacityProviders": {"capacityProviders"},
    "aws:ecs/service:Service": {"alarms.alarmNames", "placementConstraints"},
    "aws:ecs/taskDefinition:TaskDefinition": {"requiresCompatibilities", "placementConstraints"},
    "aws:lb/loadBalancer:LoadBalancer": {"securityGroups", "subnets"},
    "aws:mq/broker:Broker": {"instances", "instances.endpoints", "securityGroups", "subnetIds"},
    "aws:route53/record:Record": {"records"},
    "aws:wafv2/webAclLoggingConfiguration:WebAclLoggingConfiguration": {"logDestinationConfigs", "redactedFields"},
    "tls:index/certRequest:CertRequest": {"dnsNames", "ipAddresses", "uris"},
    "tls:index/locallySignedCert:LocallySignedCert": {"allowedUses"},
    "tls:index/selfSignedCert:SelfSignedCert": {"allowedUses", "dnsNames", "ipAddresses", "uris"},
}


def snake(name: str) -> str:
    """camelCase -> snake_case as the bridge maps them (``enableHttp2`` -> ``enable_http2``, ``s3Key``)."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def parse_token(token: str) -> tuple[str, str, str]:
    """``aws:lb/loadBalancer:LoadBalancer`` -> (``aws``, ``lb``, ``LoadBalancer``)."""
    package, module_path, kind = token.split(":")
    return package, module_path.split("/")[0], kind


def terraform_type(token: str) -> str | None:
    """The Terraform resource type of a Pulumi type token, from the reference table (None if not there)."""
    source = REFERENCE["renamed_in_v7"].get(token, token)
    return REFERENCE["resources"].get(source)


def mechanical_type(token: str) -> str:
    """The Terraform type the naming convention gives (``aws:<module>/<x>:<Kind>`` -> ``aws_<module>_<kind>``).

    Right for most tokens, not all (``aws:lb/loadBalancer`` is ``aws_lb``): the fallback for a token the
    reference table doesn't have, reported as unverified."""
    package, module, kind = parse_token(token)
    base = snake(kind) if module in MODULES_WITHOUT_PREFIX else f"{module}_{snake(kind)}"
    return base if base.startswith(f"{package}_") else f"{package}_{base}"


@functools.cache
def resource_class(token: str) -> type | None:
    """The SDK class of a Pulumi resource type (``pulumi_aws.lb.LoadBalancer``), or None."""
    package, module, kind = parse_token(token)
    sdk = SDK_PACKAGES.get(package)
    if sdk is None:
        return None
    try:
        pkg = importlib.import_module(sdk if module == "index" else f"{sdk}.{module}")
    except ImportError:
        return None
    return getattr(pkg, kind, None)


@functools.cache
def property_types(cls: type) -> dict[str, Any]:
    """Pulumi property name -> Python type for a resource class or a nested output type."""
    if pulumi_types.is_output_type(cls):
        return dict(pulumi_types.output_type_types(cls))
    return dict(pulumi_types.resource_types(cls))


def _unwrap(typ: Any) -> Any:
    return pulumi_types.unwrap_optional_type(typ) if typ is not None else None


def _shape(typ: Any) -> tuple[str, Any]:
    """('list', element type) | ('map', None) | ('block', output class) | ('value', None)."""
    typ = _unwrap(typ)
    origin = typing.get_origin(typ)
    if origin in (list, collections.abc.Sequence):
        (element,) = typing.get_args(typ) or (None,)
        return "list", element
    if origin in (dict, collections.abc.Mapping):
        return "map", None
    if isinstance(typ, type) and pulumi_types.is_output_type(typ):
        return "block", typ
    return "value", None


@dataclass
class Reference:
    """What a plain value (an id, an ARN, a name) of another resource points at."""

    address: str
    attribute: str


@dataclass
class Conversion:
    """The state of one resource's conversion: where lists were unverified, what became references."""

    token: str
    address: str
    unverified: list[str] = field(default_factory=list)


def terraform_key(token: str, path: str, key: str, shape: str, conversion: Conversion | None) -> str:
    """The Terraform name of property ``key`` at dotted Pulumi ``path`` (``""`` at the top)."""
    dotted = f"{path}.{key}" if path else key
    if shape == "list":
        renamed = LIST_NAMES.get(token, {}).get(dotted)
        if renamed:
            return renamed
        if dotted not in PLURAL_IN_TERRAFORM.get(token, set()) and conversion is not None:
            conversion.unverified.append(dotted)
    return snake(key)


def _convert_object(
    obj: dict[str, Any], cls: type | None, path: str, conversion: Conversion, refs: dict[str, Reference] | None
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Convert one object (a resource's values or a block).

    Returns the values, their ``after_unknown`` and ``sensitive_values`` parts and the configuration
    ``expressions`` (references only), each shaped like the values (blocks as lists of objects).
    """
    types = property_types(cls) if cls is not None else {}
    if not path:
        types = {"id": str, **types}
    values: dict[str, Any] = {}
    unknown: dict[str, Any] = {}
    sensitive: dict[str, Any] = {}
    expressions: dict[str, Any] = {}
    for key, value in obj.items():
        typ = types.get(key)
        shape, inner = _shape(typ) if typ is not None else ("unknown", None)
        name = terraform_key(conversion.token, path, key, shape, conversion)
        dotted = f"{path}.{key}" if path else key
        if value == SECRET:
            values[name] = value
            sensitive[name] = True
            continue
        ref = _references(value, refs)
        if ref:
            # A first deploy plans it unknown; the configuration says where it comes from.
            unknown[name] = [True] * len(value) if isinstance(value, list) else True
            expressions[name] = {"references": sorted(ref, key=lambda r: (-r.count("."), r))}
            continue
        if shape == "map":
            values[name] = value
            if isinstance(value, dict) and SECRET in value.values():
                sensitive[name] = {k: True for k, v in value.items() if v == SECRET}
        elif shape in ("block", "list") and isinstance(value, dict | list):
            element_shape, element_cls = (shape, inner) if shape == "block" else _shape(inner)
            if element_shape != "block" or (shape == "list") != isinstance(value, list):
                values[name] = value
                continue
            items = value if isinstance(value, list) else [value]
            blocks = [_convert_object(item, element_cls, dotted, conversion, refs) for item in items]
            values[name] = [b[0] for b in blocks]
            for part, index in ((unknown, 1), (sensitive, 2), (expressions, 3)):
                if any(b[index] for b in blocks):
                    part[name] = [b[index] for b in blocks]
        else:
            if shape == "unknown":
                conversion.unverified.append(f"{dotted} (no such property in the SDK)")
            values[name] = value
    return values, unknown, sensitive, expressions


def _references(value: Any, refs: dict[str, Reference] | None) -> set[str] | None:
    """Terraform references for a value that is (or is a list of) another resource's id/ARN/name."""
    if not refs:
        return None
    items = value if isinstance(value, list) else [value]
    if not items or not all(isinstance(item, str) and item in refs for item in items):
        return None
    out: set[str] = set()
    for item in items:
        ref = refs[item]
        out.update({f"{ref.address}.{ref.attribute}", ref.address})
    return out


def _address_name(name: str) -> str:
    """A Terraform resource name (letters, digits, ``_`` and ``-``, not starting with a digit)."""
    cleaned = re.sub(r"[^A-Za-z0-9_-]", "_", name)
    return cleaned if re.match(r"[A-Za-z_]", cleaned) else f"_{cleaned}"


# Output attributes whose values other resources quote (in this order of preference).
REFERENCE_ATTRIBUTES = ("id", "arn", "name", "keyId", "bucket", "dnsName", "zoneId")


@dataclass
class Converted:
    """A Terraform plan document and what was left out of it."""

    document: dict[str, Any]
    skipped: list[tuple[str, str, str]]
    unverified: dict[str, list[str]]


def convert(plan: dict[str, Any]) -> Converted:
    """Convert a ``resources.json`` document (``seaport.tools.synth``) into a Terraform plan document."""
    skipped: list[tuple[str, str, str]] = []
    unverified_types: list[tuple[str, str]] = []
    chosen: list[tuple[dict[str, Any], str, str]] = []
    used: set[str] = set()
    for resource in plan["resources"]:
        token = resource["type"]
        if not resource.get("custom"):
            skipped.append((token, resource["name"], "component resource"))
            continue
        if token.startswith("pulumi:"):
            skipped.append((token, resource["name"], "Pulumi engine resource"))
            continue
        if token in NO_TERRAFORM_COUNTERPART:
            skipped.append((token, resource["name"], NO_TERRAFORM_COUNTERPART[token]))
            continue
        if token.split(":")[0] not in PROVIDERS:
            skipped.append((token, resource["name"], "provider without a Terraform counterpart here"))
            continue
        tf_type = terraform_type(token)
        if tf_type is None:
            tf_type = mechanical_type(token)
            unverified_types.append((token, tf_type))
        name = _address_name(resource["name"])
        address = f"{tf_type}.{name}"
        suffix = 2
        while address in used:
            address = f"{tf_type}.{name}_{suffix}"
            suffix += 1
        used.add(address)
        chosen.append((resource, tf_type, address))

    # The values each resource returned that others may quote, by urn.
    # A value a resource takes as an input is not its own (a bucket policy's id is its bucket's name).
    quoted: dict[str, dict[str, Reference]] = {}
    for resource, _, address in chosen:
        outputs = resource.get("outputs") or {}
        own_inputs = {v for v in (resource.get("inputs") or {}).values() if isinstance(v, str)}
        table: dict[str, Reference] = {}
        for attribute in reversed(REFERENCE_ATTRIBUTES):
            value = outputs.get(attribute)
            if isinstance(value, str) and value and value != SECRET and value not in own_inputs:
                table[value] = Reference(address, snake(attribute))
        quoted[resource["urn"]] = table

    planned: list[dict[str, Any]] = []
    changes: list[dict[str, Any]] = []
    configuration: list[dict[str, Any]] = []
    unverified: dict[str, list[str]] = {
        f"{tf_type}.*": [f"type of {token} (not in tfplan_reference.json)"] for token, tf_type in unverified_types
    }
    for resource, tf_type, address in chosen:
        token = resource["type"]
        package = token.split(":")[0]
        refs: dict[str, Reference] = {}
        for dependency in resource.get("dependencies") or []:
            refs.update(quoted.get(dependency, {}))
        conversion = Conversion(token=token, address=address)
        inputs = dict(resource.get("inputs") or {})
        outputs = resource.get("outputs") or {}
        # Computed values the mocks returned (ids, ARNs) join the inputs; an output the provider's schema
        # doesn't have (the mocks answer an ARN for every resource) is left out.
        known = set(property_types(cls)) | {"id"} if (cls := resource_class(token)) is not None else set(outputs)
        merged = {**{k: v for k, v in outputs.items() if k not in inputs and k in known}, **inputs}
        values, unknown, sensitive, expressions = _convert_object(merged, cls, "", conversion, refs)
        if conversion.unverified:
            unverified[address] = sorted(set(conversion.unverified))
        name = address.split(".", 1)[1]
        provider = PROVIDERS[package]
        planned.append(
            {
                "address": address,
                "mode": "managed",
                "type": tf_type,
                "name": name,
                "provider_name": provider,
                "schema_version": 0,
                "values": values,
                "sensitive_values": sensitive,
            }
        )
        changes.append(
            {
                "address": address,
                "mode": "managed",
                "type": tf_type,
                "name": name,
                "provider_name": provider,
                "change": {
                    "actions": ["create"],
                    "before": None,
                    "after": values,
                    "after_unknown": unknown,
                    "before_sensitive": False,
                    "after_sensitive": sensitive,
                },
            }
        )
        configuration.append(
            {
                "address": address,
                "mode": "managed",
                "type": tf_type,
                "name": name,
                "provider_config_key": package,
                "expressions": expressions,
                "schema_version": 0,
            }
        )

    document = {
        "format_version": FORMAT_VERSION,
        "terraform_version": TERRAFORM_VERSION,
        "planned_values": {"root_module": {"resources": planned}},
        "resource_changes": changes,
        "configuration": {
            "provider_config": {
                package: {"name": package, "full_name": PROVIDERS[package]}
                for package in sorted({c["provider_config_key"] for c in configuration})
            },
            "root_module": {"resources": configuration},
        },
        "timestamp": "2026-01-01T00:00:00Z",
        "applyable": True,
        "complete": True,
        "errored": False,
    }
    return Converted(document=document, skipped=skipped, unverified=unverified)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.tfplan", description=__doc__.splitlines()[0])
    parser.add_argument("resources", type=Path, help="resources.json written by seaport.tools.synth")
    parser.add_argument("-o", "--out", type=Path, required=True, help="where to write the Terraform plan JSON")
    parser.add_argument("-v", "--verbose", action="store_true", help="list the resources left out")
    args = parser.parse_args(argv)
    converted = convert(json.loads(args.resources.read_text()))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(converted.document, indent=1, sort_keys=True) + "\n")
    resources = converted.document["planned_values"]["root_module"]["resources"]
    print(f"Wrote {args.out}: {len(resources)} Terraform resources, {len(converted.skipped)} Pulumi resources left out")
    if args.verbose:
        for token, name, reason in converted.skipped:
            print(f"  left out {token} {name}: {reason}")
    for address, paths in converted.unverified.items():
        print(f"  warning: {address}: unverified Terraform name for {', '.join(paths)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

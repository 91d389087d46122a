"""Stack settings -> component arguments: the one place that reads ``pulumi.Config``.

``Pulumi.yaml`` declares every setting (type, default, description). Each
setting is a component argument under the same name: the key is the
argument's name in camelCase, after a prefix where two components share a
name (``minTasks`` -> the portal's ``autoscaling.min_tasks``, ``consulVersion`` ->
ConsulMesh's ``version``). ``ARGUMENTS`` is that map. The components own the
defaults (``make docs`` copies them into Pulumi.yaml) and the rules: this
module runs each component's own ``problems()`` over the arguments the
settings give and reports every problem at once, under the setting's name::

    seaport:minTasks=5 must be <= seaport:maxTasks=3

``SettingsError`` derives from ``pulumi.RunError``, so ``pulumi up`` prints the
message without a Python traceback, and ``make plan`` exits non-zero.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pulumi
import yaml

import seaport
from seaport import (
    autoscaling,
    cluster,
    consul,
    containers,
    images,
    load_balancer,
    messaging,
    monitoring,
    network,
    service,
    web_service,
)
from seaport import validation as check
from seaport.args import Problem

PROJECT = "seaport"
PROJECT_FILE = Path(__file__).with_name("Pulumi.yaml")
CLUSTER_NAME = "seaport"  # the EcsCluster's name in __main__.py (its rules depend on it)

# Every setting that is a component argument: key -> [(component, argument path), ...].
ARGUMENTS: dict[str, list[tuple[str, str]]] = {
    # Network
    "vpcCidr": [("network", "vpc_cidr")],
    "azCount": [("network", "az_count")],
    "subnetPrefixLength": [("network", "subnet_prefix_length")],
    "privateSubnets": [("network", "private_subnets")],
    "singleNatGateway": [("network", "single_nat_gateway")],
    "flowLogs": [("network", "flow_logs")],
    "existingVpcId": [("network", "existing_vpc_id")],
    "existingPublicSubnetIds": [("network", "existing_public_subnet_ids")],
    "existingPrivateSubnetIds": [("network", "existing_private_subnet_ids")],
    # EcsCluster
    "instanceType": [("cluster", "instance_type")],
    "minInstances": [("cluster", "min_instances")],
    "maxInstances": [("cluster", "max_instances")],
    "rootVolumeSizeGiB": [("cluster", "root_volume_size_gib")],
    "containerInsights": [("cluster", "container_insights"), ("monitoring", "container_insights")],
    "capacityTargetPercent": [("cluster", "capacity_target_percent")],
    # the portal (ScaledWebService)
    "minTasks": [("portal", "autoscaling.min_tasks")],
    "maxTasks": [("portal", "autoscaling.max_tasks")],
    "scalingMode": [("portal", "autoscaling.scaling_mode")],
    "scaleOutCpuPercent": [("portal", "autoscaling.scale_out_cpu_percent")],
    "scaleInCpuPercent": [("portal", "autoscaling.scale_in_cpu_percent")],
    "targetCpuPercent": [("portal", "autoscaling.target_cpu_percent")],
    "scaleOutCooldownSeconds": [("portal", "autoscaling.scale_out_cooldown_seconds")],
    "scaleInCooldownSeconds": [("portal", "autoscaling.scale_in_cooldown_seconds")],
    "certificateArn": [("portal", "load_balancer.certificate_arn")],
    "domainName": [("portal", "load_balancer.domain_name")],
    "hostedZoneId": [("portal", "load_balancer.hosted_zone_id")],
    "deletionProtection": [("portal", "load_balancer.deletion_protection")],
    "accessLogs": [("portal", "load_balancer.access_logs")],
    "accessLogRetentionDays": [("portal", "load_balancer.access_log_retention_days")],
    "waf": [("portal", "load_balancer.waf")],
    "wafRateLimit": [("portal", "load_balancer.waf_rate_limit")],
    "healthCheckPath": [("portal", "load_balancer.health_check_path")],
    "webCpu": [("portal", "container.cpu")],
    "webMemoryMiB": [("portal", "container.memory_mib")],
    # the portal's backends (ContainerService each)
    "backendDesiredTasks": [("backends", "desired_tasks")],
    # ContainerImage (every image)
    "platform": [("images", "platform")],
    "imageRetainCount": [("images", "retain_count")],
    "imageForceDelete": [("images", "force_delete")],
    # ConsulMesh
    "consulServers": [("consul", "servers")],
    "consulVersion": [("consul", "version")],
    "consulInstanceType": [("consul", "instance_type")],
    # RabbitMessaging
    "brokerMode": [("messaging", "broker_mode")],
    "rabbitmqImage": [("messaging", "rabbitmq_image")],
    "brokerNodes": [("messaging", "broker_nodes")],
    "brokerInstanceType": [("messaging", "broker_instance_type")],
    "amazonMqDeploymentMode": [("messaging", "amazon_mq_deployment_mode")],
    "amazonMqInstanceType": [("messaging", "amazon_mq_instance_type")],
    "amazonMqEngineVersion": [("messaging", "amazon_mq_engine_version")],
    "queueName": [("messaging", "queue_name")],
    "queueType": [("messaging", "queue_type")],
    "sendTasks": [("messaging", "send_tasks")],
    "sendRate": [("messaging", "send_rate")],
    "receiveMinTasks": [("messaging", "receive_autoscaling.min_tasks")],
    "receiveMaxTasks": [("messaging", "receive_autoscaling.max_tasks")],
    "receiveTargetBacklogPerTask": [("messaging", "receive_autoscaling.target_backlog_per_task")],
    # Monitoring
    "alarmEmail": [("monitoring", "alarm_email")],
    "errorRatePercent": [("monitoring", "error_rate_percent")],
    "latencyP99Seconds": [("monitoring", "latency_p99_seconds")],
    "runningTasksMinutes": [("monitoring", "running_tasks_minutes")],
    "backlogMessages": [("monitoring", "backlog_messages")],
    "backlogMinutes": [("monitoring", "backlog_minutes")],
    "brokerMemoryPercent": [("monitoring", "broker_memory_percent")],
    # every component with logs
    "logRetentionDays": [
        ("network", "log_retention_days"),
        ("portal", "service.log_retention_days"),
        ("portal", "load_balancer.log_retention_days"),
        ("backends", "log_retention_days"),
        ("consul", "log_retention_days"),
        ("messaging", "log_retention_days"),
    ],
}
# Prefixes a key may carry before the argument's own name (where two components share a name).
KEY_PREFIXES = ("", "web", "backend", "image", "consul", "receive")

# Each component's rules and defaults, as the component declares them.
VALIDATORS: dict[str, Callable[[dict[str, Any]], list[Problem]]] = {
    "network": network.problems,
    "cluster": lambda args: cluster.problems(args, CLUSTER_NAME),  # type: ignore[arg-type]
    "portal": lambda args: web_service.problems(args, "portal"),  # type: ignore[arg-type]
    "backends": lambda args: service.problems(args, "backend"),  # type: ignore[arg-type]
    "images": images.problems,  # type: ignore[dict-item]
    "consul": consul.problems,  # type: ignore[dict-item]
    "messaging": messaging.problems,  # type: ignore[dict-item]
    "monitoring": monitoring.problems,  # type: ignore[dict-item]
}
DEFAULTS: dict[str, dict[str, Any]] = {
    "network": network.DEFAULTS,
    "cluster": cluster.DEFAULTS,
    "portal": {
        "autoscaling": autoscaling.DEFAULTS,
        "load_balancer": load_balancer.DEFAULTS,
        "container": containers.CONTAINER_DEFAULTS,
        "service": service.DEFAULTS,
    },
    "backends": service.DEFAULTS,
    "images": images.DEFAULTS,
    "consul": consul.DEFAULTS,
    "messaging": {**messaging.DEFAULTS, "receive_autoscaling": autoscaling.DEFAULTS},
    "monitoring": monitoring.DEFAULTS,
}


class SettingsError(pulumi.RunError):
    """One or more stack settings are invalid; ``problems`` lists them."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid stack settings:\n" + "\n".join(f"  - {p}" for p in problems))


@dataclass(frozen=True)
class Settings:
    """What the stack's settings give each component, plus the settings the program itself reads."""

    stack: str
    args: dict[str, dict[str, Any]]
    """component -> its arguments from the settings (nested like the component's args)."""
    tags: dict[str, str]
    temp_scale: str

    def __getitem__(self, component: str) -> dict[str, Any]:
        return self.args.get(component, {})


@cache
def schema() -> dict[str, dict]:
    """The ``config:`` block of Pulumi.yaml: key -> {type, default, description}."""
    return yaml.safe_load(PROJECT_FILE.read_text())["config"]


def load(config: pulumi.Config | None = None, stack: str | None = None) -> Settings:
    """Read every setting of the current stack, validate them together, return them as component arguments."""
    config = config or pulumi.Config(PROJECT)
    values, problems = {}, []
    for key, spec in schema().items():
        try:
            values[key] = _read(config, key, spec)
        except ValueError as error:
            problems.append(str(error))
    if problems:  # type errors first: the rules assume well-typed values
        raise SettingsError(problems)
    return from_values(values, stack or pulumi.get_stack())


def from_values(values: dict[str, Any], stack: str) -> Settings:
    """Build and validate ``Settings`` from typed values keyed like Pulumi.yaml (defaults filled in)."""
    values = {key: values.get(key, spec.get("default")) for key, spec in schema().items()}
    tags, problems = _parse_tags(values["tags"])
    args: dict[str, dict[str, Any]] = {component: {} for component in VALIDATORS}
    for key, targets in ARGUMENTS.items():
        if values.get(key) in (None, ""):  # "" is how Pulumi.yaml says "not set" for a string
            continue
        for component, path in targets:
            _put(args[component], path, values[key])
    problems += [
        _renamed(component, p) for component, validate in VALIDATORS.items() for p in validate(args[component])
    ]
    problems = [p for p in problems if p]
    problems += _program_rules(values, tags)
    if problems:
        raise SettingsError(list(dict.fromkeys(problems)))
    return Settings(stack=stack, args=args, tags=tags, temp_scale=values["tempScale"])


def _program_rules(values: dict[str, Any], tags: dict[str, str]) -> list[str]:
    """Rules across components, and rules of the settings the program reads itself."""
    problems = []
    instance_type, platform = values["instanceType"], values["platform"]
    if not check.instance_type(instance_type) and not check.one_of(platform, seaport.Platform):
        problem = check.platform_matches(platform, instance_type)
        if problem:
            problems.append(f"{_key('instanceType')}={instance_type!r} {problem[:-1]}; set {_key('platform')})")
    if not (values["certificateArn"] or values["domainName"]) and not values["allowPlainHttp"]:
        problems.append(
            f"{_key('domainName')} is not set: the portal would serve the internet over plain HTTP. Set "
            f"{_key('domainName')} and {_key('hostedZoneId')} (or {_key('certificateArn')}), or "
            f"{_key('allowPlainHttp')}=true for a stack that may (dev)"
        )
    if check.one_of(values["tempScale"], ("C", "F")):
        problems.append(f"{_key('tempScale')}={values['tempScale']!r} must be one of C, F")
    if check.tags(tags):
        problems.append(f"{_key('tags')}={tags!r} {check.tags(tags)}")
    return problems


# -- names: argument paths <-> setting keys -----------------------------------------------------


def _put(target: dict[str, Any], path: str, value: Any) -> None:
    *parents, leaf = path.split(".")
    for part in parents:
        target = target.setdefault(part, {})
    target[leaf] = value


@cache
def _keys_by_path() -> dict[tuple[str, str], str]:
    return {(component, path): key for key, targets in ARGUMENTS.items() for component, path in targets}


def _renamed(component: str, problem: Problem) -> str | None:
    """A component's problem said with setting keys, or None when no setting sets that argument."""
    keys = _keys_by_path()
    key = keys.get((component, problem.path))
    if key is None:
        return None
    parent = problem.path.rpartition(".")[0]

    def rename(match: re.Match) -> str:
        name, equals = match.group(1), match.group(2)
        for path in (f"{parent}.{name}" if parent else name, name):
            if (component, path) in keys:
                return _key(keys[(component, path)]) + equals
        return match.group(0)

    # Argument names the message mentions ("must be <= max_tasks=3", "only used with existing_vpc_id").
    message = re.sub(r"\b([a-z][a-z0-9]*(?:[._][a-z0-9]+)+)\b(=?)", rename, problem.message)
    return f"{_key(key)}={problem.value!r} {message}"


def _key(name: str) -> str:
    return f"{PROJECT}:{name}"


def component_default(key: str) -> Any:
    """The default a setting takes from its component (what ``make docs`` writes into Pulumi.yaml)."""
    component, path = ARGUMENTS[key][0]
    value: Any = DEFAULTS[component]
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return str(value) if isinstance(value, str) else value  # enum members as their values


# -- reading --------------------------------------------------------------------------------------


def _read(config: pulumi.Config, key: str, spec: dict) -> Any:
    """One setting, converted to its declared type; ValueError names the key and the value."""
    raw = config.get(key)
    if raw is None:
        return spec.get("default")
    kind = spec["type"]
    if kind == "string":
        return raw
    if kind == "integer":
        try:
            return int(raw)
        except ValueError:
            raise ValueError(f"{_key(key)}={raw!r} is not a whole number") from None
    if kind == "number":
        try:
            return float(raw)
        except ValueError:
            raise ValueError(f"{_key(key)}={raw!r} is not a number") from None
    if kind == "boolean":
        if raw.lower() in ("true", "false"):
            return raw.lower() == "true"
        raise ValueError(f"{_key(key)}={raw!r} must be true or false")
    if kind == "array":
        try:
            items = json.loads(raw)
        except json.JSONDecodeError:
            items = None
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise ValueError(f"{_key(key)}={raw!r} must be a list of strings")
        return items
    raise ValueError(f"{_key(key)} has type {kind!r} in Pulumi.yaml, which settings.py does not read")


def _parse_tags(items: list[str]) -> tuple[dict[str, str], list[str]]:
    tags, problems = {}, []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            problems.append(f"{_key('tags')} item {item!r} must be key=value")
        elif key.strip() in tags:
            problems.append(f"{_key('tags')} sets {key.strip()!r} twice")
        else:
            tags[key.strip()] = value.strip()
    return tags, problems

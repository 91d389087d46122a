"""Typed, validated stack settings: the one place that reads ``pulumi.Config``.

``Pulumi.yaml`` declares every setting (type, default, description); this
module reads each one with its declared type, falls back to the declared
default, and validates the whole set before the program creates anything.
Every problem found is reported at once, one line each, naming the key, the
value and what is accepted::

    seaport:minTasks=5 must be <= seaport:maxTasks=3

``SettingsError`` derives from ``pulumi.RunError``, so ``pulumi up`` prints
the message without a Python traceback, and ``make plan`` exits non-zero.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from functools import cache
from pathlib import Path
from typing import Any

import pulumi
import yaml
from seaport import validation as check

PROJECT = "seaport"
PROJECT_FILE = Path(__file__).with_name("Pulumi.yaml")


class SettingsError(pulumi.RunError):
    """One or more stack settings are invalid; ``problems`` lists them."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid stack settings:\n" + "\n".join(f"  - {p}" for p in problems))


def setting(key: str) -> Any:
    """A dataclass field read from the project setting ``key`` (its default lives in Pulumi.yaml)."""
    return field(metadata={"key": key})


@dataclass(frozen=True)
class NetworkSettings:
    vpc_cidr: str = setting("vpcCidr")
    az_count: int = setting("azCount")
    subnet_prefix_length: int = setting("subnetPrefixLength")
    private_subnets: bool = setting("privateSubnets")
    single_nat_gateway: bool = setting("singleNatGateway")
    existing_vpc_id: str = setting("existingVpcId")
    existing_public_subnet_ids: list[str] = setting("existingPublicSubnetIds")
    existing_private_subnet_ids: list[str] = setting("existingPrivateSubnetIds")

    @property
    def adopt(self) -> bool:
        """True when an existing VPC is used instead of a new one."""
        return bool(self.existing_vpc_id)


@dataclass(frozen=True)
class ClusterSettings:
    instance_type: str = setting("instanceType")
    min_instances: int = setting("minInstances")
    max_instances: int = setting("maxInstances")
    root_volume_size_gib: int = setting("rootVolumeSizeGiB")
    container_insights: bool = setting("containerInsights")
    capacity_target_percent: int = setting("capacityTargetPercent")


@dataclass(frozen=True)
class WebSettings:
    min_tasks: int = setting("minTasks")
    desired_tasks: int = setting("desiredTasks")
    max_tasks: int = setting("maxTasks")
    scaling_mode: str = setting("scalingMode")
    scale_out_cpu_percent: int = setting("scaleOutCpuPercent")
    scale_in_cpu_percent: int = setting("scaleInCpuPercent")
    target_cpu_percent: int = setting("targetCpuPercent")
    scale_out_cooldown_seconds: int = setting("scaleOutCooldownSeconds")
    scale_in_cooldown_seconds: int = setting("scaleInCooldownSeconds")
    certificate_arn: str = setting("certificateArn")
    health_check_path: str = setting("healthCheckPath")
    cpu: int = setting("webCpu")
    memory_mib: int = setting("webMemoryMiB")
    backend_tasks: int = setting("backendTasks")
    temp_scale: str = setting("tempScale")


@dataclass(frozen=True)
class ImageSettings:
    platform: str = setting("platform")
    retain_count: int = setting("imageRetainCount")
    force_delete: bool = setting("forceDeleteImages")


@dataclass(frozen=True)
class ConsulSettings:
    servers: int = setting("consulServers")
    version: str = setting("consulVersion")
    instance_type: str = setting("consulInstanceType")


@dataclass(frozen=True)
class MessagingSettings:
    broker_mode: str = setting("brokerMode")
    rabbitmq_image: str = setting("rabbitmqImage")
    amazon_mq_instance_type: str = setting("amazonMqInstanceType")
    amazon_mq_engine_version: str = setting("amazonMqEngineVersion")
    queue_name: str = setting("queueName")
    queue_type: str = setting("queueType")
    send_tasks: int = setting("sendTasks")
    send_rate: int = setting("sendRate")
    receive_tasks: int = setting("receiveTasks")


@dataclass(frozen=True)
class Settings:
    """Everything a stack can set, grouped by the component that uses it."""

    stack: str
    network: NetworkSettings
    cluster: ClusterSettings
    web: WebSettings
    images: ImageSettings
    consul: ConsulSettings
    messaging: MessagingSettings
    log_retention_days: int = setting("logRetentionDays")
    tags: dict[str, str] = setting("tags")


SECTIONS = {
    "network": NetworkSettings,
    "cluster": ClusterSettings,
    "web": WebSettings,
    "images": ImageSettings,
    "consul": ConsulSettings,
    "messaging": MessagingSettings,
}


@cache
def schema() -> dict[str, dict]:
    """The ``config:`` block of Pulumi.yaml: key -> {type, default, description}."""
    return yaml.safe_load(PROJECT_FILE.read_text())["config"]


def load(config: pulumi.Config | None = None, stack: str | None = None) -> Settings:
    """Read every setting of the current stack, validate them together, return them typed."""
    config = config or pulumi.Config(PROJECT)
    values, problems = {}, []
    for key, spec in schema().items():
        try:
            values[key] = _read(config, key, spec)
        except ValueError as error:
            problems.append(str(error))
    if problems:  # type errors first: the rules below assume well-typed values
        raise SettingsError(problems)
    return from_values(values, stack or pulumi.get_stack())


def from_values(values: dict[str, Any], stack: str) -> Settings:
    """Build and validate ``Settings`` from typed values keyed like Pulumi.yaml (defaults filled in)."""
    values = {key: values.get(key, spec.get("default")) for key, spec in schema().items()}
    tags, tag_problems = _parse_tags(values["tags"])
    values["tags"] = tags

    def build(cls):
        return cls(**{f.name: values[f.metadata["key"]] for f in fields(cls) if "key" in f.metadata})

    settings = Settings(
        stack=stack,
        **{name: build(cls) for name, cls in SECTIONS.items()},
        log_retention_days=values["logRetentionDays"],
        tags=tags,
    )
    problems = tag_problems + validate(settings)
    if problems:
        raise SettingsError(problems)
    return settings


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
            raise ValueError(f"{PROJECT}:{key}={raw!r} is not a whole number") from None
    if kind == "boolean":
        if raw.lower() in ("true", "false"):
            return raw.lower() == "true"
        raise ValueError(f"{PROJECT}:{key}={raw!r} must be true or false")
    if kind == "array":
        try:
            items = json.loads(raw)
        except json.JSONDecodeError:
            items = None
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise ValueError(f"{PROJECT}:{key}={raw!r} must be a list of strings")
        return items
    raise ValueError(f"{PROJECT}:{key} has type {kind!r} in Pulumi.yaml, which settings.py does not read")


def _parse_tags(items: list[str]) -> tuple[dict[str, str], list[str]]:
    tags, problems = {}, []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            problems.append(f"{PROJECT}:tags item {item!r} must be key=value")
        elif key.strip() in tags:
            problems.append(f"{PROJECT}:tags sets {key.strip()!r} twice")
        else:
            tags[key.strip()] = value.strip()
    return tags, problems


def _key(name: str) -> str:
    return f"{PROJECT}:{name}"


def validate(s: Settings) -> list[str]:
    """Every rule the settings must satisfy; an empty list means they are fine."""
    problems: list[str] = []

    def rule(key: str, value: Any, problem: str | None) -> None:
        if problem:
            problems.append(f"{_key(key)}={value!r} {problem}")

    def order(low_key: str, low: int, high_key: str, high: int, strict: bool = False) -> None:
        if low > high or (strict and low == high):
            relation = "<" if strict else "<="
            problems.append(f"{_key(low_key)}={low} must be {relation} {_key(high_key)}={high}")

    net, cluster, web, consul, msg = s.network, s.cluster, s.web, s.consul, s.messaging

    # network
    rule("azCount", net.az_count, check.int_between(net.az_count, 2, 6))
    if net.adopt:
        rule("existingVpcId", net.existing_vpc_id, check.vpc_id(net.existing_vpc_id))
        rule(
            "existingPublicSubnetIds",
            net.existing_public_subnet_ids,
            check.subnet_ids(net.existing_public_subnet_ids, 2),
        )
        if net.private_subnets:
            rule(
                "existingPrivateSubnetIds",
                net.existing_private_subnet_ids,
                check.subnet_ids(net.existing_private_subnet_ids, 1),
            )
        elif net.existing_private_subnet_ids:
            rule(
                "existingPrivateSubnetIds",
                net.existing_private_subnet_ids,
                "is only used with seaport:privateSubnets=true",
            )
    else:
        for key in ("existingPublicSubnetIds", "existingPrivateSubnetIds"):
            ids = getattr(net, "existing_public_subnet_ids" if "Public" in key else "existing_private_subnet_ids")
            if ids:
                rule(key, ids, "is only used with seaport:existingVpcId (adopt an existing VPC)")
        cidr_problem = check.cidr_block(net.vpc_cidr)
        rule("vpcCidr", net.vpc_cidr, cidr_problem)
        if not cidr_problem and not check.int_between(net.az_count, 2, 6):
            needed = net.az_count * (2 if net.private_subnets else 1)
            rule(
                "subnetPrefixLength",
                net.subnet_prefix_length,
                check.subnets_fit(net.vpc_cidr, net.subnet_prefix_length, needed),
            )
    if net.single_nat_gateway and not net.private_subnets:
        rule("singleNatGateway", True, "is only used with seaport:privateSubnets=true")

    # cluster and images
    rule("instanceType", cluster.instance_type, check.instance_type(cluster.instance_type))
    rule("platform", s.images.platform, check.one_of(s.images.platform, check.PLATFORMS))
    if not check.instance_type(cluster.instance_type) and s.images.platform in check.PLATFORMS:
        problem = check.platform_matches(s.images.platform, cluster.instance_type)
        rule("instanceType", cluster.instance_type, problem and f"{problem[:-1]}; set seaport:platform)")
    rule("minInstances", cluster.min_instances, check.int_between(cluster.min_instances, 0, 100))
    rule("maxInstances", cluster.max_instances, check.int_between(cluster.max_instances, 1, 100))
    order("minInstances", cluster.min_instances, "maxInstances", cluster.max_instances)
    rule(
        "rootVolumeSizeGiB",
        cluster.root_volume_size_gib,
        check.int_between(cluster.root_volume_size_gib, 30, 16384),
    )
    rule(
        "capacityTargetPercent",
        cluster.capacity_target_percent,
        check.int_between(cluster.capacity_target_percent, 1, 100),
    )
    rule("imageRetainCount", s.images.retain_count, check.int_between(s.images.retain_count, 1, 1000))

    # web service and its scaling
    rule("minTasks", web.min_tasks, check.int_between(web.min_tasks, 1, 100))
    rule("maxTasks", web.max_tasks, check.int_between(web.max_tasks, 1, 100))
    if web.min_tasks > web.max_tasks:
        order("minTasks", web.min_tasks, "maxTasks", web.max_tasks)
    else:
        order("minTasks", web.min_tasks, "desiredTasks", web.desired_tasks)
        order("desiredTasks", web.desired_tasks, "maxTasks", web.max_tasks)
    rule("scalingMode", web.scaling_mode, check.one_of(web.scaling_mode, check.SCALING_MODES))
    rule("scaleInCpuPercent", web.scale_in_cpu_percent, check.int_between(web.scale_in_cpu_percent, 1, 99))
    rule("scaleOutCpuPercent", web.scale_out_cpu_percent, check.int_between(web.scale_out_cpu_percent, 2, 100))
    order("scaleInCpuPercent", web.scale_in_cpu_percent, "scaleOutCpuPercent", web.scale_out_cpu_percent, True)
    rule("targetCpuPercent", web.target_cpu_percent, check.int_between(web.target_cpu_percent, 10, 90))
    for key, value in (
        ("scaleOutCooldownSeconds", web.scale_out_cooldown_seconds),
        ("scaleInCooldownSeconds", web.scale_in_cooldown_seconds),
    ):
        rule(key, value, check.int_between(value, 0, 3600))
    rule("certificateArn", web.certificate_arn, check.certificate_arn(web.certificate_arn))
    rule("healthCheckPath", web.health_check_path, check.url_path(web.health_check_path))
    rule("webCpu", web.cpu, check.int_between(web.cpu, 64, 10240))
    rule("webMemoryMiB", web.memory_mib, check.int_between(web.memory_mib, 64, 122880))
    rule("backendTasks", web.backend_tasks, check.int_between(web.backend_tasks, 1, 50))
    rule("tempScale", web.temp_scale, check.one_of(web.temp_scale, ("C", "F")))

    # logs and tags
    rule("logRetentionDays", s.log_retention_days, check.log_retention(s.log_retention_days))
    rule("tags", s.tags, check.tags(s.tags))

    # consul
    rule("consulServers", consul.servers, check.one_of(consul.servers, (1, 3, 5)))
    rule("consulVersion", consul.version, check.semver(consul.version))
    rule("consulInstanceType", consul.instance_type, check.instance_type(consul.instance_type))

    # messaging
    rule("brokerMode", msg.broker_mode, check.one_of(msg.broker_mode, ("container", "amazonmq")))
    rule("rabbitmqImage", msg.rabbitmq_image, check.rabbitmq_image(msg.rabbitmq_image))
    rule(
        "amazonMqInstanceType",
        msg.amazon_mq_instance_type,
        check.mq_instance_type(msg.amazon_mq_instance_type),
    )
    rule(
        "amazonMqEngineVersion",
        msg.amazon_mq_engine_version,
        check.mq_engine_version(msg.amazon_mq_engine_version),
    )
    rule("queueName", msg.queue_name, check.queue_name(msg.queue_name))
    rule("queueType", msg.queue_type, check.one_of(msg.queue_type, ("quorum", "classic")))
    rule("sendTasks", msg.send_tasks, check.int_between(msg.send_tasks, 0, 50))
    rule("sendRate", msg.send_rate, check.int_between(msg.send_rate, 1, 10000))
    rule("receiveTasks", msg.receive_tasks, check.int_between(msg.receive_tasks, 0, 50))
    return problems

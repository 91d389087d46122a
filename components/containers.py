"""Containers of a task: their arguments, their ECS container definitions and their checks."""

import re
from typing import Any, Required, TypedDict

import pulumi

from . import rules
from . import validation as check
from .args import InvalidArgument, Problem, Problems, with_defaults

ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
SECRET_ARN = re.compile(r"^arn:aws[a-z-]*:(secretsmanager|ssm):[a-z0-9-]+:\d{12}:")
TMPFS_MIB = 64
DEPENDENCY_CONDITIONS = ("START", "HEALTHY", "COMPLETE", "SUCCESS")

HEALTH_CHECK_DEFAULTS: dict[str, Any] = {
    "interval_seconds": 15,
    "timeout_seconds": 5,
    "retries": 3,
    "start_period_seconds": 30,
}
CONTAINER_DEFAULTS: dict[str, Any] = {
    "essential": True,
    "cpu": 256,
    "memory_mib": 512,
    "command": [],
    "environment": {},
    "secrets": {},
    "mount_points": [],
    "read_only_root_filesystem": True,
    "tmpfs": [],
    "depends_on": {},
    "extra_hosts": {},
}
# What a sidecar gets instead (it helps the main container; it is small and not essential unless it says so).
SIDECAR_DEFAULTS: dict[str, Any] = {**CONTAINER_DEFAULTS, "essential": False, "cpu": 64, "memory_mib": 64}


class HealthCheck(TypedDict, total=False):
    command: Required[list[str]]
    """Docker health check command, e.g. ``["CMD", "python", "-m", "apps.common.healthcheck"]``. Required."""
    interval_seconds: int
    """Seconds between checks. Default ``15``."""
    timeout_seconds: int
    """Seconds before a check counts as failed. Default ``5``."""
    retries: int
    """Failures in a row before the container is unhealthy. Default ``3``."""
    start_period_seconds: int
    """Grace period after start during which failures don't count. Default ``30``."""


class MountPoint(TypedDict, total=False):
    source_volume: Required[str]
    """Name of a volume in the service's ``volumes``. Required."""
    container_path: Required[str]
    """Where the volume appears in the container. Required."""
    read_only: bool
    """Mount read-only. Default ``False``."""


class Container(TypedDict, total=False):
    name: str
    """Container name, unique in the task. Default: the component's name for the main container; sidecars need
    one."""
    image: Required[pulumi.Input[str]]
    """Image reference by digest (``repo@sha256:...``), so a new build rolls the service. Required."""
    essential: bool
    """Stop the task when this container stops. Default ``True`` (``False`` for a sidecar)."""
    cpu: int
    """CPU units reserved (1024 = one vCPU). Default ``256`` (``64`` for a sidecar)."""
    memory_mib: int
    """Hard memory limit in MiB. Default ``512`` (``64`` for a sidecar)."""
    port: int
    """Container port; mapped to a dynamic host port in bridge mode. Default: none."""
    command: list[str]
    """Arguments after the image's entry point. Default ``[]`` (the image's)."""
    environment: dict[str, pulumi.Input[str]]
    """Plain environment variables; secret-looking names (PASSWORD, PASS, TOKEN, KEY...) and secret values are
    refused. Default ``{}``."""
    secrets: dict[str, pulumi.Input[str]]
    """Environment variable -> Secrets Manager secret ARN (optionally ``<arn>:<json-key>::``). Default ``{}``."""
    health_check: HealthCheck
    """Container health check. Default: none."""
    mount_points: list[MountPoint]
    """Volumes mounted into the container. Default ``[]``."""
    read_only_root_filesystem: bool
    """Read-only root filesystem with a small tmpfs on /tmp. Default ``True``."""
    tmpfs: list[str]
    """More writable in-memory directories (64 MiB each) on a read-only root filesystem, e.g. the configuration
    directory an image's entry point writes at start. Default ``[]``."""
    depends_on: dict[str, str]
    """Container name -> condition (START, HEALTHY, COMPLETE, SUCCESS) to wait for. Default ``{}``."""
    hostname: str
    """Host name inside the container (bridge mode), e.g. for a stable RabbitMQ node name. Default: Docker's."""
    extra_hosts: dict[str, pulumi.Input[str]]
    """Host name -> IP address lines added to the container's /etc/hosts (bridge mode). Default ``{}``."""


def definition(
    c: dict[str, Any],
    network_mode: str,
    log_group: pulumi.Input[str],
    region: pulumi.Input[str],
    stream_prefix: str,
    stop_timeout: int,
) -> dict[str, Any]:
    """One ECS container definition as Python data (keys exactly as the ECS API spells them).

    ``c`` has its defaults filled in (``with_defaults``)."""
    result: dict[str, Any] = {
        "name": c["name"],
        "image": c["image"],
        "essential": c["essential"],
        "cpu": c["cpu"],
        "memory": c["memory_mib"],
        "environment": [{"name": k, "value": v} for k, v in sorted(c["environment"].items())],
        "secrets": [{"name": k, "valueFrom": v} for k, v in sorted(c["secrets"].items())],
        "logConfiguration": {
            "logDriver": "awslogs",
            "options": {"awslogs-group": log_group, "awslogs-region": region, "awslogs-stream-prefix": stream_prefix},
        },
        "readonlyRootFilesystem": c["read_only_root_filesystem"],
        # Seconds between SIGTERM and SIGKILL: apps drain in-flight work in this window.
        "stopTimeout": stop_timeout,
    }
    if c["read_only_root_filesystem"]:
        writable = ["/tmp", *c["tmpfs"]]  # noqa: S108
        result["linuxParameters"] = {"tmpfs": [{"containerPath": path, "size": TMPFS_MIB} for path in writable]}
    if c.get("port"):
        # Bridge mode: hostPort 0 lets Docker pick a free ephemeral port, so copies share an instance.
        host_port = c["port"] if network_mode == "host" else 0
        result["portMappings"] = [{"containerPort": c["port"], "hostPort": host_port, "protocol": "tcp"}]
    if c["command"]:
        result["command"] = list(c["command"])
    if c.get("health_check"):
        h = with_defaults(c["health_check"], HEALTH_CHECK_DEFAULTS)
        result["healthCheck"] = {
            "command": list(h["command"]),
            "interval": h["interval_seconds"],
            "timeout": h["timeout_seconds"],
            "retries": h["retries"],
            "startPeriod": h["start_period_seconds"],
        }
    if c["mount_points"]:
        result["mountPoints"] = [
            {
                "sourceVolume": m["source_volume"],
                "containerPath": m["container_path"],
                "readOnly": m.get("read_only", False),
            }
            for m in c["mount_points"]
        ]
    if c.get("hostname"):
        result["hostname"] = c["hostname"]
    if c["extra_hosts"]:
        result["extraHosts"] = pulumi.Output.from_input(c["extra_hosts"]).apply(
            lambda hosts: [{"hostname": k, "ipAddress": v} for k, v in sorted(hosts.items())]
        )
    if c["depends_on"]:
        result["dependsOn"] = [{"containerName": k, "condition": v} for k, v in c["depends_on"].items()]
    return result


def problems(c: dict[str, Any], volumes: set[str]) -> list[Problem]:
    """Every bad field of one container (``c`` with defaults filled in); paths are relative to the container."""
    found = Problems()
    found.require(c, "image")
    found.check("cpu", c["cpu"], check.int_between(c["cpu"], 0, 10240))
    found.check("memory_mib", c["memory_mib"], check.int_between(c["memory_mib"], 6, 122880))
    if c.get("port") is not None:
        found.check("port", c["port"], check.int_between(c["port"], 1, 65535))
    for key in c["environment"]:
        found.check(f"environment.{key}", key, None if ENV_NAME.match(key) else "is not a valid variable name")
        if rules.looks_secret(key):
            found.check(f"environment.{key}", key, "looks like a secret: pass it in secrets (a Secrets Manager ARN)")
    for key, arn in c["secrets"].items():
        found.check(f"secrets.{key}", key, None if ENV_NAME.match(key) else "is not a valid variable name")
        if isinstance(arn, str) and not SECRET_ARN.match(arn):
            found.check(f"secrets.{key}", arn, "is not a Secrets Manager secret or SSM parameter ARN")
    for index, mount in enumerate(c["mount_points"]):
        if mount.get("source_volume") not in volumes:
            found.check(f"mount_points[{index}].source_volume", mount.get("source_volume"), "is not one of volumes")
    for index, path in enumerate(c["tmpfs"]):
        if not c["read_only_root_filesystem"]:
            found.check(f"tmpfs[{index}]", path, "is only used with read_only_root_filesystem=True")
        elif not (isinstance(path, str) and path.startswith("/") and path.rstrip("/") not in ("", "/tmp")):  # noqa: S108
            found.check(f"tmpfs[{index}]", path, "must be an absolute directory other than / and /tmp (always one)")
    for other, condition in c["depends_on"].items():
        found.check(f"depends_on.{other}", condition, check.one_of(condition, DEPENDENCY_CONDITIONS))
    if c.get("health_check") is not None and not c["health_check"].get("command"):
        found.check("health_check.command", None, "is required")
    return found


async def refuse_secret_values(label: str, environment: dict[str, Any]) -> None:
    """Fail the deployment if an environment value is a secret output (it would sit in plain task state).

    Runs while the outputs resolve, before the task definition that would hold them is created."""
    for key, value in environment.items():
        if isinstance(value, pulumi.Output) and await value.is_secret():
            raise InvalidArgument(
                [Problem(f"{label}.environment.{key}", "[secret]", "is a secret value: pass it in secrets instead")]
            )

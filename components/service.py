"""ContainerService: one ECS service on an EC2 cluster, with its logs, roles and task definition."""

import json
import re
from typing import Any, Required, TypedDict

import pulumi
import pulumi_aws as aws

from . import iam
from . import validation as check
from .tagging import name_tags

SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|KEY|CREDENTIAL", re.IGNORECASE)
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
SECRET_ARN = re.compile(r"^arn:aws[a-z-]*:(secretsmanager|ssm):[a-z0-9-]+:\d{12}:")
ECR_IMAGE = re.compile(r"^(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com/(?P<repo>[^@:]+)")
# Bridge mode maps each container port to a host port the kernel picks from this range.
EPHEMERAL_PORTS = (32768, 65535)


class HealthCheck(TypedDict, total=False):
    command: Required[list[str]]
    """Docker health check command, e.g. ``["CMD", "python", "-m", "apps.common.healthcheck", "..."]``. Required."""
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
    """Name of a volume in ``volumes``. Required."""
    container_path: Required[str]
    """Where the volume appears in the container. Required."""
    read_only: bool
    """Mount read-only. Default ``False``."""


class Volume(TypedDict, total=False):
    name: Required[str]
    """Volume name, referenced by mount points. Required."""
    host_path: str
    """Bind-mount this path of the instance (e.g. the Consul agent's data dir). Default: none."""
    docker_volume: bool
    """A Docker volume that outlives the task on its instance (scope shared, autoprovisioned). Default ``False``."""


class Container(TypedDict, total=False):
    name: str
    """Container name, unique in the task. Default: the component name for the main container; sidecars need one."""
    image: Required[pulumi.Input[str]]
    """Image reference; use a digest (``repo@sha256:...``) so a new build rolls the service. Required."""
    essential: bool
    """Stop the task when this container stops. Default ``True`` for the main container, ``False`` for sidecars."""
    cpu: int
    """CPU units reserved (1024 = one vCPU). Default ``64`` for sidecars."""
    memory_mib: int
    """Hard memory limit in MiB. Default ``64`` for sidecars."""
    port: int
    """Container port; mapped to a dynamic host port in bridge mode. Default: none."""
    command: list[str]
    """Arguments after the image's entry point. Default: the image's."""
    environment: dict[str, pulumi.Input[str]]
    """Plain environment variables; secret-like names (PASSWORD, TOKEN, KEY...) are refused. Default ``{}``."""
    secrets: dict[str, pulumi.Input[str]]
    """Environment variable -> Secrets Manager secret ARN (optionally ``:json-key::``). Default ``{}``."""
    health_check: HealthCheck
    """Container health check. Default: none."""
    mount_points: list[MountPoint]
    """Volumes mounted into the container. Default ``[]``."""
    read_only_root_filesystem: bool
    """Read-only root filesystem with a small tmpfs on /tmp. Default ``True``."""
    depends_on: dict[str, str]
    """Container name -> condition (START, HEALTHY, COMPLETE, SUCCESS) to wait for. Default ``{}``."""
    hostname: str
    """Host name inside the container (bridge mode), e.g. for a stable RabbitMQ node name. Default: Docker's."""
    extra_hosts: dict[str, str]
    """Host name -> IP address lines added to the container's /etc/hosts (bridge mode). Default ``{}``."""


class LoadBalancerAttachment(TypedDict):
    target_group_arn: pulumi.Input[str]
    """Target group (instance targets) the main container's port is registered in. Required."""


class ContainerServiceArgs(TypedDict, total=False):
    cluster_arn: Required[pulumi.Input[str]]
    """ARN of the ECS cluster. Required."""
    capacity_provider_name: pulumi.Input[str]
    """Capacity provider to run on (replica services). Default: none (DAEMON services use launch type EC2)."""
    container: Required[Container]
    """The main container (its ``name`` defaults to the component name). Required."""
    sidecars: list[Container]
    """Extra containers in the same task (e.g. the Consul registrar). Default ``[]``."""
    volumes: list[Volume]
    """Task volumes. Default ``[]``."""
    network_mode: str
    """``bridge`` (dynamic host ports) or ``host`` (the instance's network, e.g. a Consul agent). Default ``bridge``."""
    scheduling: str
    """``REPLICA`` (``desired_count`` tasks) or ``DAEMON`` (one task on every instance). Default ``REPLICA``."""
    desired_count: int
    """Tasks to run (REPLICA only). Default ``1``."""
    autoscaled: bool
    """The desired count is owned by Application Auto Scaling, so deployments leave it alone. Default ``False``."""
    min_healthy_percent: int
    """Deployment floor of running tasks. Default ``100`` (``0`` for DAEMON)."""
    max_percent: int
    """Deployment ceiling of running tasks. Default ``200`` (``100`` for DAEMON)."""
    stop_timeout_seconds: int
    """Seconds between SIGTERM and SIGKILL, for graceful shutdown. Default ``30``."""
    load_balancer: LoadBalancerAttachment
    """Register the main container's port in this target group. Default: none."""
    health_check_grace_period_seconds: int
    """With a load balancer: seconds before failing target health checks stop a new task. Default ``60``."""
    task_role_statements: list[dict[str, Any]]
    """IAM statements (Python data) for the task role. Default ``[]``: the task can call no AWS API."""
    log_retention_days: int
    """CloudWatch Logs retention, one of the values CloudWatch accepts. Default ``30``."""
    family: str
    """Task definition family. Default ``<project>-<stack>-<name>``."""
    tags: dict[str, str]
    """Tags added to every resource. Default ``{}``."""


class ContainerService(pulumi.ComponentResource):
    """An ECS service in bridge (or host) network mode on an EC2 cluster.

    Creates a log group with retention, an execution role that may pull only
    the ECR repositories of its images, write only its log group and read only
    the secrets it is given, a task role with only the statements given, a
    task definition with dynamic host ports, and the service: on the cluster's
    capacity provider, spread over Availability Zones then bin-packed on
    memory, with the deployment circuit breaker rolling back failed
    deployments. ``scheduling="DAEMON"`` runs one task per instance instead.
    """

    service_name: pulumi.Output[str]
    """Name of the ECS service."""
    service_arn: pulumi.Output[str]
    """ARN of the ECS service."""
    task_definition_arn: pulumi.Output[str]
    """ARN (with revision) of the task definition."""
    log_group_name: pulumi.Output[str]
    """CloudWatch log group of every container in the task."""
    execution_role_arn: pulumi.Output[str]
    """Role ECS uses to pull images, write logs and read secrets."""
    task_role_arn: pulumi.Output[str]
    """Role the containers' code runs with."""
    task_role_name: pulumi.Output[str]
    """Name of the task role (to attach more policies)."""

    def __init__(self, name: str, args: ContainerServiceArgs, opts: pulumi.ResourceOptions | None = None):
        validate_service_args(name, args)  # before anything is registered
        super().__init__("seaport:index:ContainerService", name, None, opts)
        tags = args.get("tags", {})
        child = pulumi.ResourceOptions(parent=self)
        daemon = args.get("scheduling", "REPLICA") == "DAEMON"
        main = {"essential": True, "read_only_root_filesystem": True, **args["container"]}
        main.setdefault("name", name)
        sidecars = [{"essential": False, "cpu": 64, "memory_mib": 64, **s} for s in args.get("sidecars", [])]
        containers = [main, *sidecars]

        logs = aws.cloudwatch.LogGroup(
            f"{name}-logs",
            retention_in_days=args.get("log_retention_days", 30),
            tags=name_tags(tags, f"{name}-logs"),
            opts=child,
        )
        region = aws.get_region_output(opts=pulumi.InvokeOutputOptions(parent=self)).region
        account = aws.get_caller_identity_output(opts=pulumi.InvokeOutputOptions(parent=self)).account_id

        execution_role = _role(f"{name}-execution", account, tags, child)
        secret_arns = [arn for c in containers for arn in c.get("secrets", {}).values()]
        aws.iam.RolePolicy(
            f"{name}-execution",
            role=execution_role.name,
            policy=pulumi.Output.all(logs.arn, [c["image"] for c in containers], secret_arns).apply(
                lambda v: _execution_policy(*v)
            ),
            opts=child,
        )
        task_role = _role(f"{name}-task", account, tags, child)
        if args.get("task_role_statements"):
            aws.iam.RolePolicy(
                f"{name}-task",
                role=task_role.name,
                policy=iam.policy_document(args["task_role_statements"]),
                opts=child,
            )

        network_mode = args.get("network_mode", "bridge")
        stop_timeout = args.get("stop_timeout_seconds", 30)
        definitions = pulumi.Output.from_input(
            [container_definition(c, network_mode, logs.name, region, name, stop_timeout) for c in containers]
        ).apply(json.dumps)
        task_definition = aws.ecs.TaskDefinition(
            f"{name}-task",
            family=args.get("family") or f"{pulumi.get_project()}-{pulumi.get_stack()}-{name}",
            network_mode=network_mode,
            requires_compatibilities=["EC2"],
            execution_role_arn=execution_role.arn,
            task_role_arn=task_role.arn,
            container_definitions=definitions,
            volumes=[_volume(v) for v in args.get("volumes", [])],
            tags=name_tags(tags, f"{name}-task"),
            opts=child,
        )

        load_balancer = args.get("load_balancer")
        service = aws.ecs.Service(
            name,
            cluster=args["cluster_arn"],
            task_definition=task_definition.arn,
            scheduling_strategy="DAEMON" if daemon else "REPLICA",
            desired_count=None if daemon else args.get("desired_count", 1),
            # DAEMON services can't use a capacity provider strategy; they run on every instance.
            launch_type="EC2" if daemon or not args.get("capacity_provider_name") else None,
            capacity_provider_strategies=None
            if daemon or not args.get("capacity_provider_name")
            else [
                aws.ecs.ServiceCapacityProviderStrategyArgs(
                    capacity_provider=args["capacity_provider_name"], weight=1, base=0
                )
            ],
            deployment_circuit_breaker=aws.ecs.ServiceDeploymentCircuitBreakerArgs(enable=True, rollback=True),
            deployment_minimum_healthy_percent=args.get("min_healthy_percent", 0 if daemon else 100),
            deployment_maximum_percent=args.get("max_percent", 100 if daemon else 200),
            ordered_placement_strategies=None
            if daemon
            else [
                aws.ecs.ServiceOrderedPlacementStrategyArgs(type="spread", field="attribute:ecs.availability-zone"),
                aws.ecs.ServiceOrderedPlacementStrategyArgs(type="binpack", field="memory"),
            ],
            load_balancers=[
                aws.ecs.ServiceLoadBalancerArgs(
                    target_group_arn=load_balancer["target_group_arn"],
                    container_name=main["name"],
                    container_port=main["port"],
                )
            ]
            if load_balancer
            else None,
            health_check_grace_period_seconds=args.get("health_check_grace_period_seconds", 60)
            if load_balancer
            else None,
            enable_ecs_managed_tags=True,
            propagate_tags="SERVICE",
            tags=name_tags(tags, name),
            opts=pulumi.ResourceOptions(
                parent=self, ignore_changes=["desiredCount"] if args.get("autoscaled") else None
            ),
        )

        self.service_name = service.name
        self.service_arn = service.id
        self.task_definition_arn = task_definition.arn
        self.log_group_name = logs.name
        self.execution_role_arn = execution_role.arn
        self.task_role_arn = task_role.arn
        self.task_role_name = task_role.name
        self.register_outputs(
            {
                "service_name": self.service_name,
                "service_arn": self.service_arn,
                "task_definition_arn": self.task_definition_arn,
                "log_group_name": self.log_group_name,
                "execution_role_arn": self.execution_role_arn,
                "task_role_arn": self.task_role_arn,
                "task_role_name": self.task_role_name,
            }
        )


def container_definition(
    c: Container,
    network_mode: str,
    log_group: pulumi.Input[str],
    region: pulumi.Input[str],
    prefix: str,
    stop_timeout: int = 30,
) -> dict[str, Any]:
    """One ECS container definition as Python data (keys exactly as the ECS API spells them)."""
    definition: dict[str, Any] = {
        "name": c["name"],
        "image": c["image"],
        "essential": c.get("essential", False),
        "cpu": c.get("cpu", 64),
        "memory": c.get("memory_mib", 64),
        "environment": [{"name": k, "value": v} for k, v in sorted(c.get("environment", {}).items())],
        "secrets": [{"name": k, "valueFrom": v} for k, v in sorted(c.get("secrets", {}).items())],
        "logConfiguration": {
            "logDriver": "awslogs",
            "options": {"awslogs-group": log_group, "awslogs-region": region, "awslogs-stream-prefix": prefix},
        },
        "readonlyRootFilesystem": c.get("read_only_root_filesystem", False),
        # Seconds between SIGTERM and SIGKILL: apps drain in-flight work in this window.
        "stopTimeout": stop_timeout,
    }
    if definition["readonlyRootFilesystem"]:
        definition["linuxParameters"] = {"tmpfs": [{"containerPath": "/tmp", "size": 64}]}  # noqa: S108
    if c.get("port"):
        # Bridge mode: hostPort 0 lets Docker pick a free ephemeral port, so copies share an instance.
        host_port = c["port"] if network_mode == "host" else 0
        definition["portMappings"] = [{"containerPort": c["port"], "hostPort": host_port, "protocol": "tcp"}]
    if c.get("command"):
        definition["command"] = list(c["command"])
    if c.get("health_check"):
        h = c["health_check"]
        definition["healthCheck"] = {
            "command": list(h["command"]),
            "interval": h.get("interval_seconds", 15),
            "timeout": h.get("timeout_seconds", 5),
            "retries": h.get("retries", 3),
            "startPeriod": h.get("start_period_seconds", 30),
        }
    if c.get("mount_points"):
        definition["mountPoints"] = [
            {
                "sourceVolume": m["source_volume"],
                "containerPath": m["container_path"],
                "readOnly": m.get("read_only", False),
            }
            for m in c["mount_points"]
        ]
    if c.get("hostname"):
        definition["hostname"] = c["hostname"]
    if c.get("extra_hosts"):
        definition["extraHosts"] = pulumi.Output.from_input(c["extra_hosts"]).apply(
            lambda hosts: [{"hostname": k, "ipAddress": v} for k, v in sorted(hosts.items())]
        )
    if c.get("depends_on"):
        definition["dependsOn"] = [{"containerName": k, "condition": v} for k, v in c["depends_on"].items()]
    return definition


def _role(name: str, account: pulumi.Input[str], tags: dict[str, str], opts: pulumi.ResourceOptions) -> aws.iam.Role:
    """A role ECS tasks of this account (and only this account) may assume."""
    trust = pulumi.Output.from_input(account).apply(
        lambda account_id: iam.json_document(
            [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "ecs-tasks.amazonaws.com"},
                    "Action": "sts:AssumeRole",
                    # Confused-deputy protection: only ECS acting for this account.
                    "Condition": {"StringEquals": {"aws:SourceAccount": account_id}},
                }
            ]
        )
    )
    return aws.iam.Role(name, assume_role_policy=trust, tags=tags, opts=opts)


def _execution_policy(log_group_arn: str, images: list[str], secret_arns: list[str]) -> str:
    statements = [iam.statement(["logs:CreateLogStream", "logs:PutLogEvents"], [f"{log_group_arn}:*"])]
    repositories = sorted({arn for arn in (_ecr_repository_arn(i) for i in images) if arn})
    if repositories:
        statements.append(iam.statement(["ecr:GetAuthorizationToken"], ["*"]))  # can't be scoped
        statements.append(
            iam.statement(
                ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"], repositories
            )
        )
    if secret_arns:
        # A secret referenced as <arn>:<json-key>:: is still authorised on the secret's ARN.
        plain = sorted({":".join(a.split(":")[:7]) for a in secret_arns})
        statements.append(iam.statement(["secretsmanager:GetSecretValue"], plain))
    return iam.json_document(statements)


def _ecr_repository_arn(image: str) -> str | None:
    match = ECR_IMAGE.match(image or "")
    if not match:
        return None
    return f"arn:aws:ecr:{match['region']}:{match['account']}:repository/{match['repo']}"


def _volume(v: Volume) -> aws.ecs.TaskDefinitionVolumeArgs:
    if v.get("docker_volume"):
        return aws.ecs.TaskDefinitionVolumeArgs(
            name=v["name"],
            docker_volume_configuration=aws.ecs.TaskDefinitionVolumeDockerVolumeConfigurationArgs(
                scope="shared", autoprovision=True, driver="local"
            ),
        )
    return aws.ecs.TaskDefinitionVolumeArgs(name=v["name"], host_path=v.get("host_path"))


def validate_service_args(name: str, args: ContainerServiceArgs) -> None:
    """Raise InvalidArgument naming the first bad argument."""
    if not args.get("cluster_arn"):
        raise check.InvalidArgument("cluster_arn is required")
    container = args.get("container")
    if not container or not container.get("image"):
        raise check.InvalidArgument("container.image is required")
    scheduling = args.get("scheduling", "REPLICA")
    check.require(check.one_of(scheduling, ("REPLICA", "DAEMON")), "scheduling", scheduling)
    mode = args.get("network_mode", "bridge")
    check.require(check.one_of(mode, ("bridge", "host")), "network_mode", mode)
    if scheduling == "REPLICA":
        check.require(
            check.int_between(args.get("desired_count", 1), 0, 1000), "desired_count", args.get("desired_count")
        )
    for key, low, high in (("min_healthy_percent", 0, 100), ("max_percent", 100, 400)):
        if key in args:
            check.require(check.int_between(args[key], low, high), key, args[key])
    retention = args.get("log_retention_days", 30)
    check.require(check.log_retention(retention), "log_retention_days", retention)
    stop_timeout = args.get("stop_timeout_seconds", 30)
    check.require(check.int_between(stop_timeout, 2, 120), "stop_timeout_seconds", stop_timeout)
    if args.get("load_balancer") and not container.get("port"):
        raise check.InvalidArgument("load_balancer needs container.port: the port the target group sends traffic to")
    names = [container.get("name", name)] + [s.get("name") for s in args.get("sidecars", [])]
    if len(set(names)) != len(names) or not all(names):
        raise check.InvalidArgument(f"container names must be unique and set; got {names}")
    volumes = {v["name"] for v in args.get("volumes", [])}
    for c in [container, *args.get("sidecars", [])]:
        _validate_container(c, volumes)
    check.require(check.tags(args.get("tags", {})), "tags", args.get("tags", {}))


def _validate_container(c: Container, volumes: set[str]) -> None:
    label = f"container {c.get('name', '(main)')!r}"
    if not c.get("image"):
        raise check.InvalidArgument(f"{label}: image is required")
    if "cpu" in c:
        check.require(check.int_between(c["cpu"], 0, 10240), f"{label} cpu", c["cpu"])
    if "memory_mib" in c:
        check.require(check.int_between(c["memory_mib"], 6, 122880), f"{label} memory_mib", c["memory_mib"])
    if "port" in c:
        check.require(check.int_between(c["port"], 1, 65535), f"{label} port", c["port"])
    for key in c.get("environment", {}):
        if not ENV_NAME.match(key):
            raise check.InvalidArgument(f"{label}: environment name {key!r} is not a valid variable name")
        if SECRET_NAME.search(key):
            raise check.InvalidArgument(
                f"{label}: environment {key} looks like a secret; pass it in secrets (a Secrets Manager ARN) instead"
            )
    for key, arn in c.get("secrets", {}).items():
        if not ENV_NAME.match(key):
            raise check.InvalidArgument(f"{label}: secret name {key!r} is not a valid variable name")
        if isinstance(arn, str) and not SECRET_ARN.match(arn):
            raise check.InvalidArgument(
                f"{label}: secrets[{key}]={arn!r} is not a Secrets Manager or SSM parameter ARN"
            )
    for mount in c.get("mount_points", []):
        if mount.get("source_volume") not in volumes:
            raise check.InvalidArgument(f"{label}: mount of unknown volume {mount.get('source_volume')!r}")

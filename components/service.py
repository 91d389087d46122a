"""ContainerService: one ECS service on an EC2 cluster, with its logs, roles and task definition."""

import json
import re
from enum import StrEnum
from typing import Any, Required, TypedDict

import pulumi
import pulumi_aws as aws

from . import containers, discovery, iam, outputs, references
from . import validation as check
from .args import Problem, Problems, raise_if, with_defaults
from .cluster import DEDICATED_ATTRIBUTE
from .containers import Container
from .discovery import ConsulService
from .references import CLUSTER_REFERENCE_DEFAULTS, ClusterReference, DiscoveryReference, get
from .tagging import name_tags

ECR_IMAGE = re.compile(r"^(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com/(?P<repo>[^@:]+)")


class NetworkMode(StrEnum):
    BRIDGE = "bridge"
    """Each container port is published on a dynamic host port (several copies per instance)."""
    HOST = "host"
    """The instance's own network (a Consul agent, a clustered broker)."""


class Scheduling(StrEnum):
    REPLICA = "REPLICA"
    """``desired_tasks`` tasks placed by the capacity provider."""
    DAEMON = "DAEMON"
    """One task on every instance of the cluster."""


DEFAULTS: dict[str, Any] = {
    "sidecars": [],
    "volumes": [],
    "network_mode": NetworkMode.BRIDGE,
    "scheduling": Scheduling.REPLICA,
    "desired_tasks": 1,
    "min_healthy_percent": 100,
    "max_percent": 200,
    "stop_timeout_seconds": 30,
    "health_check_grace_period_seconds": 60,
    "task_role_statements": [],
    "placement_constraints": [],
    "log_retention_days": 30,
    "discovers": [],
    "deployment_alarms": [],
    "autoscaled": False,
    "tags": {},
}
# A daemon replaces its task in place on each instance: nothing to surge into.
DAEMON_DEFAULTS: dict[str, Any] = {**DEFAULTS, "min_healthy_percent": 0, "max_percent": 100}


class Volume(TypedDict, total=False):
    name: Required[str]
    """Volume name, referenced by mount points. Required."""
    host_path: str
    """Bind-mount this path of the instance (data that must outlive the task on its instance). Default: none."""
    docker_volume: bool
    """A Docker volume that outlives the task on its instance (scope shared, autoprovisioned). Default ``False``."""


class PlacementConstraint(TypedDict, total=False):
    type: Required[str]
    """``distinctInstance`` (one task per instance) or ``memberOf`` (instances matching ``expression``). Required."""
    expression: str
    """Cluster query language expression for ``memberOf``, e.g. ``attribute:seaport.broker == true``. Default:
    none."""


class ServiceOptions(TypedDict, total=False):
    sidecars: list[Container]
    """Extra containers in the same task. Default ``[]``."""
    volumes: list[Volume]
    """Task volumes. Default ``[]``."""
    network_mode: NetworkMode
    """``bridge`` (dynamic host ports) or ``host`` (the instance's network). Default ``"bridge"``."""
    scheduling: Scheduling
    """``REPLICA`` (``desired_tasks`` tasks) or ``DAEMON`` (one task on every instance). Default ``"REPLICA"``."""
    desired_tasks: int
    """Tasks to run (REPLICA only; the first deployment's count when autoscaled). Default ``1``."""
    min_healthy_percent: int
    """Deployment floor of running tasks. Default ``100`` (``0`` for DAEMON)."""
    max_percent: int
    """Deployment ceiling of running tasks. Default ``200`` (``100`` for DAEMON)."""
    stop_timeout_seconds: int
    """Seconds between SIGTERM and SIGKILL, for a graceful shutdown (2-120). Default ``30``."""
    health_check_grace_period_seconds: int
    """With a load balancer: seconds before failing target health checks stop a new task. Default ``60``."""
    task_role_statements: list[dict[str, Any]]
    """IAM statements (Python data) for the task role. Default ``[]``: the task can call no AWS API."""
    placement_constraints: list[PlacementConstraint]
    """Where tasks may run, e.g. ``[{"type": "distinctInstance"}]``. Default ``[]``."""
    dedicated_instance: str
    """Run on the cluster's dedicated instance of this name (``EcsCluster`` ``dedicated_instances``) instead of
    on the capacity provider: a task whose data lives on its host comes back to it after every restart and
    deployment. Default: none."""
    log_retention_days: int
    """CloudWatch Logs retention, one of the values CloudWatch accepts (1, 3, 5, 7, 14, 30, ...). Default ``30``."""
    family: str
    """Task definition family. Default: ``<project>-<stack>-<name>``."""
    discovery: pulumi.Input[DiscoveryReference]
    """Consul discovery (``ConsulMesh.discovery``), for ``discovers`` and ``consul_service``. Default: none."""
    discovers: list[str]
    """Consul services the main container looks up: it gets the agent's address, the reader token and the
    agent's host entry. Needs ``discovery``. Default ``[]``."""
    consul_service: ConsulService
    """Register the main container's port in Consul under this name (a registrar sidecar is added). Needs
    ``discovery`` and ``container.port``. Default: none."""
    deployment_alarms: list[str]
    """Names of CloudWatch alarms that fail a deployment when they go into ALARM; ECS then rolls it back (as
    the circuit breaker does), e.g. ``Monitoring``'s ``deployment_alarm_names``. Default ``[]``."""


class ContainerServiceArgs(ServiceOptions, total=False):
    cluster: Required[pulumi.Input[ClusterReference]]
    """The cluster to run on (``EcsCluster.reference``). Required."""
    container: Required[Container]
    """The main container (its ``name`` defaults to the component's name). Required."""
    target_group_arn: pulumi.Input[str]
    """Register the main container's port in this target group (instance targets). Default: none."""
    autoscaled: bool
    """The desired count belongs to Application Auto Scaling, so deployments leave it alone. Default ``False``."""
    tags: dict[str, str]
    """Tags added to every resource. Default ``{}``."""


class ContainerService(pulumi.ComponentResource):
    """An ECS service in bridge (or host) network mode on an EC2 cluster.

    Creates a log group with retention, an execution role that may pull only
    the ECR repositories of its images, write only its log group and read only
    the secrets it is given, a task role with only the statements given, a
    task definition with dynamic host ports, and the service: on the cluster's
    capacity provider (once it is associated), spread over Availability Zones
    then bin-packed on memory, with the deployment circuit breaker rolling back
    failed deployments. ``scheduling="DAEMON"`` runs one task per instance.
    With ``discovery``, the main container can look services up in Consul
    (``discovers``) and be registered there (``consul_service``).
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
        raise_if(problems(args, name))  # before anything is registered
        super().__init__("seaport:index:ContainerService", name, None, opts)
        a = resolve(args)
        child = pulumi.ResourceOptions(parent=self)
        task = task_containers(name, a)
        logs = aws.cloudwatch.LogGroup(
            f"{name}-logs",
            retention_in_days=a["log_retention_days"],
            tags=name_tags(a["tags"], f"{name}-logs"),
            opts=child,
        )
        execution_role, task_role = self._roles(name, a, task, logs.arn)
        region = aws.get_region_output(opts=pulumi.InvokeOutputOptions(parent=self)).region
        network_mode = a["network_mode"]
        labels = ["container", *(f"sidecars[{i}]" for i in range(len(task) - 1))]
        guards = [
            containers.refuse_secret_values(label, c["environment"]) for label, c in zip(labels, task, strict=True)
        ]
        definitions = pulumi.Output.all(
            [containers.definition(c, network_mode, logs.name, region, name, a["stop_timeout_seconds"]) for c in task],
            *guards,
        ).apply(lambda values: json.dumps(values[0]))
        task_definition = aws.ecs.TaskDefinition(
            f"{name}-task",
            family=a.get("family") or f"{pulumi.get_project()}-{pulumi.get_stack()}-{name}",
            network_mode=network_mode,
            requires_compatibilities=["EC2"],
            execution_role_arn=execution_role.arn,
            task_role_arn=task_role.arn,
            container_definitions=definitions,
            volumes=[_volume(v) for v in a["volumes"]],
            tags=name_tags(a["tags"], f"{name}-task"),
            opts=child,
        )
        service = self._service(name, a, task[0], task_definition.arn)

        outputs.register(
            self,
            service_name=service.name,
            service_arn=service.id,
            task_definition_arn=task_definition.arn,
            log_group_name=logs.name,
            execution_role_arn=execution_role.arn,
            task_role_arn=task_role.arn,
            task_role_name=task_role.name,
        )

    def _roles(
        self, name: str, a: dict[str, Any], task: list[dict[str, Any]], log_group_arn: pulumi.Output[str]
    ) -> tuple[aws.iam.Role, aws.iam.Role]:
        """The execution role (pull, log, read secrets: only these) and the task role (only what is given)."""
        child = pulumi.ResourceOptions(parent=self)
        account = aws.get_caller_identity_output(opts=pulumi.InvokeOutputOptions(parent=self)).account_id
        execution_role = _task_role(f"{name}-execution", account, a["tags"], child)
        secret_arns = [arn for c in task for arn in c["secrets"].values()]
        aws.iam.RolePolicy(
            f"{name}-execution",
            role=execution_role.name,
            policy=pulumi.Output.all(log_group_arn, [c["image"] for c in task], secret_arns).apply(
                lambda v: _execution_policy(*v)
            ),
            opts=child,
        )
        task_role = _task_role(f"{name}-task", account, a["tags"], child)
        if a["task_role_statements"]:
            aws.iam.RolePolicy(
                f"{name}-task", role=task_role.name, policy=iam.policy_document(a["task_role_statements"]), opts=child
            )
        return execution_role, task_role

    def _service(
        self, name: str, a: dict[str, Any], main: dict[str, Any], task_definition_arn: pulumi.Output[str]
    ) -> aws.ecs.Service:
        daemon = a["scheduling"] == Scheduling.DAEMON
        dedicated = a.get("dedicated_instance")
        on_capacity_provider = not (daemon or dedicated)
        cluster = a["cluster"]
        target_group = a.get("target_group_arn")
        constraints = list(a["placement_constraints"])
        if dedicated:
            expression = f"attribute:{DEDICATED_ATTRIBUTE} == {dedicated}"
            constraints.append({"type": "memberOf", "expression": expression})
        return aws.ecs.Service(
            name,
            cluster=get(cluster, "arn"),
            task_definition=task_definition_arn,
            scheduling_strategy=str(a["scheduling"]),
            desired_count=None if daemon else a["desired_tasks"],
            # DAEMON services can't use a capacity provider strategy (they run on every instance), and a
            # dedicated instance is outside it: both are placed by launch type.
            launch_type=None if on_capacity_provider else "EC2",
            capacity_provider_strategies=None
            if not on_capacity_provider
            else [
                aws.ecs.ServiceCapacityProviderStrategyArgs(
                    capacity_provider=get(cluster, "capacity_provider"), weight=1, base=0
                )
            ],
            # ECS derives the breaker's failure threshold from the desired count, which a daemon does not
            # have: on a DAEMON service the breaker never trips, so it is left off there.
            deployment_circuit_breaker=None
            if daemon
            else aws.ecs.ServiceDeploymentCircuitBreakerArgs(enable=True, rollback=True),
            alarms=aws.ecs.ServiceAlarmsArgs(alarm_names=a["deployment_alarms"], enable=True, rollback=True)
            if a["deployment_alarms"]
            else None,
            deployment_minimum_healthy_percent=a["min_healthy_percent"],
            deployment_maximum_percent=a["max_percent"],
            ordered_placement_strategies=None
            if not on_capacity_provider
            else [
                aws.ecs.ServiceOrderedPlacementStrategyArgs(type="spread", field="attribute:ecs.availability-zone"),
                aws.ecs.ServiceOrderedPlacementStrategyArgs(type="binpack", field="memory"),
            ],
            placement_constraints=[
                aws.ecs.ServicePlacementConstraintArgs(type=p["type"], expression=p.get("expression"))
                for p in constraints
            ]
            or None,
            load_balancers=[
                aws.ecs.ServiceLoadBalancerArgs(
                    target_group_arn=target_group, container_name=main["name"], container_port=main["port"]
                )
            ]
            if target_group
            else None,
            health_check_grace_period_seconds=a["health_check_grace_period_seconds"] if target_group else None,
            enable_ecs_managed_tags=True,
            propagate_tags="SERVICE",
            tags=name_tags(a["tags"], name, service_tags(a)),
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["desiredCount"] if a["autoscaled"] else None),
        )


def resolve(args: ContainerServiceArgs) -> dict[str, Any]:
    """The arguments with every default filled in (a DAEMON's own defaults included)."""
    daemon = (args or {}).get("scheduling") == Scheduling.DAEMON
    return with_defaults(args, DAEMON_DEFAULTS if daemon else DEFAULTS)


def task_containers(name: str, a: dict[str, Any]) -> list[dict[str, Any]]:
    """The task's containers with their defaults: the main one first, its Consul settings and registrar added."""
    main = with_defaults(a["container"], {**containers.CONTAINER_DEFAULTS, "name": name})
    if a["discovers"]:
        environment, secrets, hosts = discovery.client_settings(a["discovery"])
        main["environment"] = {**environment, **main["environment"]}
        main["secrets"] = {**secrets, **main["secrets"]}
        main["extra_hosts"] = main["extra_hosts"] or hosts
    sidecars = list(a["sidecars"])
    if a.get("consul_service"):
        sidecars.append(discovery.registrar_sidecar(a["discovery"], a["consul_service"], main["name"], main["port"]))
    return [main, *(with_defaults(s, containers.SIDECAR_DEFAULTS) for s in sidecars)]


def service_tags(a: dict[str, Any]) -> dict[str, str]:
    """Tags that say how the service is wired (read by people in the console and by seaport's diagram)."""
    tags = {}
    if a["discovers"]:
        tags["seaport:discovers"] = " ".join(sorted(a["discovers"]))
    if a.get("consul_service"):
        tags["seaport:consul-service"] = a["consul_service"]["name"]
    return tags


def problems(args: ContainerServiceArgs, name: str = "service") -> list[Problem]:
    """Every bad argument of a ContainerService."""
    found = Problems()
    found.require(args or {}, "cluster", "container")
    found.extend_under("cluster", references.problems((args or {}).get("cluster"), ClusterReference))
    a = resolve(args)
    found.extend(options_problems(a, (args or {}).get("container") or {}, name))
    return found


def options_problems(a: dict[str, Any], container: dict[str, Any], name: str) -> list[Problem]:
    """Problems of the service options (``a`` with defaults) and of its containers."""
    found = Problems()
    found.check("scheduling", a["scheduling"], check.one_of(a["scheduling"], Scheduling))
    found.check("network_mode", a["network_mode"], check.one_of(a["network_mode"], NetworkMode))
    found.check("desired_tasks", a["desired_tasks"], check.int_between(a["desired_tasks"], 0, 1000))
    found.check("min_healthy_percent", a["min_healthy_percent"], check.int_between(a["min_healthy_percent"], 0, 100))
    found.check("max_percent", a["max_percent"], check.int_between(a["max_percent"], 100, 400))
    found.check("stop_timeout_seconds", a["stop_timeout_seconds"], check.int_between(a["stop_timeout_seconds"], 2, 120))
    grace = a["health_check_grace_period_seconds"]
    found.check("health_check_grace_period_seconds", grace, check.int_between(grace, 0, 7200))
    found.check("log_retention_days", a["log_retention_days"], check.log_retention(a["log_retention_days"]))
    found.check("tags", a["tags"], check.tags(a["tags"]))
    alarms = a["deployment_alarms"]
    if not (isinstance(alarms, list) and all(isinstance(x, str) and 0 < len(x) <= 255 for x in alarms)):
        found.check("deployment_alarms", alarms, "must be a list of CloudWatch alarm names (1-255 characters)")
    for index, constraint in enumerate(a["placement_constraints"]):
        kind = constraint.get("type")
        found.check(f"placement_constraints[{index}].type", kind, check.one_of(kind, ("distinctInstance", "memberOf")))
    dedicated = a.get("dedicated_instance")
    if dedicated and a["scheduling"] == Scheduling.DAEMON:
        found.check("dedicated_instance", dedicated, "is for REPLICA services (a DAEMON runs on every instance)")
    cluster = a.get("cluster")
    available = (
        with_defaults(cluster, CLUSTER_REFERENCE_DEFAULTS)["dedicated_instances"] if isinstance(cluster, dict) else None
    )
    if dedicated and isinstance(available, list) and dedicated not in available:
        found.check("dedicated_instance", dedicated, f"is not one of the cluster's dedicated_instances {available}")
    if (a["discovers"] or a.get("consul_service")) and not a.get("discovery"):
        found.missing("discovery", "with discovers or consul_service")
    found.extend_under("discovery", references.problems(a.get("discovery"), DiscoveryReference))
    if a.get("consul_service"):
        found.extend_under("consul_service", discovery.problems(a["consul_service"]))
        if not container.get("port"):
            found.missing("container.port", "with consul_service: it is the port registered")
    if a.get("target_group_arn") and not container.get("port"):
        found.missing("container.port", "with a load balancer: it is the port it sends traffic to")
    volumes = {v["name"] for v in a["volumes"]}
    main = with_defaults(container, {**containers.CONTAINER_DEFAULTS, "name": name})
    found.extend_under("container", containers.problems(main, volumes))
    for index, sidecar in enumerate(a["sidecars"]):
        found.extend_under(
            f"sidecars[{index}]", containers.problems(with_defaults(sidecar, containers.SIDECAR_DEFAULTS), volumes)
        )
    names = [main["name"]] + [s.get("name") for s in a["sidecars"]]
    if len(set(names)) != len(names) or not all(names):
        found.check("sidecars", names, "need a name each, unique in the task (and not the main container's)")
    return found


def _task_role(
    name: str, account: pulumi.Input[str], tags: dict[str, str], opts: pulumi.ResourceOptions
) -> aws.iam.Role:
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

"""EcsCluster: an ECS cluster on an Auto Scaling group driven by a capacity provider."""

import json
from typing import Any, Required, TypedDict

import pulumi
import pulumi_aws as aws

from . import iam, instances, outputs, references, rules
from . import validation as check
from .args import Problem, Problems, raise_if, with_defaults
from .references import ClusterReference, NetworkReference, get
from .security_groups import admit_range, outbound_only_security_group
from .tagging import name_tags

# Public SSM parameters with the current ECS-optimized Amazon Linux 2023 AMI.
AMI_PARAMETERS = {
    "x86_64": "/aws/service/ecs/optimized-ami/amazon-linux-2023/recommended/image_id",
    "arm64": "/aws/service/ecs/optimized-ami/amazon-linux-2023/arm64/recommended/image_id",
}
RESERVED_PREFIXES = ("aws", "ecs", "fargate")
INSTANCE_WARMUP_SECONDS = 120

DEFAULTS: dict[str, Any] = {
    "instance_type": "t3.small",
    "min_instances": 1,
    "max_instances": 4,
    "root_volume_size_gib": 30,
    "container_insights": True,
    "capacity_target_percent": 100,
    "dedicated_instances": {},
    "dedicated_instance_counts": {},
    "metadata_blocked_uids": [100, 999],
    "tags": {},
}
# The ECS attribute that marks a dedicated instance; services reach it with a memberOf placement constraint.
DEDICATED_ATTRIBUTE = "seaport.dedicated"


class EcsClusterArgs(TypedDict, total=False):
    network: Required[pulumi.Input[NetworkReference]]
    """Where the instances go: ``Network.reference`` (or your own VPC's ids in that shape). Required."""
    instance_type: str
    """EC2 instance type (Graviton types such as t4g.* get the arm64 AMI). Default ``"t3.small"``."""
    min_instances: int
    """Fewest container instances the capacity provider keeps (0-100). Default ``1``."""
    max_instances: int
    """Most container instances the capacity provider may launch (1-100). Default ``4``."""
    root_volume_size_gib: int
    """Encrypted gp3 root volume size (at least 30, the AMI's size). Default ``30``."""
    container_insights: bool
    """CloudWatch Container Insights on the cluster (extra CloudWatch cost). Default ``True``."""
    capacity_target_percent: int
    """Managed scaling target utilisation of the cluster's capacity (1-100; lower keeps spare room). Default
    ``100``."""
    dedicated_instances: dict[str, str]
    """Name -> instance type (``""``: ``instance_type``) of single instances outside the capacity provider, each
    in an Auto Scaling group of one, for a service that must come back to the same host because its data lives
    there (a single broker node). A service runs there with ``dedicated_instance``. Losing the instance loses
    that data; it is not replaced by instance refreshes. Default ``{}``."""
    dedicated_instance_counts: dict[str, int]
    """Name (of ``dedicated_instances``) -> how many instances carry it (1-100; names left out get one). Each is an
    Auto Scaling group of one; with more than one, the i-th lives in instance subnet i modulo the number of
    subnets (so they spread over the AZs and a replacement starts in the AZ it replaces), all marked with the same
    attribute. A service with that ``dedicated_instance``, ``distinctInstance`` and as many tasks runs one task on
    each, and a task that stops can only come back to the instance it left (a clustered broker's nodes, whose
    names and data belong to their instances). A single instance may start in any instance subnet. Default
    ``{}``."""
    metadata_blocked_uids: list[int]
    """Users (uids) whose processes may not reach the instance metadata service, where the instance role's
    credentials are: host-network containers are not stopped by the hop limit. 100 is the official Consul
    image's ``consul``, 999 the official RabbitMQ image's ``rabbitmq``. Default ``[100, 999]``."""
    tags: dict[str, str]
    """Tags added to every resource and propagated to the instances. Default ``{}``."""


class EcsCluster(pulumi.ComponentResource):
    """An ECS cluster whose EC2 capacity scales with the tasks placed on it.

    Instances run the ECS-optimized Amazon Linux 2023 AMI (looked up from its
    public SSM parameter, so every deployment gets the patched image), require
    IMDSv2 with a hop limit of 1 (containers in bridge mode cannot borrow the
    instance role), boot from an encrypted gp3 volume, have no SSH key and no
    inbound rule but the ones services add (use SSM Session Manager), and only
    join the cluster in their user data: everything else runs as ECS services.
    A capacity provider with managed scaling and managed draining is the
    cluster's default strategy; instance refreshes replace instances while
    keeping the full capacity running.
    """

    cluster_name: pulumi.Output[str]
    """Name of the ECS cluster."""
    cluster_arn: pulumi.Output[str]
    """ARN of the ECS cluster."""
    capacity_provider_name: pulumi.Output[str]
    """Name of the capacity provider (the cluster's default strategy), known once it is associated."""
    instance_security_group_id: pulumi.Output[str]
    """Security group of the instances; other components add their ingress rules to it."""
    autoscaling_group_name: pulumi.Output[str]
    """Name of the Auto Scaling group."""
    instance_role_name: pulumi.Output[str]
    """Name of the instances' IAM role."""
    reference: pulumi.Output[ClusterReference]
    """What services need to run on this cluster: pass it as ``cluster`` to the other components."""

    def __init__(self, name: str, args: EcsClusterArgs, opts: pulumi.ResourceOptions | None = None):
        raise_if(problems(args, name))  # before anything is registered
        super().__init__("seaport:index:EcsCluster", name, None, opts)
        a = with_defaults(args, DEFAULTS)
        child = pulumi.ResourceOptions(parent=self)
        insights = "enabled" if a["container_insights"] else "disabled"
        cluster = aws.ecs.Cluster(
            name,
            settings=[aws.ecs.ClusterSettingArgs(name="containerInsights", value=insights)],
            tags=name_tags(a["tags"], name),
            opts=child,
        )
        security_group = outbound_only_security_group(
            f"{name}-instances",
            get(a["network"], "vpc_id"),
            f"ECS container instances of {name}; ingress is added by the services that need it",
            a["tags"],
            child,
        )
        # Tasks on one instance reach tasks on another (a backend, the broker) on their dynamic host ports.
        admit_range(
            f"{name}-task-to-task",
            security_group.id,
            rules.EPHEMERAL_PORTS,
            security_group.id,
            "tasks on other instances of this cluster, on the dynamic host ports",
            child,
        )
        role, profile, group = self._instances(name, a, cluster.name, security_group.id)
        provider_name = self._capacity(name, a, cluster.name, group.arn)
        for dedicated, instance_type in a["dedicated_instances"].items():
            self._dedicated(
                name,
                dedicated,
                instance_type or a["instance_type"],
                (a["dedicated_instance_counts"] or {}).get(dedicated, 1),
                a,
                cluster.name,
                security_group.id,
                profile.arn,
            )

        outputs.register(
            self,
            cluster_name=cluster.name,
            cluster_arn=cluster.arn,
            capacity_provider_name=provider_name,
            instance_security_group_id=security_group.id,
            autoscaling_group_name=group.name,
            instance_role_name=role.name,
            # a dict of outputs; other languages see an object
            reference={
                "arn": cluster.arn,
                "name": cluster.name,
                "capacity_provider": provider_name,
                "instance_security_group_id": security_group.id,
                "network": a["network"],
                "dedicated_instances": sorted(a["dedicated_instances"]),
            },
        )

    def _instances(
        self, name: str, a: dict[str, Any], cluster_name: pulumi.Output[str], security_group_id: pulumi.Output[str]
    ) -> tuple[aws.iam.Role, aws.iam.InstanceProfile, aws.autoscaling.Group]:
        """The instance role, the hardened launch template and the Auto Scaling group."""
        child = pulumi.ResourceOptions(parent=self)
        role, profile = instances.instance_role(
            f"{name}-instance", [iam.ECS_INSTANCE_POLICY, iam.SSM_INSTANCE_POLICY], a["tags"], child
        )
        template = instances.hardened_launch_template(
            f"{name}-instances",
            image_id=self._ami(a["instance_type"]),
            instance_type=a["instance_type"],
            profile_arn=profile.arn,
            security_group_id=security_group_id,
            user_data=cluster_name.apply(lambda cluster: user_data(cluster, blocked_uids=a["metadata_blocked_uids"])),
            volume_gib=a["root_volume_size_gib"],
            public_ip=get(a["network"], "instances_need_public_ip"),
            tags=a["tags"],
            opts=child,
        )
        group = aws.autoscaling.Group(
            f"{name}-instances",
            min_size=a["min_instances"],
            max_size=a["max_instances"],
            vpc_zone_identifiers=get(a["network"], "instance_subnet_ids"),
            launch_template=aws.autoscaling.GroupLaunchTemplateArgs(
                id=template.id, version=template.latest_version.apply(str)
            ),
            health_check_type="EC2",
            health_check_grace_period=INSTANCE_WARMUP_SECONDS,
            # the dashboard's instance count (Auto Scaling publishes group metrics only when asked)
            enabled_metrics=["GroupInServiceInstances", "GroupDesiredCapacity"],
            # Managed termination protection: the capacity provider decides which instances may go.
            protect_from_scale_in=True,
            # A new AMI or instance type rolls through the group: a replacement starts before an old instance
            # drains (min 100 %, max 200 %), so a refresh never takes capacity away from running tasks.
            instance_refresh=aws.autoscaling.GroupInstanceRefreshArgs(
                strategy="Rolling",
                preferences=aws.autoscaling.GroupInstanceRefreshPreferencesArgs(
                    min_healthy_percentage=100,
                    max_healthy_percentage=200,
                    instance_warmup=str(INSTANCE_WARMUP_SECONDS),
                    scale_in_protected_instances="Refresh",
                    standby_instances="Terminate",
                ),
            ),
            # Deleting the group terminates instances that scale-in protection keeps (see README, Destroy).
            force_delete=True,
            tags=[
                aws.autoscaling.GroupTagArgs(key=key, value=value, propagate_at_launch=True)
                for key, value in {**name_tags(a["tags"], f"{name}-instance"), "AmazonECSManaged": "true"}.items()
            ],
            # The capacity provider owns the desired count.
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["desiredCapacity"]),
        )
        return role, profile, group

    def _dedicated(
        self,
        name: str,
        dedicated: str,
        instance_type: str,
        count: int,
        a: dict[str, Any],
        cluster_name: pulumi.Output[str],
        security_group_id: pulumi.Output[str],
        profile_arn: pulumi.Output[str],
    ) -> list[aws.autoscaling.Group]:
        """``count`` instances outside the capacity provider, each in an Auto Scaling group of one, marked with the
        ECS attribute seaport.dedicated=<name>; several are spread one per instance subnet in turn."""
        child = pulumi.ResourceOptions(parent=self)
        template = instances.hardened_launch_template(
            f"{name}-{dedicated}",
            image_id=self._ami(instance_type),
            instance_type=instance_type,
            profile_arn=profile_arn,
            security_group_id=security_group_id,
            user_data=cluster_name.apply(
                lambda cluster: user_data(cluster, {DEDICATED_ATTRIBUTE: dedicated}, a["metadata_blocked_uids"])
            ),
            volume_gib=a["root_volume_size_gib"],
            public_ip=get(a["network"], "instances_need_public_ip"),
            tags=a["tags"],
            opts=child,
        )
        subnets = get(a["network"], "instance_subnet_ids")
        # One instance keeps the group name it always had and may start in any subnet; several each get a subnet
        # of their own, so they spread over the AZs and a replacement comes back to the AZ it replaces.
        groups = (
            [(f"{name}-{dedicated}", subnets)]
            if count == 1
            else [
                (f"{name}-{dedicated}-{index + 1}", subnets.apply(lambda ids, i=index: [ids[i % len(ids)]]))
                for index in range(count)
            ]
        )
        return [
            aws.autoscaling.Group(
                group,
                min_size=1,
                max_size=1,
                desired_capacity=1,
                vpc_zone_identifiers=zone,
                launch_template=aws.autoscaling.GroupLaunchTemplateArgs(
                    id=template.id, version=template.latest_version.apply(str)
                ),
                health_check_type="EC2",
                health_check_grace_period=INSTANCE_WARMUP_SECONDS,
                # No instance refresh: replacing this instance loses what is stored on it (see README, Operating).
                force_delete=True,
                tags=[
                    aws.autoscaling.GroupTagArgs(key=key, value=value, propagate_at_launch=True)
                    for key, value in name_tags(a["tags"], group, {DEDICATED_ATTRIBUTE: dedicated}).items()
                ],
                opts=child,
            )
            for group, zone in groups
        ]

    def _ami(self, instance_type: str) -> pulumi.Output[str]:
        # The AMI id is public: read it in clear (the provider marks the parameter's value sensitive), so a
        # previewed change, which replaces instances, stays readable.
        return pulumi.Output.unsecret(
            aws.ssm.get_parameter_output(
                name=AMI_PARAMETERS[check.instance_architecture(instance_type)],
                opts=pulumi.InvokeOutputOptions(parent=self),
            ).insecure_value
        )

    def _capacity(
        self, name: str, a: dict[str, Any], cluster_name: pulumi.Output[str], group_arn: pulumi.Output[str]
    ) -> pulumi.Output[str]:
        """The capacity provider and its association with the cluster; returns the provider's name *as
        associated*, so every service that names it in a strategy waits for the association (ECS refuses a
        strategy whose provider is not associated yet, and the provider does not retry that error)."""
        child = pulumi.ResourceOptions(parent=self)
        provider = aws.ecs.CapacityProvider(
            f"{name}-capacity",
            auto_scaling_group_provider=aws.ecs.CapacityProviderAutoScalingGroupProviderArgs(
                auto_scaling_group_arn=group_arn,
                managed_termination_protection="ENABLED",
                managed_draining="ENABLED",
                managed_scaling=aws.ecs.CapacityProviderAutoScalingGroupProviderManagedScalingArgs(
                    status="ENABLED",
                    target_capacity=a["capacity_target_percent"],
                    minimum_scaling_step_size=1,
                    maximum_scaling_step_size=max(1, a["max_instances"] // 2),
                    instance_warmup_period=INSTANCE_WARMUP_SECONDS,
                ),
            ),
            tags=a["tags"],
            opts=child,
        )
        association = aws.ecs.ClusterCapacityProviders(
            f"{name}-capacity",
            cluster_name=cluster_name,
            capacity_providers=[provider.name],
            default_capacity_provider_strategies=[
                aws.ecs.ClusterCapacityProvidersDefaultCapacityProviderStrategyArgs(
                    capacity_provider=provider.name, weight=1, base=0
                )
            ],
            opts=child,
        )
        return association.capacity_providers.apply(lambda names: names[0])


def problems(args: EcsClusterArgs, name: str = "cluster") -> list[Problem]:
    """Every bad argument of an EcsCluster."""
    a = with_defaults(args, DEFAULTS)
    found = Problems()
    found.require(a, "network")
    found.extend_under("network", references.problems(a.get("network"), NetworkReference))
    found.check("instance_type", a["instance_type"], check.instance_type(a["instance_type"]))
    low, high = a["min_instances"], a["max_instances"]
    found.check("min_instances", low, check.int_between(low, 0, 100))
    found.check("max_instances", high, check.int_between(high, 1, 100))
    if isinstance(low, int) and isinstance(high, int) and low > high:
        found.check("min_instances", low, f"must be <= max_instances={high}")
    volume = a["root_volume_size_gib"]
    found.check("root_volume_size_gib", volume, check.int_between(volume, 30, 16384))
    target = a["capacity_target_percent"]
    found.check("capacity_target_percent", target, check.int_between(target, 1, 100))
    found.check("tags", a["tags"], check.tags(a["tags"]))
    for index, uid in enumerate(a["metadata_blocked_uids"]):
        found.check(f"metadata_blocked_uids[{index}]", uid, check.int_between(uid, 1, 2**31 - 1))
    for dedicated, instance_type in (a["dedicated_instances"] or {}).items():
        if not (dedicated.isascii() and dedicated.replace("-", "").isalnum() and dedicated[:1].isalpha()):
            found.check(f"dedicated_instances.{dedicated}", dedicated, "must be letters, digits and -, from a letter")
        if instance_type:
            found.check(f"dedicated_instances.{dedicated}", instance_type, check.instance_type(instance_type))
    for dedicated, count in (a["dedicated_instance_counts"] or {}).items():
        found.check(f"dedicated_instance_counts.{dedicated}", count, check.int_between(count, 1, 100))
        if dedicated not in (a["dedicated_instances"] or {}):
            found.check(f"dedicated_instance_counts.{dedicated}", count, "names none of dedicated_instances")
    if name.lower().startswith(RESERVED_PREFIXES):
        found.check(
            "name", name, "must not start with aws, ecs or fargate: AWS reserves those prefixes for capacity providers"
        )
    return found


def user_data(
    cluster_name: str, attributes: dict[str, str] | None = None, blocked_uids: list[int] | None = None
) -> str:
    """The instances' boot script: join the cluster (with ``attributes``), keep ``blocked_uids`` away from the
    instance metadata service (at every boot), nothing else (services bring the rest)."""
    attribute_line = f"ECS_INSTANCE_ATTRIBUTES={json.dumps(attributes, sort_keys=True)}\n" if attributes else ""
    return _join(cluster_name, attribute_line) + (_metadata_guard(blocked_uids) if blocked_uids else "")


def _metadata_guard(uids: list[int]) -> str:
    """A systemd unit that rejects, at every boot, connections to the metadata service from these users."""
    starts = "\n".join(
        f"ExecStart=/usr/sbin/iptables -w -I OUTPUT -d 169.254.169.254/32 -m owner --uid-owner {uid} -j REJECT"
        for uid in uids
    )
    return f"""
# Host-network containers (the Consul agent, clustered RabbitMQ) must not borrow the instance role through
# the metadata service: the hop limit only stops bridge-mode containers.
cat > /etc/systemd/system/seaport-metadata-guard.service <<'UNIT'
[Unit]
Description=Keep host-network containers away from the instance metadata service
Before=docker.service ecs.service
[Service]
Type=oneshot
RemainAfterExit=yes
{starts}
[Install]
WantedBy=multi-user.target
UNIT
systemctl daemon-reload
systemctl enable --now seaport-metadata-guard.service
"""


def _join(cluster_name: str, attribute_line: str) -> str:
    return f"""#!/bin/bash
# Join ECS cluster {cluster_name}. Everything else on the instance runs as an ECS service.
set -euo pipefail
cat >> /etc/ecs/ecs.config <<'ECS_CONFIG'
ECS_CLUSTER={cluster_name}
{attribute_line}ECS_ENABLE_CONTAINER_METADATA=true
ECS_CONTAINER_STOP_TIMEOUT=60s
ECS_ENABLE_TASK_IAM_ROLE=true
ECS_ENABLE_TASK_IAM_ROLE_NETWORK_HOST=true
ECS_ENGINE_TASK_CLEANUP_WAIT_DURATION=30m
ECS_CONFIG
"""

"""EcsCluster: ECS cluster on an Auto Scaling group driven by a capacity provider."""

from typing import Required, TypedDict

import pulumi
import pulumi_aws as aws

from . import iam, instances
from . import validation as check
from .service import EPHEMERAL_PORTS
from .tagging import name_tags

# Public SSM parameters with the current ECS-optimized Amazon Linux 2023 AMI.
AMI_PARAMETERS = {
    "x86_64": "/aws/service/ecs/optimized-ami/amazon-linux-2023/recommended/image_id",
    "arm64": "/aws/service/ecs/optimized-ami/amazon-linux-2023/arm64/recommended/image_id",
}
RESERVED_PREFIXES = ("aws", "ecs", "fargate")


class EcsClusterArgs(TypedDict, total=False):
    vpc_id: Required[pulumi.Input[str]]
    """VPC of the instances' security group. Required."""
    subnet_ids: Required[pulumi.Input[list[str]]]
    """Subnets the Auto Scaling group launches instances into. Required."""
    instance_type: str
    """EC2 instance type (Graviton types get the arm64 AMI). Default ``t3.small``."""
    min_size: int
    """Fewest instances. Default ``1``."""
    max_size: int
    """Most instances the capacity provider may scale to. Default ``4``."""
    root_volume_size_gib: int
    """Encrypted gp3 root volume size (at least 30, the AMI's size). Default ``30``."""
    container_insights: bool
    """CloudWatch Container Insights on the cluster. Default ``True``."""
    target_capacity_percent: int
    """Managed scaling target utilisation (100 = no spare instance). Default ``100``."""
    public_ip: bool
    """Give instances a public IPv4 address (needed in public subnets without NAT). Default ``False``."""
    tags: dict[str, str]
    """Tags added to every resource and propagated to instances. Default ``{}``."""


class EcsCluster(pulumi.ComponentResource):
    """An ECS cluster whose EC2 capacity scales with the tasks placed on it.

    Instances run the ECS-optimized Amazon Linux 2023 AMI (looked up from its
    public SSM parameter, so every deployment gets the patched image), require
    IMDSv2 with a hop limit of 1 (containers in bridge mode cannot borrow the
    instance role), boot from an encrypted gp3 volume, have no SSH key and no
    inbound rule (use SSM Session Manager), and only join the cluster in their
    user data: everything else runs as ECS services. A capacity provider with
    managed scaling and managed draining is the cluster's default strategy, so
    services need no launch type and instances drain before they go away.
    """

    cluster_name: pulumi.Output[str]
    """Name of the ECS cluster."""
    cluster_arn: pulumi.Output[str]
    """ARN of the ECS cluster."""
    capacity_provider_name: pulumi.Output[str]
    """Name of the capacity provider (the cluster's default strategy)."""
    instance_security_group_id: pulumi.Output[str]
    """Security group of the instances; other components add their ingress rules to it."""
    autoscaling_group_name: pulumi.Output[str]
    """Name of the Auto Scaling group."""
    instance_role_name: pulumi.Output[str]
    """Name of the instances' IAM role."""

    def __init__(self, name: str, args: EcsClusterArgs, opts: pulumi.ResourceOptions | None = None):
        validate_cluster_args(name, args)  # before anything is registered
        super().__init__("seaport:index:EcsCluster", name, None, opts)
        instance_type = args.get("instance_type", "t3.small")
        max_size = args.get("max_size", 4)
        volume = args.get("root_volume_size_gib", 30)
        tags = args.get("tags", {})
        child = pulumi.ResourceOptions(parent=self)

        cluster = aws.ecs.Cluster(
            name,
            settings=[
                aws.ecs.ClusterSettingArgs(
                    name="containerInsights",
                    value="enabled" if args.get("container_insights", True) else "disabled",
                )
            ],
            tags=name_tags(tags, name),
            opts=child,
        )

        security_group = instances.outbound_only_security_group(
            f"{name}-instances",
            args["vpc_id"],
            f"ECS container instances of {name}; ingress is added by the services that need it",
            tags,
            child,
        )
        # Tasks on one instance reach tasks on another (a backend, the broker) on their dynamic host ports.
        low, high = EPHEMERAL_PORTS
        aws.vpc.SecurityGroupIngressRule(
            f"{name}-task-to-task",
            security_group_id=security_group.id,
            referenced_security_group_id=security_group.id,
            ip_protocol="tcp",
            from_port=low,
            to_port=high,
            description="tasks on other instances of this cluster, on the dynamic host ports",
            opts=child,
        )
        role, profile = instances.instance_role(
            f"{name}-instance", [iam.ECS_INSTANCE_POLICY, iam.SSM_INSTANCE_POLICY], tags, child
        )
        ami = aws.ssm.get_parameter_output(
            name=AMI_PARAMETERS[check.instance_architecture(instance_type)],
            opts=pulumi.InvokeOutputOptions(parent=self),
        ).value
        launch_template = instances.hardened_launch_template(
            f"{name}-instances",
            image_id=ami,
            instance_type=instance_type,
            profile_arn=profile.arn,
            security_group_id=security_group.id,
            user_data=cluster.name.apply(user_data),
            volume_gib=volume,
            public_ip=args.get("public_ip", False),
            tags=tags,
            opts=child,
        )

        group = aws.autoscaling.Group(
            f"{name}-instances",
            min_size=args.get("min_size", 1),
            max_size=max_size,
            vpc_zone_identifiers=args["subnet_ids"],
            launch_template=aws.autoscaling.GroupLaunchTemplateArgs(
                id=launch_template.id, version=launch_template.latest_version.apply(str)
            ),
            health_check_type="EC2",
            health_check_grace_period=120,
            # Managed termination protection: the capacity provider decides which instances may go.
            protect_from_scale_in=True,
            # A new AMI or instance type rolls through the group; managed draining moves the tasks first.
            instance_refresh=aws.autoscaling.GroupInstanceRefreshArgs(
                strategy="Rolling",
                preferences=aws.autoscaling.GroupInstanceRefreshPreferencesArgs(
                    min_healthy_percentage=50,
                    scale_in_protected_instances="Refresh",
                    standby_instances="Terminate",
                ),
            ),
            # Lets `pulumi destroy` remove instances that scale-in protection keeps (see README, Operating).
            force_delete=True,
            tags=[
                aws.autoscaling.GroupTagArgs(key=key, value=value, propagate_at_launch=True)
                for key, value in {**name_tags(tags, f"{name}-instance"), "AmazonECSManaged": "true"}.items()
            ],
            # The capacity provider owns the desired count.
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["desiredCapacity"]),
        )

        capacity_provider = aws.ecs.CapacityProvider(
            f"{name}-capacity",
            auto_scaling_group_provider=aws.ecs.CapacityProviderAutoScalingGroupProviderArgs(
                auto_scaling_group_arn=group.arn,
                managed_termination_protection="ENABLED",
                managed_draining="ENABLED",
                managed_scaling=aws.ecs.CapacityProviderAutoScalingGroupProviderManagedScalingArgs(
                    status="ENABLED",
                    target_capacity=args.get("target_capacity_percent", 100),
                    minimum_scaling_step_size=1,
                    maximum_scaling_step_size=max(1, max_size // 2),
                    instance_warmup_period=120,
                ),
            ),
            tags=tags,
            opts=child,
        )
        aws.ecs.ClusterCapacityProviders(
            f"{name}-capacity",
            cluster_name=cluster.name,
            capacity_providers=[capacity_provider.name],
            default_capacity_provider_strategies=[
                aws.ecs.ClusterCapacityProvidersDefaultCapacityProviderStrategyArgs(
                    capacity_provider=capacity_provider.name, weight=1, base=0
                )
            ],
            opts=child,
        )

        self.cluster_name = cluster.name
        self.cluster_arn = cluster.arn
        self.capacity_provider_name = capacity_provider.name
        self.instance_security_group_id = security_group.id
        self.autoscaling_group_name = group.name
        self.instance_role_name = role.name
        self.register_outputs(
            {
                "cluster_name": self.cluster_name,
                "cluster_arn": self.cluster_arn,
                "capacity_provider_name": self.capacity_provider_name,
                "instance_security_group_id": self.instance_security_group_id,
                "autoscaling_group_name": self.autoscaling_group_name,
                "instance_role_name": self.instance_role_name,
            }
        )


def validate_cluster_args(name: str, args: EcsClusterArgs) -> None:
    """Raise InvalidArgument naming the first bad argument."""
    for key in ("vpc_id", "subnet_ids"):
        if args.get(key) is None:
            raise check.InvalidArgument(f"{key} is required")
    instance_type = args.get("instance_type", "t3.small")
    min_size, max_size = args.get("min_size", 1), args.get("max_size", 4)
    check.require(check.instance_type(instance_type), "instance_type", instance_type)
    check.require(check.int_between(min_size, 0, 100), "min_size", min_size)
    check.require(check.int_between(max_size, max(1, min_size), 100), "max_size", max_size)
    volume = args.get("root_volume_size_gib", 30)
    check.require(check.int_between(volume, 30, 16384), "root_volume_size_gib", volume)
    target = args.get("target_capacity_percent", 100)
    check.require(check.int_between(target, 1, 100), "target_capacity_percent", target)
    check.require(check.tags(args.get("tags", {})), "tags", args.get("tags", {}))
    if name.lower().startswith(RESERVED_PREFIXES):
        raise check.InvalidArgument(
            f"EcsCluster name {name!r} must not start with aws, ecs or fargate: "
            "AWS reserves those prefixes for capacity provider names"
        )


def user_data(cluster_name: str) -> str:
    """The instances' boot script: join the cluster, nothing else (services bring the rest)."""
    return f"""#!/bin/bash
# Join ECS cluster {cluster_name}. Everything else on the instance runs as an ECS service.
set -euo pipefail
cat >> /etc/ecs/ecs.config <<'ECS_CONFIG'
ECS_CLUSTER={cluster_name}
ECS_ENABLE_CONTAINER_METADATA=true
ECS_CONTAINER_STOP_TIMEOUT=60s
ECS_ENABLE_TASK_IAM_ROLE=true
ECS_ENABLE_TASK_IAM_ROLE_NETWORK_HOST=true
ECS_ENGINE_TASK_CLEANUP_WAIT_DURATION=30m
ECS_CONFIG
"""

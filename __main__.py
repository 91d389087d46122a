"""seaport: the composition. Settings -> components -> exports; details live in components/."""

import pulumi

import settings
from components import EcsCluster, Network, ScaledWebService

# Until the portal image is built by the program (ContainerImage), a public web image stands in.
PLACEHOLDER_IMAGE = "nginxinc/nginx-unprivileged:1.27-alpine"

config = settings.load()
tags = {"project": "seaport", "stack": config.stack, **config.tags}

network = Network(
    "seaport",
    {
        "cidr_block": config.network.vpc_cidr,
        "az_count": config.network.az_count,
        "subnet_prefix_length": config.network.subnet_prefix_length,
        "private_subnets": config.network.private_subnets,
        "single_nat_gateway": config.network.single_nat_gateway,
        "vpc_id": config.network.existing_vpc_id,
        "public_subnet_ids": config.network.existing_public_subnet_ids,
        "private_subnet_ids": config.network.existing_private_subnet_ids,
        "tags": tags,
    },
)

cluster = EcsCluster(
    "seaport",
    {
        "vpc_id": network.vpc_id,
        "subnet_ids": network.instance_subnet_ids,
        "instance_type": config.cluster.instance_type,
        "min_size": config.cluster.min_instances,
        "max_size": config.cluster.max_instances,
        "root_volume_size_gib": config.cluster.root_volume_size_gib,
        "container_insights": config.cluster.container_insights,
        "target_capacity_percent": config.cluster.capacity_target_percent,
        # Without private subnets the instances need a public address to reach ECR and ECS.
        "public_ip": not config.network.private_subnets,
        "tags": tags,
    },
)

portal = ScaledWebService(
    "portal",
    {
        "vpc_id": network.vpc_id,
        "public_subnet_ids": network.public_subnet_ids,
        "cluster_arn": cluster.cluster_arn,
        "cluster_name": cluster.cluster_name,
        "capacity_provider_name": cluster.capacity_provider_name,
        "instance_security_group_id": cluster.instance_security_group_id,
        "container": {
            "name": "portal",
            "image": PLACEHOLDER_IMAGE,
            "port": 8080,
            "cpu": config.web.cpu,
            "memory_mib": config.web.memory_mib,
        },
        "health_check_path": config.web.health_check_path,
        "certificate_arn": config.web.certificate_arn or None,
        "desired_count": config.web.desired_tasks,
        "min_count": config.web.min_tasks,
        "max_count": config.web.max_tasks,
        "scaling_mode": config.web.scaling_mode,
        "scale_out_cpu_percent": config.web.scale_out_cpu_percent,
        "scale_in_cpu_percent": config.web.scale_in_cpu_percent,
        "target_cpu_percent": config.web.target_cpu_percent,
        "scale_out_cooldown_seconds": config.web.scale_out_cooldown_seconds,
        "scale_in_cooldown_seconds": config.web.scale_in_cooldown_seconds,
        "log_retention_days": config.log_retention_days,
        "tags": tags,
    },
)

pulumi.export("portalUrl", portal.url)
pulumi.export("vpcId", network.vpc_id)
pulumi.export("clusterName", cluster.cluster_name)
pulumi.export("clusterArn", cluster.cluster_arn)
pulumi.export("capacityProviderName", cluster.capacity_provider_name)
pulumi.export("autoscalingGroupName", cluster.autoscaling_group_name)

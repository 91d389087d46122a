"""seaport: the composition. Settings -> components -> exports; details live in components/."""

import pulumi

import settings
from components import EcsCluster, Network

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

pulumi.export("vpcId", network.vpc_id)
pulumi.export("clusterName", cluster.cluster_name)
pulumi.export("clusterArn", cluster.cluster_arn)
pulumi.export("capacityProviderName", cluster.capacity_provider_name)
pulumi.export("autoscalingGroupName", cluster.autoscaling_group_name)

"""A web service on ECS in a dozen lines, from seaport's components."""

import pulumi
from seaport import EcsCluster, Network, ScaledWebService, pinned_image

config = pulumi.Config()
network = Network("demo", {"az_count": 2})
cluster = EcsCluster(
    "demo",
    {
        "vpc_id": network.vpc_id,
        "subnet_ids": network.public_subnet_ids,
        "public_ip": True,  # public subnets, no NAT: instances need an address to pull images
        "max_size": 2,
    },
)
web = ScaledWebService(
    "web",
    {
        "vpc_id": network.vpc_id,
        "public_subnet_ids": network.public_subnet_ids,
        "cluster_arn": cluster.cluster_arn,
        "cluster_name": cluster.cluster_name,
        "capacity_provider_name": cluster.capacity_provider_name,
        "instance_security_group_id": cluster.instance_security_group_id,
        "container": {
            "image": pinned_image(config.get("image") or "nginxinc/nginx-unprivileged:1.27-alpine"),
            "port": 8080,
            "read_only_root_filesystem": False,  # nginx writes its pid and caches
        },
        "health_check_path": "/",
    },
)
pulumi.export("url", web.url)

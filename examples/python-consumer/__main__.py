"""A web service on ECS from seaport's components: a network, a cluster, and the service."""

import pulumi

from seaport import EcsCluster, Network, ScaledWebService, pinned_image

config = pulumi.Config()
network = Network("demo", {})
cluster = EcsCluster("demo", {"network": network.reference, "max_instances": 2})
web = ScaledWebService(
    "web",
    {
        "cluster": cluster.reference,
        "container": {
            "image": pinned_image(config.get("image") or "nginxinc/nginx-unprivileged:1.27-alpine"),
            "port": 8080,
            "read_only_root_filesystem": False,  # nginx writes its pid and caches
        },
        "load_balancer": {"health_check_path": "/"},
    },
)
pulumi.export("url", web.url)

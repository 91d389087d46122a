"""seaport: the composition. Settings -> components -> exports; the details live in components/.

Network -> EcsCluster -> images -> ConsulMesh -> RabbitMessaging, the weather and
stocks backends (discoverable through Consul), and the portal behind the ALB.
"""

import pulumi
from seaport import (
    ConsulMesh,
    ContainerImage,
    ContainerService,
    EcsCluster,
    Network,
    RabbitMessaging,
    ScaledWebService,
)

import settings

APP_PORT = 8080  # every HTTP app listens here inside its container (bridge mode maps it to a dynamic host port)
HEALTH_CHECK = ["CMD", "python", "-m", "apps.common.healthcheck"]  # standard library only, no curl in slim images

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
# Without private subnets, instances need a public address to reach ECR, ECS and the package repositories.
public_instances = not config.network.private_subnets

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
        "public_ip": public_instances,
        "tags": tags,
    },
)

# Every app image is built from apps/ (so apps/common is shared) for the instances' platform.
images = {
    app: ContainerImage(
        f"{app}-image",
        {
            "context": "apps",
            "dockerfile": f"apps/{app}/Dockerfile",
            "platform": config.images.platform,
            "retain_count": config.images.retain_count,
            "force_delete": config.images.force_delete,
            "tags": tags,
        },
    )
    for app in ("send", "receive", "portal", "weather", "stocks", "registrar")
}

mesh = ConsulMesh(
    "consul",
    {
        "vpc_id": network.vpc_id,
        "subnet_ids": network.instance_subnet_ids,
        "cluster_arn": cluster.cluster_arn,
        "instance_security_group_id": cluster.instance_security_group_id,
        "registrar_image": images["registrar"].repo_digest,
        "server_count": config.consul.servers,
        "consul_version": config.consul.version,
        "server_instance_type": config.consul.instance_type,
        "public_ip": public_instances,
        "log_retention_days": config.log_retention_days,
        "tags": tags,
    },
)

messaging = RabbitMessaging(
    "messaging",
    {
        "cluster_arn": cluster.cluster_arn,
        "capacity_provider_name": cluster.capacity_provider_name,
        "instance_security_group_id": cluster.instance_security_group_id,
        "send_image": images["send"].repo_digest,
        "receive_image": images["receive"].repo_digest,
        "consul_agent_address": mesh.agent_address,
        "consul_agent_hosts": mesh.agent_hosts,
        "consul_token_secret_arn": mesh.reader_token_secret_arn,
        "broker_registrar": mesh.registrar("rabbitmq", "rabbitmq", 5672, check="tcp"),
        "broker_mode": config.messaging.broker_mode,
        "rabbitmq_image": config.messaging.rabbitmq_image,
        "vpc_id": network.vpc_id,
        "subnet_ids": network.instance_subnet_ids,
        "amazon_mq_instance_type": config.messaging.amazon_mq_instance_type,
        "amazon_mq_engine_version": config.messaging.amazon_mq_engine_version,
        "queue_name": config.messaging.queue_name,
        "queue_type": config.messaging.queue_type,
        "send_count": config.messaging.send_tasks,
        "send_rate": config.messaging.send_rate,
        "receive_count": config.messaging.receive_tasks,
        "log_retention_days": config.log_retention_days,
        "tags": tags,
    },
)

# The portal's backends: found by name through Consul, registered by their registrar sidecars.
backend_environment = {"weather": {"TEMP_SCALE": config.web.temp_scale}, "stocks": {}}
backends = {
    app: ContainerService(
        app,
        {
            "cluster_arn": cluster.cluster_arn,
            "capacity_provider_name": cluster.capacity_provider_name,
            "container": {
                "name": app,
                "image": images[app].repo_digest,
                "port": APP_PORT,
                "cpu": 128,
                "memory_mib": 192,
                "environment": backend_environment[app],
                "health_check": {"command": HEALTH_CHECK},
            },
            "sidecars": [mesh.registrar(app, app, APP_PORT)],
            "desired_count": config.web.backend_tasks,
            "log_retention_days": config.log_retention_days,
            "tags": tags,
        },
    )
    for app in ("weather", "stocks")
}

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
            "image": images["portal"].repo_digest,
            "port": APP_PORT,
            "cpu": config.web.cpu,
            "memory_mib": config.web.memory_mib,
            # No WEATHER_URL/STOCKS_URL: the portal asks its Consul agent for "weather" and "stocks".
            "environment": {
                "CONSUL_HTTP_ADDR": mesh.agent_address,
                # one gunicorn worker per quarter vCPU reserved (threads serve the concurrency)
                "WEB_CONCURRENCY": str(max(1, config.web.cpu // 256)),
            },
            "secrets": {"CONSUL_HTTP_TOKEN": mesh.reader_token_secret_arn},
            "extra_hosts": mesh.agent_hosts,
            "health_check": {"command": HEALTH_CHECK},
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
pulumi.export("clusterName", cluster.cluster_name)
pulumi.export("consulUiUrl", mesh.ui_url)
pulumi.export("brokerEndpoint", messaging.broker_endpoint)
pulumi.export("imageDigests", {app: image.repo_digest for app, image in images.items()})
pulumi.export("vpcId", network.vpc_id)

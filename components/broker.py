"""Where the RabbitMQ broker runs: one container on the cluster, or Amazon MQ."""

from typing import Any

import pulumi
import pulumi_aws as aws

from .images import pinned_image
from .references import get
from .secrets import StoredSecret
from .security_groups import admit, security_group
from .service import ContainerService
from .tagging import name_tags

BROKER_SERVICE = "rabbitmq"  # the Consul service name send and receive look up
AMQP_PORT = 5672
AMQPS_PORT = 5671
DEFAULT_RABBITMQ_IMAGE = "rabbitmq:4.1.4-management"


def container(name: str, a: dict[str, Any], credentials: StoredSecret, parent: pulumi.Resource) -> ContainerService:
    """One RabbitMQ node as an ECS service, registered in Consul as ``rabbitmq`` (a health-checked TCP port)."""
    image = a["rabbitmq_image"]
    if isinstance(image, str):
        image = pinned_image(image, opts=pulumi.InvokeOutputOptions(parent=parent))
    return ContainerService(
        f"{name}-broker",
        {
            "cluster": a["cluster"],
            "discovery": a["discovery"],
            "consul_service": {"name": BROKER_SERVICE, "check": "tcp"},
            "container": {
                "name": BROKER_SERVICE,
                "image": image,
                "port": AMQP_PORT,
                "cpu": 256,
                "memory_mib": 512,
                # A fixed node name: the broker finds its own data again after a restart.
                "hostname": BROKER_SERVICE,
                "environment": {"RABBITMQ_NODENAME": f"rabbit@{BROKER_SERVICE}"},
                "secrets": {
                    "RABBITMQ_DEFAULT_USER": credentials.key("username"),
                    "RABBITMQ_DEFAULT_PASS": credentials.key("password"),
                },
                "mount_points": [{"source_volume": "rabbitmq-data", "container_path": "/var/lib/rabbitmq"}],
                "read_only_root_filesystem": False,  # the image writes its config at start
                "health_check": {
                    "command": ["CMD", "rabbitmq-diagnostics", "-q", "ping"],
                    "interval_seconds": 30,
                    "timeout_seconds": 10,
                    "start_period_seconds": 60,
                },
            },
            "volumes": [{"name": "rabbitmq-data", "docker_volume": True}],
            "desired_tasks": 1,
            # One node owns the data: stop the old task before starting the new one.
            "min_healthy_percent": 0,
            "max_percent": 100,
            "stop_timeout_seconds": 120,
            "log_retention_days": a["log_retention_days"],
            "tags": a["tags"],
        },
        opts=pulumi.ResourceOptions(parent=parent),
    )


def amazon_mq(
    name: str, a: dict[str, Any], user: str, password: pulumi.Output[str], parent: pulumi.Resource
) -> pulumi.Output[str]:
    """A private Amazon MQ for RabbitMQ broker reachable on AMQPS from the cluster's instances only;
    returns its ``amqps://`` endpoint."""
    child = pulumi.ResourceOptions(parent=parent)
    network = get(a["cluster"], "network")
    group = security_group(
        f"{name}-broker",
        network.apply(lambda n: n["vpc_id"]),
        f"Amazon MQ broker of {name}: AMQPS from the cluster's instances only",
        a["tags"],
        child,
    ).id
    admit(
        f"{name}-broker",
        group,
        [(AMQPS_PORT, "tcp", "AMQPS")],
        {"cluster": get(a["cluster"], "instance_security_group_id")},
        child,
    )
    mq = aws.mq.Broker(
        f"{name}-broker",
        engine_type="RabbitMQ",
        engine_version=a["amazon_mq_engine_version"],
        host_instance_type=a["amazon_mq_instance_type"],
        deployment_mode="SINGLE_INSTANCE",
        publicly_accessible=False,
        subnet_ids=network.apply(lambda n: n["instance_subnet_ids"][:1]),
        security_groups=[group],
        users=[aws.mq.BrokerUserArgs(username=user, password=pulumi.Output.secret(password))],
        auto_minor_version_upgrade=True,
        logs=aws.mq.BrokerLogsArgs(general=True),
        tags=name_tags(a["tags"], f"{name}-broker"),
        opts=child,
    )
    return mq.instances.apply(lambda instances: instances[0].endpoints[0])

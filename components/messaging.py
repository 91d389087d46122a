"""RabbitMessaging: the RabbitMQ broker (a container or Amazon MQ) and the send/receive services."""

from typing import Required, TypedDict

import pulumi
import pulumi_aws as aws
import pulumi_random as random

from . import instances
from . import validation as check
from .images import pinned_image
from .secrets import StoredSecret
from .service import Container, ContainerService
from .tagging import name_tags

AMQP_PORT = 5672
AMQPS_PORT = 5671
BROKER_SERVICE = "rabbitmq"  # the Consul service name send and receive look up
BROKER_USER = "seaport"


class RabbitMessagingArgs(TypedDict, total=False):
    cluster_arn: Required[pulumi.Input[str]]
    """ECS cluster of the services. Required."""
    capacity_provider_name: Required[pulumi.Input[str]]
    """Capacity provider the services run on. Required."""
    instance_security_group_id: Required[pulumi.Input[str]]
    """Security group of the cluster's instances (the only clients of the broker). Required."""
    send_image: Required[pulumi.Input[str]]
    """Image of the send service, by digest. Required."""
    receive_image: Required[pulumi.Input[str]]
    """Image of the receive service, by digest. Required."""
    consul_agent_address: Required[pulumi.Input[str]]
    """``CONSUL_HTTP_ADDR`` for the apps (ConsulMesh's ``agent_address``). Required."""
    consul_agent_hosts: pulumi.Input[dict[str, str]]
    """/etc/hosts entries that resolve the agent's host name (ConsulMesh's ``agent_hosts``). Default ``{}``."""
    consul_token_secret_arn: Required[pulumi.Input[str]]
    """Secret with the Consul ACL token the apps look services up with (the reader token). Required."""
    broker_registrar: Container
    """Registrar sidecar for the broker container (``mesh.registrar("rabbitmq", "rabbitmq", 5672, "tcp")``).
    Required with ``broker_mode="container"``."""
    broker_mode: str
    """``container`` (an ECS service with a persistent volume) or ``amazonmq`` (Amazon MQ for RabbitMQ).
    Default ``container``."""
    rabbitmq_image: pulumi.Input[str]
    """Pinned RabbitMQ management image (container mode), resolved to its digest. Default
    ``rabbitmq:4.1.4-management``."""
    vpc_id: pulumi.Input[str]
    """VPC of the Amazon MQ broker. Required with ``broker_mode="amazonmq"``."""
    subnet_ids: pulumi.Input[list[str]]
    """Private subnets of the Amazon MQ broker (the first is used by a single-instance broker). Required with
    ``broker_mode="amazonmq"``."""
    amazon_mq_instance_type: str
    """Amazon MQ instance type. Default ``mq.m5.large``."""
    amazon_mq_engine_version: str
    """Amazon MQ for RabbitMQ engine version. Default ``3.13``."""
    queue_name: str
    """Durable queue the apps use. Default ``messages``."""
    queue_type: str
    """``quorum`` or ``classic``. Default ``quorum``."""
    send_count: int
    """Tasks of the send service. Default ``1``."""
    send_rate: int
    """Messages per second each send task publishes. Default ``5``."""
    receive_count: int
    """Tasks of the receive service. Default ``2``."""
    log_retention_days: int
    """CloudWatch Logs retention. Default ``30``."""
    tags: dict[str, str]
    """Tags added to every resource. Default ``{}``."""


class RabbitMessaging(pulumi.ComponentResource):
    """A RabbitMQ broker and the services that publish to and consume from it.

    The broker's credentials are generated here (no ``guest``), kept in
    Secrets Manager and injected as ECS secrets. In ``container`` mode the
    broker is an ECS service with a fixed node name and a Docker volume that
    outlives its task, registered in Consul as ``rabbitmq`` by the registrar;
    its port is reachable only from the cluster's instances. In ``amazonmq``
    mode it is a private Amazon MQ broker (TLS on 5671) whose security group
    admits only the cluster's instances. ``send`` and ``receive`` find the
    broker by name through Consul, or get the Amazon MQ endpoint: nothing else
    about them changes between the modes.
    """

    broker_endpoint: pulumi.Output[str]
    """``consul:rabbitmq`` (container mode) or the broker's ``amqps://`` endpoint (Amazon MQ)."""
    credentials_secret_arn: pulumi.Output[str]
    """Secrets Manager ARN of ``{"username", "password"}``."""
    send_service_name: pulumi.Output[str]
    """Name of the send ECS service."""
    receive_service_name: pulumi.Output[str]
    """Name of the receive ECS service."""

    def __init__(self, name: str, args: RabbitMessagingArgs, opts: pulumi.ResourceOptions | None = None):
        validate_messaging_args(args)  # before anything is registered
        super().__init__("seaport:index:RabbitMessaging", name, None, opts)
        tags = args.get("tags", {})
        child = pulumi.ResourceOptions(parent=self)
        retention = args.get("log_retention_days", 30)

        # Amazon MQ refuses , : = in passwords; letters and digits are plenty at 32 characters.
        password = random.RandomPassword(f"{name}-broker-password", length=32, special=False, opts=child)
        credentials = StoredSecret(
            f"{name}-broker-credentials",
            pulumi.Output.json_dumps({"username": BROKER_USER, "password": password.result}),
            "RabbitMQ credentials of send and receive",
            tags,
            child,
        )
        login = {"RABBITMQ_USERNAME": credentials.key("username"), "RABBITMQ_PASSWORD": credentials.key("password")}

        if args.get("broker_mode", "container") == "amazonmq":
            endpoint = self._amazon_mq(name, args, password.result, tags, child)
            broker_location = {"RABBITMQ_URL": endpoint}
        else:
            self._container_broker(name, args, credentials, retention, tags, child)
            endpoint = pulumi.Output.from_input(f"consul:{BROKER_SERVICE}")
            broker_location = {"RABBITMQ_SERVICE": BROKER_SERVICE}

        common = {
            **broker_location,
            "CONSUL_HTTP_ADDR": args["consul_agent_address"],
            "RABBITMQ_QUEUE": args.get("queue_name", "messages"),
            "RABBITMQ_QUEUE_TYPE": args.get("queue_type", "quorum"),
        }
        secrets = {**login, "CONSUL_HTTP_TOKEN": args["consul_token_secret_arn"]}
        services = {}
        for app, count, extra, command in (
            ("send", args.get("send_count", 1), {}, ["--rate", str(args.get("send_rate", 5))]),
            ("receive", args.get("receive_count", 2), {}, []),
        ):
            services[app] = ContainerService(
                f"{name}-{app}",
                {
                    "cluster_arn": args["cluster_arn"],
                    "capacity_provider_name": args["capacity_provider_name"],
                    "container": {
                        "name": app,
                        "image": args[f"{app}_image"],
                        "cpu": 128,
                        "memory_mib": 128,
                        "command": command,
                        "environment": {**common, **extra},
                        "secrets": secrets,
                        "extra_hosts": args.get("consul_agent_hosts", {}),
                    },
                    "desired_count": count,
                    # Both apps drain on SIGTERM (outstanding confirms, in-flight acks) before exiting.
                    "stop_timeout_seconds": 60,
                    "log_retention_days": retention,
                    "tags": tags,
                },
                opts=child,
            )

        self.broker_endpoint = endpoint
        self.credentials_secret_arn = credentials.arn
        self.send_service_name = services["send"].service_name
        self.receive_service_name = services["receive"].service_name
        self.register_outputs(
            {
                "broker_endpoint": self.broker_endpoint,
                "credentials_secret_arn": self.credentials_secret_arn,
                "send_service_name": self.send_service_name,
                "receive_service_name": self.receive_service_name,
            }
        )

    def _container_broker(
        self,
        name: str,
        args: RabbitMessagingArgs,
        credentials: StoredSecret,
        retention: int,
        tags: dict[str, str],
        child: pulumi.ResourceOptions,
    ) -> None:
        image = args.get("rabbitmq_image") or "rabbitmq:4.1.4-management"
        if isinstance(image, str):
            image = pinned_image(image, opts=pulumi.InvokeOutputOptions(parent=self))
        ContainerService(
            f"{name}-broker",
            {
                "cluster_arn": args["cluster_arn"],
                "capacity_provider_name": args["capacity_provider_name"],
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
                "sidecars": [args["broker_registrar"]],
                "volumes": [{"name": "rabbitmq-data", "docker_volume": True}],
                "desired_count": 1,
                # One node owns the data: stop the old task before starting the new one.
                "min_healthy_percent": 0,
                "max_percent": 100,
                "stop_timeout_seconds": 120,
                "log_retention_days": retention,
                "tags": tags,
            },
            opts=child,
        )

    def _amazon_mq(
        self,
        name: str,
        args: RabbitMessagingArgs,
        password: pulumi.Output[str],
        tags: dict[str, str],
        child: pulumi.ResourceOptions,
    ) -> pulumi.Output[str]:
        group = instances.security_group(
            f"{name}-broker",
            args["vpc_id"],
            f"Amazon MQ broker of {name}: AMQPS from the cluster's instances only",
            tags,
            child,
        )
        aws.vpc.SecurityGroupIngressRule(
            f"{name}-broker-amqps-from-cluster",
            security_group_id=group.id,
            referenced_security_group_id=args["instance_security_group_id"],
            ip_protocol="tcp",
            from_port=AMQPS_PORT,
            to_port=AMQPS_PORT,
            description="AMQPS from the cluster's instances",
            opts=child,
        )
        broker = aws.mq.Broker(
            f"{name}-broker",
            engine_type="RabbitMQ",
            engine_version=args.get("amazon_mq_engine_version", "3.13"),
            host_instance_type=args.get("amazon_mq_instance_type", "mq.m5.large"),
            deployment_mode="SINGLE_INSTANCE",
            publicly_accessible=False,
            subnet_ids=pulumi.Output.from_input(args["subnet_ids"]).apply(lambda ids: ids[:1]),
            security_groups=[group.id],
            users=[aws.mq.BrokerUserArgs(username=BROKER_USER, password=pulumi.Output.secret(password))],
            auto_minor_version_upgrade=True,
            logs=aws.mq.BrokerLogsArgs(general=True),
            tags=name_tags(tags, f"{name}-broker"),
            opts=child,
        )
        return broker.instances.apply(lambda instances: instances[0].endpoints[0])


def validate_messaging_args(args: RabbitMessagingArgs) -> None:
    """Raise InvalidArgument naming the first bad argument."""
    required = [
        "cluster_arn",
        "capacity_provider_name",
        "instance_security_group_id",
        "send_image",
        "receive_image",
        "consul_agent_address",
        "consul_token_secret_arn",
    ]
    mode = args.get("broker_mode", "container")
    check.require(check.one_of(mode, ("container", "amazonmq")), "broker_mode", mode)
    required += ["broker_registrar"] if mode == "container" else ["vpc_id", "subnet_ids"]
    for key in required:
        if args.get(key) is None:
            raise check.InvalidArgument(
                f"{key} is required" + (f" with broker_mode={mode!r}" if key in required[-2:] else "")
            )
    image = args.get("rabbitmq_image")
    if isinstance(image, str):
        check.require(check.rabbitmq_image(image), "rabbitmq_image", image)
    queue = args.get("queue_name", "messages")
    check.require(check.queue_name(queue), "queue_name", queue)
    queue_type = args.get("queue_type", "quorum")
    check.require(check.one_of(queue_type, ("quorum", "classic")), "queue_type", queue_type)
    for key, default, low, high in (("send_count", 1, 0, 50), ("receive_count", 2, 0, 50), ("send_rate", 5, 1, 10000)):
        check.require(check.int_between(args.get(key, default), low, high), key, args.get(key, default))
    if mode == "amazonmq":
        check.require(
            check.mq_instance_type(args.get("amazon_mq_instance_type", "mq.m5.large")),
            "amazon_mq_instance_type",
            args.get("amazon_mq_instance_type"),
        )
    retention = args.get("log_retention_days", 30)
    check.require(check.log_retention(retention), "log_retention_days", retention)
    check.require(check.tags(args.get("tags", {})), "tags", args.get("tags", {}))

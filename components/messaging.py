"""RabbitMessaging: the RabbitMQ broker (a container or Amazon MQ) and the send/receive services."""

from enum import StrEnum
from typing import Any, Required, TypedDict

import pulumi
import pulumi_random as random

from . import autoscaling, broker, outputs, references
from . import validation as check
from .args import Problem, Problems, raise_if, with_defaults
from .autoscaling import AutoscalingOptions, ServiceAutoscaling
from .contract import broker as contract
from .contract import liveness, telemetry
from .pki import CertificateAuthorityReference
from .references import ClusterReference, DiscoveryReference, get
from .secrets import StoredSecret
from .service import ContainerService

BROKER_SERVICE = broker.BROKER_SERVICE
BROKER_USER = broker.BROKER_USER


class BrokerMode(StrEnum):
    CONTAINER = "container"
    """One RabbitMQ node on the cluster's dedicated ``broker`` instance, its data on that instance's disk (dev):
    it survives restarts and deployments, not the loss of the instance."""
    CLUSTER = "cluster"
    """``broker_nodes`` nodes, each on a dedicated ``broker-node`` instance of the cluster (spread over the AZs),
    formed through Consul; quorum queues replicate every message to a majority before confirming it, so losing a
    node (or its instance) loses nothing."""
    AMAZONMQ = "amazonmq"
    """Amazon MQ for RabbitMQ, managed by AWS (TLS on 5671)."""


class AmazonMqDeploymentMode(StrEnum):
    SINGLE_INSTANCE = "SINGLE_INSTANCE"
    """One broker instance in one AZ."""
    CLUSTER_MULTI_AZ = "CLUSTER_MULTI_AZ"
    """Three nodes over three AZs behind one endpoint (not on mq.t3.micro)."""


class QueueType(StrEnum):
    QUORUM = "quorum"
    """Raft-replicated across the broker's nodes, with a delivery limit."""
    CLASSIC = "classic"
    """A single-node queue."""


DEFAULTS: dict[str, Any] = {
    "broker_mode": BrokerMode.CONTAINER,
    "rabbitmq_image": broker.DEFAULT_RABBITMQ_IMAGE,
    "broker_nodes": 3,
    "broker_instance_type": "",
    "amazon_mq_deployment_mode": AmazonMqDeploymentMode.SINGLE_INSTANCE,
    "amazon_mq_instance_type": "mq.m7g.large",
    "amazon_mq_engine_version": "4.2",
    "queue_name": "messages",
    "queue_type": QueueType.QUORUM,
    "send_tasks": 1,
    "send_rate": 5,
    "receive_tasks": 2,
    "log_retention_days": 30,
    "tags": {},
}


class RabbitMessagingArgs(TypedDict, total=False):
    cluster: Required[pulumi.Input[ClusterReference]]
    """The cluster the services run on (``EcsCluster.reference``); its instances are the broker's only
    clients. Required."""
    ca: pulumi.Input[CertificateAuthorityReference]
    """The internal CA (``CertificateAuthority.reference``): it signs the broker's certificate, and the apps
    verify the broker with it. Required with ``broker_mode`` ``container`` or ``cluster`` (Amazon MQ has a
    public certificate)."""
    discovery: pulumi.Input[DiscoveryReference]
    """Consul discovery (``ConsulMesh.discovery``): the broker registers there as ``rabbitmq`` and the apps
    find it by that name. Required with ``broker_mode="container"``."""
    send_image: Required[pulumi.Input[str]]
    """Image of the send service, by digest. Required."""
    receive_image: Required[pulumi.Input[str]]
    """Image of the receive service, by digest. Required."""
    broker_mode: BrokerMode
    """``container`` (one node on a dedicated instance), ``cluster`` (replicated nodes, one per dedicated
    instance) or ``amazonmq`` (Amazon MQ for RabbitMQ). Default ``"container"``."""
    rabbitmq_image: pulumi.Input[str]
    """Pinned RabbitMQ management image (container and cluster modes), resolved to its digest. Default
    ``"public.ecr.aws/docker/library/rabbitmq:4.3.4-management"``."""
    broker_nodes: int
    """Nodes of a ``cluster`` broker (3, 5 or 7), each on a dedicated ``broker-node`` instance of the cluster
    (``dedicated_instance_counts(args)`` gives ``EcsCluster`` as many). Default ``3``."""
    broker_instance_type: str
    """EC2 instance type of the broker's own instances (``container`` and ``cluster`` modes); ``""`` is the
    cluster's instance type. A node's task reserves 1 GiB and half a vCPU, so a small type is enough for light
    traffic. Default ``""``."""
    amazon_mq_deployment_mode: AmazonMqDeploymentMode
    """``SINGLE_INSTANCE`` or ``CLUSTER_MULTI_AZ`` (Amazon MQ). Default ``"SINGLE_INSTANCE"``."""
    amazon_mq_instance_type: str
    """Amazon MQ broker instance type (RabbitMQ 4.x needs mq.m7g.*). Default ``"mq.m7g.large"``."""
    amazon_mq_engine_version: str
    """Amazon MQ for RabbitMQ engine version. Default ``"4.2"``."""
    queue_name: str
    """Durable queue the apps use. Default ``"messages"``."""
    queue_type: QueueType
    """``quorum`` or ``classic``. Default ``"quorum"``."""
    send_tasks: int
    """Tasks of the send service (0-50). Default ``1``."""
    send_rate: int
    """Messages per second each send task publishes (1-10000). Default ``5``."""
    receive_tasks: int
    """Tasks of the receive service (0-50), when it is not autoscaled. Default ``2``."""
    receive_autoscaling: AutoscalingOptions
    """Scale receive on its backlog: ``{"scaling_mode": "backlog", "min_tasks": ..., "max_tasks": ...,
    "target_backlog_per_task": ...}`` (the queue is ``queue_name``). Default: none (``receive_tasks`` tasks)."""
    log_retention_days: int
    """CloudWatch Logs retention. Default ``30``."""
    tags: dict[str, str]
    """Tags added to every resource. Default ``{}``."""


class RabbitMessaging(pulumi.ComponentResource):
    """A RabbitMQ broker and the services that publish to and consume from it.

    The broker's credentials are generated here (no ``guest``), kept in
    Secrets Manager and injected as ECS secrets. In ``container`` mode the
    broker is one node on the cluster's dedicated ``broker`` instance (give
    ``EcsCluster`` ``dedicated_instances=dedicated_instances(args)``), its data
    on that instance's disk, its memory watermark and its queue policy set
    from its task, registered in Consul as ``rabbitmq``; its port is reachable
    only from the cluster's instances. In ``cluster`` mode it is ``broker_nodes``
    nodes, one on each dedicated ``broker-node`` instance (give ``EcsCluster``
    ``dedicated_instance_counts=dedicated_instance_counts(args)`` too), so a
    node always comes back to its own instance, name and data. In ``amazonmq`` mode it is a private Amazon MQ
    broker (TLS on 5671) whose security group admits only the cluster's
    instances. ``send`` and ``receive`` find the broker by name through Consul,
    or get the Amazon MQ endpoint: nothing else about them changes.
    """

    broker_endpoint: pulumi.Output[str]
    """``consul:rabbitmq`` (container mode) or the broker's ``amqps://`` endpoint (Amazon MQ)."""
    credentials_secret_arn: pulumi.Output[str]
    """Secrets Manager ARN of ``{"username", "password"}``."""
    send_service_name: pulumi.Output[str]
    """Name of the send ECS service."""
    receive_service_name: pulumi.Output[str]
    """Name of the receive ECS service."""
    broker_service_name: pulumi.Output[str]
    """Name of the broker's ECS service (``container`` and ``cluster`` modes; ``""`` with Amazon MQ)."""
    amazon_mq_broker_name: pulumi.Output[str]
    """Name of the Amazon MQ broker (``amazonmq`` mode; ``""`` otherwise)."""

    def __init__(self, name: str, args: RabbitMessagingArgs, opts: pulumi.ResourceOptions | None = None):
        raise_if(problems(args))  # before anything is registered
        super().__init__("seaport:index:RabbitMessaging", name, None, opts)
        a = with_defaults(args, DEFAULTS)
        child = pulumi.ResourceOptions(parent=self)
        # Amazon MQ refuses , : = in passwords; letters and digits are plenty at 32 characters.
        password = random.RandomPassword(f"{name}-broker-password", length=32, special=False, opts=child)
        credentials = StoredSecret(
            f"{name}-broker-credentials",
            pulumi.Output.json_dumps({"username": BROKER_USER, "password": password.result}),
            "RabbitMQ credentials of send and receive",
            a["tags"],
            child,
        )
        if a["broker_mode"] == BrokerMode.AMAZONMQ:
            mq = broker.amazon_mq(name, a, BROKER_USER, password.result, self)
            endpoint = broker.endpoint(mq)
            location: dict[str, Any] = {"RABBITMQ_URL": endpoint}
            broker_service_name = pulumi.Output.from_input("")
            amazon_mq_broker_name = mq.broker_name
        else:
            run_broker = broker.cluster if a["broker_mode"] == BrokerMode.CLUSTER else broker.container
            broker_service = run_broker(name, a, password.result, self)
            broker_service_name = broker_service.service_name
            amazon_mq_broker_name = pulumi.Output.from_input("")
            endpoint = pulumi.Output.from_input(f"consul:{BROKER_SERVICE}")
            # AMQP over TLS only: the apps check the broker's certificate against the internal CA and the name
            # rabbitmq (Consul hands out addresses, which no certificate could name in advance).
            location = {
                "RABBITMQ_SERVICE": BROKER_SERVICE,
                "RABBITMQ_TLS": "true",
                "RABBITMQ_TLS_SERVER_NAME": BROKER_SERVICE,
                "RABBITMQ_CA_PEM": get(a["ca"], "certificate_pem"),
            }
        services = {app: self._app(name, app, a, location, credentials) for app in ("send", "receive")}
        if a.get("receive_autoscaling"):
            ServiceAutoscaling(
                f"{name}-receive",
                {
                    **a["receive_autoscaling"],
                    "cluster": a["cluster"],
                    "service_name": services["receive"].service_name,
                    "queue_name": a["queue_name"],
                    "tags": a["tags"],
                },
                opts=pulumi.ResourceOptions(parent=self),
            )

        outputs.register(
            self,
            broker_endpoint=endpoint,
            credentials_secret_arn=credentials.arn,
            send_service_name=services["send"].service_name,
            receive_service_name=services["receive"].service_name,
            broker_service_name=broker_service_name,
            amazon_mq_broker_name=amazon_mq_broker_name,
        )

    def _app(
        self, name: str, app: str, a: dict[str, Any], location: dict[str, Any], credentials: StoredSecret
    ) -> ContainerService:
        """``send`` or ``receive``: the same settings, found the same way; only the command differs."""
        through_consul = a["broker_mode"] != BrokerMode.AMAZONMQ
        scaled = app == "receive" and bool(a.get("receive_autoscaling"))
        return ContainerService(
            f"{name}-{app}",
            {
                "cluster": a["cluster"],
                "discovery": a.get("discovery") if through_consul else None,
                "discovers": [BROKER_SERVICE] if through_consul else [],
                "container": {
                    "name": app,
                    "image": a[f"{app}_image"],
                    "cpu": 128,
                    "memory_mib": 128,
                    "command": ["--rate", str(a["send_rate"])] if app == "send" else [],
                    "environment": {
                        **location,
                        "RABBITMQ_QUEUE": a["queue_name"],
                        "RABBITMQ_QUEUE_TYPE": str(a["queue_type"]),
                        # receive counts failed deliveries against the broker policy's limit
                        "RABBITMQ_MAX_DELIVERIES": str(contract.DEFAULT_DELIVERY_LIMIT),
                        # the Cluster dimension of the apps' metrics: the alarms and the scaling of this stack
                        # read its metrics, not another stack's on a queue of the same name
                        telemetry.CLUSTER_VARIABLE: get(a["cluster"], "name"),
                    },
                    "secrets": {
                        "RABBITMQ_USERNAME": credentials.key("username"),
                        "RABBITMQ_PASSWORD": credentials.key("password"),
                    },
                    # Fails when the app's loop stops making progress (not only when the process is gone):
                    # ECS replaces the task.
                    "health_check": dict(liveness.HEALTH_CHECK),
                },
                "desired_tasks": a["receive_autoscaling"].get("min_tasks", 1) if scaled else a[f"{app}_tasks"],
                "autoscaled": scaled,
                # Both apps drain on SIGTERM (outstanding confirms, in-flight acks) before exiting.
                "stop_timeout_seconds": 60,
                "log_retention_days": a["log_retention_days"],
                # How messages flow, for people reading the console and for seaport's diagram.
                "tags": {**a["tags"], "seaport:messaging": "publisher" if app == "send" else "consumer"},
            },
            opts=pulumi.ResourceOptions(parent=self),
        )


def dedicated_instances(args: RabbitMessagingArgs) -> dict[str, str]:
    """What ``EcsCluster`` ``dedicated_instances`` must hold for these messaging arguments (the cluster's
    instance type: ``""``)."""
    a = with_defaults(args, DEFAULTS)
    mode, instance_type = a["broker_mode"], a["broker_instance_type"]
    if mode == BrokerMode.CONTAINER:
        return {broker.DEDICATED_INSTANCE: instance_type}
    return {broker.NODE_INSTANCE: instance_type} if mode == BrokerMode.CLUSTER else {}


def dedicated_instance_counts(args: RabbitMessagingArgs) -> dict[str, int]:
    """What ``EcsCluster`` ``dedicated_instance_counts`` must hold for these messaging arguments: one
    ``broker-node`` instance per node of a ``cluster`` broker, no more (a spare one would let a node move)."""
    a = with_defaults(args, DEFAULTS)
    return {broker.NODE_INSTANCE: a["broker_nodes"]} if a["broker_mode"] == BrokerMode.CLUSTER else {}


def problems(args: RabbitMessagingArgs) -> list[Problem]:
    a = with_defaults(args, DEFAULTS)
    found = Problems()
    found.require(a, "cluster", "send_image", "receive_image")
    found.extend_under("cluster", references.problems(a.get("cluster"), ClusterReference))
    found.extend_under("discovery", references.problems(a.get("discovery"), DiscoveryReference))
    scaling = a.get("receive_autoscaling")
    if scaling:
        found.extend_under("receive_autoscaling", autoscaling.options_problems({**scaling, "queue_name": "-"}))
    mode = a["broker_mode"]
    found.check("broker_mode", mode, check.one_of(mode, BrokerMode))
    if mode in (BrokerMode.CONTAINER, BrokerMode.CLUSTER):
        found.require(a, "discovery", why=f"with broker_mode={str(mode)!r} (the apps find the broker through Consul)")
        found.require(a, "ca", why=f"with broker_mode={str(mode)!r} (it signs the broker's certificate)")
    if mode == BrokerMode.CLUSTER:
        found.check("broker_nodes", a["broker_nodes"], check.one_of(a["broker_nodes"], (3, 5, 7)))
        discovery = a.get("discovery")
        if isinstance(discovery, dict) and not discovery.get("broker_token_secret_arn"):
            found.missing("discovery.broker_token_secret_arn", "with broker_mode='cluster' (ConsulMesh gives it)")
    instance_type = a["broker_instance_type"]
    if instance_type != "":
        found.check("broker_instance_type", instance_type, check.instance_type(instance_type))
    if mode in (BrokerMode.CONTAINER, BrokerMode.CLUSTER):
        cluster = a.get("cluster")
        available = (
            with_defaults(cluster, references.CLUSTER_REFERENCE_DEFAULTS)["dedicated_instances"]
            if isinstance(cluster, dict)
            else None
        )
        (needed,) = dedicated_instances({"broker_mode": mode})
        if isinstance(available, list) and needed not in available:
            counts = dedicated_instance_counts(a)
            found.check(
                "broker_mode",
                mode,
                f"needs the cluster's dedicated instance {needed!r}: give EcsCluster "
                f"dedicated_instances={dedicated_instances({'broker_mode': mode})}"
                + (f" and dedicated_instance_counts={counts}" if counts else ""),
            )
    image = a["rabbitmq_image"]
    if isinstance(image, str):
        found.check("rabbitmq_image", image, check.rabbitmq_image(image))
    found.check("queue_name", a["queue_name"], check.queue_name(a["queue_name"]))
    found.check("queue_type", a["queue_type"], check.one_of(a["queue_type"], QueueType))
    for key, low, high in (("send_tasks", 0, 50), ("receive_tasks", 0, 50), ("send_rate", 1, 10000)):
        found.check(key, a[key], check.int_between(a[key], low, high))
    found.check(
        "amazon_mq_instance_type", a["amazon_mq_instance_type"], check.mq_instance_type(a["amazon_mq_instance_type"])
    )
    found.check(
        "amazon_mq_engine_version",
        a["amazon_mq_engine_version"],
        check.mq_engine_version(a["amazon_mq_engine_version"]),
    )
    engine, instance_type = a["amazon_mq_engine_version"], a["amazon_mq_instance_type"]
    deployment = a["amazon_mq_deployment_mode"]
    found.check("amazon_mq_deployment_mode", deployment, check.one_of(deployment, AmazonMqDeploymentMode))
    if mode == BrokerMode.AMAZONMQ:
        found.check("amazon_mq_instance_type", instance_type, check.mq_engine_runs_on(engine, instance_type))
        if deployment == AmazonMqDeploymentMode.CLUSTER_MULTI_AZ and instance_type == "mq.t3.micro":
            found.check("amazon_mq_instance_type", instance_type, "runs single-instance brokers only, not a cluster")
    found.check("log_retention_days", a["log_retention_days"], check.log_retention(a["log_retention_days"]))
    found.check("tags", a["tags"], check.tags(a["tags"]))
    return found
